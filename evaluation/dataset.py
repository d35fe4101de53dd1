"""The evaluation dataset: JSONL, one question per line.

    {"video": str, "question": str, "spans": [[start, end], ...], "answer": str|null,
     "options": [str]|null, "kind": str|null}

``video`` is a path relative to the dataset file, or absolute; times are seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError, field_validator

from vdisc.errors import ConfigError


class Item(BaseModel):
    video: str
    question: str
    spans: list[tuple[float, float]] = []
    answer: str | None = None
    options: list[str] | None = None
    kind: str | None = None

    @field_validator("spans")
    @classmethod
    def _ordered(cls, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for a, b in spans:
            if b < a or a < 0:
                raise ValueError(f"span [{a}, {b}] is not a forward interval in seconds")
        return spans


def load(path: str | Path) -> list[Item]:
    """Items of a JSONL dataset, with ``video`` resolved against the file's folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: no such dataset file")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = Item(**json.loads(line))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{path}:{n}: not a dataset record ({first})") from None
        video = Path(item.video).expanduser()
        item.video = str(video if video.is_absolute() else (path.parent / video).resolve())
        items.append(item)
    if not items:
        raise ConfigError(f"{path}: no questions in the dataset")
    return items
