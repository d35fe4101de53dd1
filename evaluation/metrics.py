"""Metrics for `vdisc eval`, each a small pure function with hand-checked tests.

- temporal grounding: IoU of the top predicted span with the best-matching
  reference span; R@1 at IoU 0.3 / 0.5 / 0.7; mean IoU
- multiple choice: the answer must name exactly one option (by letter or by
  text); an answer that names none or several is unparseable and wrong
- open answers: the short answer equals the reference once both are normalised (``answer_key``: case,
  accents, punctuation and articles folded, numbers as digits whether written "two" or "2", "14 %" as
  "14%"); the search baseline, which has no short answer, keeps containment in its snippet
- found vs extent: the hit rate (the top span overlaps a reference span and is at most ``HIT_SPAN`` long:
  the right moment, whatever its edges) beside R@1; the found rate (questions about something that is
  there, answered with something other than "not found"); absent questions (reference "not found") are
  scored by their answer like any other
- latency p50 / p95, mean tool calls; everything also broken down by kind
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import defaultdict
from typing import Any, Iterable, Sequence

from vdisc.agent.reader import NOT_FOUND
from vdisc.numwords import answer_key

THRESHOLDS = (0.3, 0.5, 0.7)
HIT_SPAN = 30.0  # seconds: a span longer than this points at a region, not at a moment


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU of [a0, a1] and [b0, b1]; zero-length spans score 1 only when identical."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union <= 0:
        return 1.0 if (a[0], a[1]) == (b[0], b[1]) else 0.0
    return inter / union


def is_hit(pred: Sequence[float] | None, refs: Iterable[Sequence[float]]) -> bool:
    """Whether a predicted span finds the moment: it overlaps a reference span and is at most ``HIT_SPAN`` s."""
    if pred is None or pred[1] - pred[0] > HIT_SPAN:
        return False
    return any(min(pred[1], r[1]) > max(pred[0], r[0]) or tuple(pred) == tuple(r) for r in refs)


def says_not_found(answer: str) -> bool:
    """Whether a short answer is "not found" (whatever its case and punctuation)."""
    return answer_key(answer) == NOT_FOUND


def best_iou(pred: Sequence[float] | None, refs: Iterable[Sequence[float]]) -> float:
    """IoU of a prediction with its best-matching reference span (0 without a prediction)."""
    if pred is None:
        return 0.0
    return max((iou(pred, r) for r in refs), default=0.0)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


def answer_matches(answer: str, reference: str) -> bool:
    """Whether a short answer is the reference, compared by ``answer_key``."""
    ref = answer_key(reference)
    return bool(ref) and answer_key(answer) == ref


def contains(answer: str, reference: str) -> bool:
    """Whether the normalised reference appears (as whole words) in the normalised answer."""
    ref, ans = normalise(reference), normalise(answer)
    return bool(ref) and f" {ref} " in f" {ans} "


def choose_option(answer: str, options: Sequence[str]) -> int | None:
    """The index of the one option an answer names (by letter like "(B)"/"B." or by text), else None."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    by_letter = {m.upper() for m in re.findall(r"(?:^|[\s(\[])([A-Z])(?:[)\].:,]|\s|$)", answer.strip())
                 if m.upper() in letters}
    by_text = {i for i, opt in enumerate(options) if contains(answer, opt)}
    picked = {letters.index(c) for c in by_letter} | by_text
    return picked.pop() if len(picked) == 1 else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall metrics plus the same per kind, from per-question records."""
    out = _metrics(records)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_kind[r.get("kind") or "none"].append(r)
    out["by_kind"] = {k: _metrics(v) for k, v in sorted(by_kind.items())}
    return out


def _metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    grounded = [r for r in records if r.get("iou") is not None]
    present = [r for r in records if r.get("reference") is None or answer_key(r["reference"]) != NOT_FOUND]
    mcq = [r for r in records if r.get("options")]
    open_ = [r for r in records if not r.get("options") and r.get("reference")]
    m: dict[str, Any] = {"questions": len(records)}
    if grounded:
        ious = [r["iou"] for r in grounded]
        m["grounding"] = {"n": len(ious), "miou": round(statistics.fmean(ious), 4),
                          **{f"r1@{t}": round(sum(x >= t for x in ious) / len(ious), 4) for t in THRESHOLDS},
                          "hit": round(sum(bool(r.get("hit")) for r in grounded) / len(grounded), 4)}
    if present and any("found" in r for r in present):
        m["found"] = round(sum(bool(r.get("found")) for r in present) / len(present), 4)
    if mcq:
        m["mcq"] = {"n": len(mcq), "accuracy": round(sum(r["correct"] for r in mcq) / len(mcq), 4),
                    "unparseable": sum(r.get("choice") is None for r in mcq)}
    if open_:
        m["open"] = {"n": len(open_), "accuracy": round(sum(r["correct"] for r in open_) / len(open_), 4)}
    lat = [r["latency"] for r in records if r.get("latency") is not None]
    if lat:
        m["latency"] = {"p50": round(percentile(lat, 50), 3), "p95": round(percentile(lat, 95), 3)}
    calls = [r["tool_calls"] for r in records if r.get("tool_calls") is not None]
    if calls:
        m["mean_tool_calls"] = round(statistics.fmean(calls), 2)
    return m
