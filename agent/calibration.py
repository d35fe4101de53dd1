"""When a grounded moment is good enough to report: the confidence below which the offline planner says
"not found".

A confidence is a text model's similarity mapped to 0..1, so where "nothing like this happens" ends depends
on the model. ``fit`` learns the cut from an evaluation run made with no cut at all (``vdisc eval
--calibrate``): the questions about things that never happen should fall below it and the questions whose
moment was found (a hit) above it. The cut that separates them best is kept, per text model, in
``calibration.json`` beside this module (fitted on the dev split only); ``Settings.min_confidence``
(``VDISC_MIN_CONFIDENCE``) overrides it, and a text model with no fitted cut gets ``DEFAULT``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

DEFAULT = 0.15
FILE = Path(__file__).with_name("calibration.json")
MIN_KEEP = 0.9  # a cut must keep at least this share of the found moments, where one can


def _table() -> dict[str, Any]:
    try:
        return json.loads(FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def min_confidence(settings: Any | None) -> float:
    """The cut for these settings: the explicit setting, else the one fitted for the text model."""
    if settings is not None and settings.min_confidence is not None:
        return float(settings.min_confidence)
    model = settings.models.get("text") if settings is not None else None
    fitted = _table().get("text_models", {}).get(model or "", {})
    return float(fitted.get("min_confidence", DEFAULT))


def fit(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cut that best separates absent questions (reference "not found") from found ones (a hit), from
    records of a run with no cut: the midpoint between two neighbouring confidences that maximises the
    mean of the two recall rates, among cuts that keep at least ``MIN_KEEP`` of the found moments when one
    does; the lowest such cut on ties."""
    from vdisc.evaluation.metrics import NOT_FOUND, answer_key

    absent = [float(r.get("confidence") or 0.0) for r in records
              if r.get("reference") and answer_key(r["reference"]) == NOT_FOUND]
    found = [float(r.get("confidence") or 0.0) for r in records if r.get("hit")]
    if not absent or not found:
        raise ValueError("calibration needs questions about absent things (answer \"not found\") and found "
                         "moments in the same run")
    xs = sorted(set(absent + found))
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(xs, xs[1:])] + [xs[-1] + 1e-3]

    def rates(c: float) -> tuple[float, float]:
        return sum(x < c for x in absent) / len(absent), sum(x >= c for x in found) / len(found)

    keep = [c for c in cuts if rates(c)[1] >= MIN_KEEP] or cuts
    best = max(keep, key=lambda c: (sum(rates(c)), -c))
    rejected, kept = rates(best)
    return {"min_confidence": round(best, 4), "absent": len(absent), "found": len(found),
            "absent_rejected": round(rejected, 4), "found_kept": round(kept, 4)}
