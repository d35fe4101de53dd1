"""Run a dataset through `Library.ask` (and, with ``baseline``, plain search) in one process.

Per question a record: the answer, the predicted spans, IoU with the best
reference span, correctness, latency and tool calls. The baseline takes the
top search hit in the question's video as its span and its snippet as its
answer, so the agent's gain is measured side by side on the same index.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from vdisc.errors import VdiscError

from .dataset import Item
from .metrics import answer_matches, best_iou, choose_option, contains, is_hit, normalise, says_not_found, summarise


class EvalResult(BaseModel):
    records: list[dict[str, Any]]
    metrics: dict[str, Any]
    baseline: dict[str, Any] | None = None
    baseline_records: list[dict[str, Any]] | None = None


def score(item: Item, answer_text: str, spans: list[tuple[str, float, float]], video_name: str,
          short: bool = True) -> dict[str, Any]:
    """The judged part of a record: IoU of the top span in the item's video, choice, correctness.

    An open answer is right when the short answer matches the reference (``answer_matches``); a text that
    is not a short answer (``short=False``: the search baseline's snippet) is right when it contains it."""
    pred = next(((a, b) for v, a, b in spans if v == video_name), None)
    rec: dict[str, Any] = {"iou": round(best_iou(pred, item.spans), 4) if item.spans else None,
                           "hit": is_hit(pred, item.spans) if item.spans else None,
                           "found": bool(answer_text.strip()) and not says_not_found(answer_text),
                           "choice": None, "reference": item.answer}
    if item.options:
        rec["choice"] = choose_option(answer_text, item.options)
        rec["correct"] = rec["choice"] is not None and _is_answer(item, rec["choice"])
    elif item.answer:
        rec["correct"] = (answer_matches if short else contains)(answer_text, item.answer)
    else:
        rec["correct"] = rec["iou"] is not None and rec["iou"] >= 0.5
    return rec


def asked(item: Item) -> str:
    """The question as put to the planner: a multiple-choice item's options, when the question does not
    already list them, follow it lettered ("(A) two (B) three"), the way such benchmarks pose them."""
    from vdisc.agent.reader import options

    if not item.options or options(item.question)[1]:
        return item.question
    return item.question + " " + " ".join(f"({chr(ord('A') + i)}) {o}" for i, o in enumerate(item.options))


def _is_answer(item: Item, choice: int) -> bool:
    """Whether option ``choice`` is the reference, given as a letter ("B", "(B)") or as the option text."""
    ref = (item.answer or "").strip()
    return ref.strip("()").upper() == chr(ord("A") + choice) or normalise(ref) == normalise(item.options[choice])


def run(lib: Any, items: list[Item], *, planner: str = "offline", baseline: bool = False,
        index_missing: bool = False, max_steps: int = 12, replay: Any = None,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
    names = _ensure_indexed(lib, items, index_missing)
    records, base_records = [], []
    llm = "offline" if planner == "offline" else None
    for n, item in enumerate(items, 1):
        rec: dict[str, Any] = {"n": n, "video": item.video, "question": item.question, "kind": item.kind,
                               "options": item.options, "planner": planner}
        name = names.get(item.video)
        if name is None:
            rec.update(answer="", spans=[], error="video not indexed (use --index-missing)", latency=None,
                       tool_calls=0, iou=0.0 if item.spans else None, hit=False if item.spans else None,
                       found=False, choice=None, correct=False,
                       reference=item.answer)
        else:
            t0 = time.perf_counter()
            try:
                ans = lib.ask(asked(item), video=item.video, llm=llm, max_steps=max_steps, replay=replay,
                              remember=False)
                rec.update(answer=ans.answer, explanation=ans.explanation,
                           spans=[[s.video, s.start, s.end] for s in ans.spans], tool_calls=ans.steps, error=None,
                           confidence=max((s.confidence for s in ans.spans), default=0.0))
            except VdiscError as exc:
                rec.update(answer="", spans=[], tool_calls=0, error=str(exc))
            rec["latency"] = round(time.perf_counter() - t0, 3)
            rec.update(score(item, rec["answer"], [tuple(s) for s in rec["spans"]], name))
            if baseline:
                base_records.append(_baseline(lib, item, name, n))
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    return EvalResult(records=records, metrics=summarise(records),
                      baseline=summarise(base_records) if baseline else None,
                      baseline_records=base_records if baseline else None)


def _baseline(lib: Any, item: Item, name: str, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    hits = lib.search(item.question, video=item.video, top_k=1).hits
    text = hits[0].snippet if hits else ""
    spans = [(h.video, h.start, h.end) for h in hits]
    rec = {"n": n, "video": item.video, "question": item.question, "kind": item.kind, "options": item.options,
           "planner": "search", "answer": text, "spans": [list(s) for s in spans],
           "latency": round(time.perf_counter() - t0, 3), "tool_calls": 1}
    rec.update(score(item, text, spans, name, short=False))
    return rec


def _ensure_indexed(lib: Any, items: list[Item], index_missing: bool) -> dict[str, str]:
    """Dataset video path -> library video name, indexing missing files when asked."""
    wanted = sorted({i.video for i in items})
    known = {v.path: v.name for v in (lib.videos() if lib.settings.db_path.exists() else []) if v.status == "done"}
    missing = [p for p in wanted if str(Path(p).resolve()) not in known]
    if missing and index_missing:
        for report in lib.index(*missing):
            if report.status != "failed":
                known[report.path] = Path(report.path).name
    return {p: known[str(Path(p).resolve())] for p in wanted if str(Path(p).resolve()) in known}
