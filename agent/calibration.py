"""When a grounded moment is good enough to report: the confidence below which the offline planner says
"not found".

A confidence is a text model's similarity mapped to 0..1, so where "nothing like this happens" ends depends
on the model. ``vdisc.evaluation.calibration.fit`` learns the cut from an evaluation run made with no cut
at all (``vdisc eval --calibrate``): the questions about things that never happen should fall below it and
the questions whose moment was found (a hit) above it. The cut that separates them best is kept, per text
model, in ``calibration.json`` beside this module (fitted on the dev split only); ``Settings.min_confidence``
(``VDISC_MIN_CONFIDENCE``) overrides it, and a text model with no fitted cut gets ``DEFAULT``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT = 0.15
FILE = Path(__file__).with_name("calibration.json")


@lru_cache(maxsize=1)  # a file shipped with the package: read once, not at every ask
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
