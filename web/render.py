"""HTML for moments, search results and answers: the one renderer behind notebooks and the web page.

A moment is a row: a thumbnail, its time range, its video and the words
that explain it. Search results and answers are lists of such rows. Where
the pictures come from is the only thing that differs between the two
displays, so it is a parameter (:class:`Media`): a notebook inlines small
JPEGs as data URLs, the page (``vdisc serve``) points at its own
``/thumb/{id}/{ms}`` URLs and plays the row's ``data-video-id`` from
``data-start`` when it is clicked.

Presentation, so it lives with the page (``web/``), not in ``index/``:
``serve.py`` imports it, and the notebook hooks (``_repr_html_`` of
``SearchResult`` and ``Answer``) import it when a notebook displays them.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from vdisc.timefmt import hms

THUMB_WIDTH = 160  # px, the long side of a thumbnail; small enough to inline a dozen in a notebook
THUMB_QUALITY = 70  # JPEG quality: ~4 kB per thumbnail
THUMB_NUDGE = 0.5  # s after a moment's start: a span that starts on a cut would otherwise show the shot before

ThumbSrc = Callable[[str, float], "str | None"]  # (video name, seconds) -> an <img src>, or None for no picture


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def thumb_time(start: float, end: float) -> float:
    """The second a moment's thumbnail shows: just after its start, never past its middle."""
    return max(0.0, start + min(THUMB_NUDGE, max(0.0, end - start) / 2))


def thumbnail_jpeg(path: str, t: float) -> bytes | None:
    """A small JPEG of the frame shown at ``t`` seconds, or None if it cannot be decoded."""
    try:
        from PIL import Image

        from vdisc.index import decode

        with decode.open_video(path) as reader:
            for _, rgb in reader.frames(fps=1.0, max_side=THUMB_WIDTH, start=max(0.0, t), end=t + 1.0):
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="JPEG", quality=THUMB_QUALITY)
                return buf.getvalue()
    except Exception:  # noqa: BLE001 - a missing thumbnail must not break display
        return None
    return None


def thumbnail(path: str, t: float) -> str | None:
    """A small JPEG data URL of the frame shown at ``t`` seconds, or None."""
    jpeg = thumbnail_jpeg(path, t)
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


@dataclass(frozen=True)
class Media:
    """Where rows get their pictures (``thumb``) and which video id each name plays (``ids``)."""

    thumb: ThumbSrc
    ids: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def inline(cls, paths: Mapping[str, str]) -> "Media":
        """Notebooks: thumbnails decoded now and inlined as data URLs (video name -> file path)."""
        return cls(lambda video, t: thumbnail(paths[video], t) if video in paths else None)

    @classmethod
    def served(cls, ids: Mapping[str, int], prefix: str = "") -> "Media":
        """The web page: thumbnails from ``{prefix}/thumb/{id}/{ms}``, decoded (and cached) when fetched."""

        def src(video: str, t: float) -> str | None:
            return f"{prefix}/thumb/{ids[video]}/{int(round(t * 1000))}" if video in ids else None

        return cls(src, dict(ids))


def moment_row(video: str, start: float, end: float, text: str, media: Media, *, video_id: int | None = None,
               notes: Iterable[str] = ()) -> str:
    """One moment: thumbnail, time range, video, text and optional notes (evidence), as a clickable row."""
    vid = video_id if video_id is not None else media.ids.get(video)
    src = media.thumb(video, thumb_time(start, end))
    img = (f'<img class="vdisc-thumb" src="{escape(src)}" alt="" width="{THUMB_WIDTH}" '
           f'style="margin-right:8px;flex:none">' if src else "")
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    attrs = f'data-video="{escape(video)}" data-start="{start:.3f}" data-end="{end:.3f}"'
    if vid is not None:
        attrs += f' data-video-id="{int(vid)}" tabindex="0" role="button" title="play from {hms(start)}"'
    return (f'<div class="vdisc-moment" {attrs} style="display:flex;align-items:center;margin:4px 0">{img}'
            f'<div><b class="vdisc-time">{hms(start)}–{hms(end)}</b> <span class="vdisc-video">{escape(video)}</span>'
            f"<br><span class='vdisc-text' style='color:#555'>{escape(text)}</span>"
            f"{'<ul class=vdisc-notes style=margin:2px 0>' + items + '</ul>' if items else ''}</div></div>")


def search_html(result: Any, media: Media) -> str:
    """A SearchResult (``tools.search``) as a list of rows, best first."""
    rows = "".join(moment_row(h.video, h.start, h.end, f"[{h.level}] {h.snippet}", media, video_id=h.video_id)
                   for h in result.hits)
    return (f'<div class="vdisc-search"><p><b>{escape(result.query)}</b></p>'
            f"{rows or '<p>no matches</p>'}</div>")


def answer_html(answer: Any, media: Media) -> str:
    """An Answer (``agent.answer``): its text, each moment as a row with the evidence for it, the rest of
    the evidence."""
    used: set[int] = set()
    rows = []
    for s in answer.spans:
        # evidence overlapping a span is listed under it: the reason to believe that moment
        notes = []
        for i, e in enumerate(answer.evidence):
            if e.video == s.video and e.start < s.end and e.end > s.start:
                used.add(i)
                notes.append(f"{hms(e.start)}–{hms(e.end)} [{e.tool}] {e.text}")
        rows.append(moment_row(s.video, s.start, s.end, f"confidence {s.confidence:.2f}", media, notes=notes))
    rest = "".join(f"<li>{hms(e.start)}–{hms(e.end)} {escape(e.video)} [{escape(e.tool)}]: {escape(e.text)}</li>"
                   for i, e in enumerate(answer.evidence) if i not in used)
    budget = " (budget used up)" if getattr(answer, "budget_exhausted", False) else ""
    why = getattr(answer, "explanation", "") or ""
    explained = f'<p class="vdisc-answer-explanation">{escape(why)}</p>' if why and why != answer.answer else ""
    return (f'<div class="vdisc-answer"><p><b>{escape(answer.question)}</b></p>'
            f'<p class="vdisc-answer-text">{escape(answer.answer)}</p>{explained}{"".join(rows)}'
            f"{'<p>other evidence:</p><ul>' + rest + '</ul>' if rest else ''}<p style='color:#888'>{answer.steps} "
            f"tool calls, {escape(answer.planner)} planner{budget}</p></div>")


__all__ = ["Media", "THUMB_WIDTH", "answer_html", "escape", "moment_row", "search_html", "thumb_time", "thumbnail",
           "thumbnail_jpeg"]
