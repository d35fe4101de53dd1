"""Fitting the offline planner's "not found" cut (``vdisc.agent.calibration``) from an evaluation run."""

from __future__ import annotations

from typing import Any, Sequence

from .metrics import NOT_FOUND, answer_key

MIN_KEEP = 0.9  # a cut must keep at least this share of the found moments, where one can


def fit(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cut that best separates absent questions (reference "not found") from found ones (a hit), from
    records of a run with no cut: the midpoint between two neighbouring confidences that maximises the
    mean of the two recall rates, among cuts that keep at least ``MIN_KEEP`` of the found moments when one
    does; the lowest such cut on ties."""
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
