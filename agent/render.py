"""HTML for notebooks: an answer or search result with times and thumbnails."""

from __future__ import annotations

import base64
import io
from typing import Any

from .answer import escape, hms

THUMB_WIDTH = 160


def thumbnail(path: str, t: float) -> str | None:
    """A small JPEG data URL of the frame shown at ``t`` seconds, or None."""
    try:
        from PIL import Image

        from vdisc.index import decode

        with decode.open_video(path) as reader:
            for _, rgb in reader.frames(fps=1.0, max_side=THUMB_WIDTH, start=max(0.0, t), end=t + 1.0):
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="JPEG", quality=70)
                return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except Exception:  # noqa: BLE001 - a missing thumbnail must not break display
        return None
    return None


def _row(video: str, start: float, end: float, text: str, paths: dict[str, str]) -> str:
    src = thumbnail(paths[video], start) if video in paths else None
    img = f'<img src="{src}" width="{THUMB_WIDTH}" style="margin-right:8px">' if src else ""
    return (f'<div style="display:flex;align-items:center;margin:4px 0">{img}<div><b>{hms(start)}–{hms(end)}</b> '
            f"{escape(video)}<br><span style='color:#555'>{escape(text)}</span></div></div>")


def answer_html(answer: Any, paths: dict[str, str] | None = None) -> str:
    paths = paths if paths is not None else getattr(answer, "_paths", {}) or {}
    rows = "".join(_row(s.video, s.start, s.end, f"confidence {s.confidence:.2f}", paths) for s in answer.spans)
    ev = "".join(f"<li>{hms(e.start)}–{hms(e.end)} {escape(e.video)} [{escape(e.tool)}]: {escape(e.text)}</li>"
                 for e in answer.evidence)
    return (f"<div><p><b>{escape(answer.question)}</b></p><p>{escape(answer.answer)}</p>{rows}"
            f"{'<ul>' + ev + '</ul>' if ev else ''}<p style='color:#888'>{answer.steps} tool calls, "
            f"{escape(answer.planner)} planner</p></div>")


def search_html(result: Any, paths: dict[str, str] | None = None) -> str:
    paths = paths or {}
    rows = "".join(_row(h.video, h.start, h.end, f"[{h.level}] {h.snippet}", paths) for h in result.hits)
    return f"<div><p><b>{escape(result.query)}</b></p>{rows or '<p>no matches</p>'}</div>"
