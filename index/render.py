"""HTML pieces for notebooks: moments with their times and a thumbnail.

Lives at the bottom of the house (it only needs the decoder) so that search
results and answers render with the same rows.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

THUMB_WIDTH = 160


def hms(seconds: float) -> str:
    """h:mm:ss for people (times are float seconds everywhere else)."""
    seconds = max(0, int(round(float(seconds))))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def escape(text: str) -> str:
    return html.escape(text, quote=True)


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


def moment_row(video: str, start: float, end: float, text: str, paths: dict[str, str]) -> str:
    src = thumbnail(paths[video], start) if video in paths else None
    img = f'<img src="{src}" width="{THUMB_WIDTH}" style="margin-right:8px">' if src else ""
    return (f'<div style="display:flex;align-items:center;margin:4px 0">{img}<div><b>{hms(start)}–{hms(end)}</b> '
            f"{escape(video)}<br><span style='color:#555'>{escape(text)}</span></div></div>")


def search_html(result: Any, paths: dict[str, str]) -> str:
    rows = "".join(moment_row(h.video, h.start, h.end, f"[{h.level}] {h.snippet}", paths) for h in result.hits)
    return f"<div><p><b>{escape(result.query)}</b></p>{rows or '<p>no matches</p>'}</div>"
