"""ground: pin down the start and end of a moment.

Given a candidate window and what to look for, it scores, around the window
(padded by a few seconds): spoken phrases by word timestamps, on-screen text
lines (re-read frame by frame so the span covers exactly the frames that show
them), and the indexed frames' visual similarity. The strongest channel
decides the span; its strength is the confidence.
"""

from __future__ import annotations

from pydantic import BaseModel

from .context import ToolContext, clamp_window
from .evidence import indexed_text, locate, phrases, read_shown, stored_frame_scores, text_scores, words_in

PAD = 5.0  # seconds searched on each side of the candidate window
OCR_FPS = 2.0  # frame rate at which a matched on-screen line is re-read to time it


class GroundResult(BaseModel):
    video: str
    video_id: int
    start: float
    end: float
    confidence: float
    source: str  # speech | ocr | visual | window
    evidence: str


def ground(ctx: ToolContext, video: str, start: float, end: float, query: str) -> GroundResult:
    """Refine when a moment starts and ends. Give a candidate window (seconds) from
    search or inspect and a short description of the moment; returns the precise
    start, end and a confidence between 0 and 1, with the evidence used."""
    with ctx.store.session() as s:
        v = ctx.video(s, video)
        lo, hi = clamp_window(float(start) - PAD, float(end) + PAD, v.duration)
        spoken = phrases(words_in(s, v.id, lo, hi))
        for p, score in zip(spoken, text_scores(ctx, query, [p.text for p in spoken])):
            p.score = round(float(score), 4)
        shown = indexed_text(s, v.id, lo, hi)
        for line, score in zip(shown, text_scores(ctx, query, [x.text for x in shown])):
            line.score = round(float(score), 4)
        frames = stored_frame_scores(ctx, s, v.id, lo, hi, query)
        path, name, vid = v.path, v.name, v.id
    best = locate(spoken, shown, frames, 1.0 / ctx.settings.fps, (lo, hi))
    if best.source == "ocr":
        best.start, best.end = _time_text(ctx, path, best.text, best.start, best.end)
    return GroundResult(video=name, video_id=vid, start=round(best.start, 3), end=round(best.end, 3),
                        confidence=best.confidence, source=best.source, evidence=best.text)


def _time_text(ctx: ToolContext, path: str, text: str, start: float, end: float) -> tuple[float, float]:
    """The span of frames (read at OCR_FPS) that show ``text``; the clip span if it cannot be read."""
    from vdisc.errors import VdiscError
    from vdisc.index import decode

    try:
        with decode.open_video(path, backend=ctx.settings.decoder) as reader:
            frames = list(reader.frames(fps=OCR_FPS, max_side=ctx.settings.max_side, start=start, end=end))
    except VdiscError:
        return start, end
    hits = [ts for ts, rgb in frames
            if any(_same_line(line.text, text) for line in read_shown(ctx, [(ts, rgb)], 1 / OCR_FPS, 1))]
    if not hits:
        return start, end
    return hits[0], min(hits[-1] + 1.0 / OCR_FPS, end)


def _same_line(a: str, b: str) -> bool:
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    if a == b:
        return True
    from difflib import SequenceMatcher

    return SequenceMatcher(None, a, b).ratio() >= 0.8



