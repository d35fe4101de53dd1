"""ground: pin down the start and end of a moment.

Given a candidate window and what to look for, it scores, around the window
(padded by a few seconds): spoken utterances by word timestamps, on-screen
text tracks (whole extent, across clips), and the indexed frames' visual
similarity. The strongest channel decides the span; its strength is the
confidence. Then the edges are refined to the event's true extent:

- speech: an utterance grows into its neighbours of the same turn (no pause
  over ``TURN_GAP``) while the joined words still match the query about as
  well (``JOIN_SLACK``), so a warning of two sentences comes back whole;
- on-screen text: each edge of the track lies between an OCR read without the
  line and one with it; the frames in between are read (binary search at
  ``EDGE_FPS``) to find the first and last frame that show it. A library
  indexed before tracks existed re-reads the window at ``OCR_FPS`` instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from vdisc.errors import ConfigError
from vdisc.index.events import same_line

from .context import End, Start, ToolContext, VideoRef, clamp_window
from .evidence import (Spoken, indexed_text, locate, phrases, read_shown, stored_frame_scores, text_scores,
                       tracks_in, words_in)

PAD = 5.0  # seconds searched on each side of the candidate window
OCR_FPS = 2.0  # frame rate at which a matched on-screen line is re-read to time it (no tracks indexed)
EDGE_FPS = 8.0  # frame grid on which a track's edges are searched: edges within 1/8 s
TURN_GAP = 1.5  # seconds: utterances closer than this are one speaker's turn, and may join
TURN_MAX = 30.0  # seconds: a joined utterance is never longer
JOIN_SLACK = 0.05  # a neighbour joins when the joined text scores at most this much below the utterance alone


class GroundResult(BaseModel):
    video: str
    video_id: int
    start: float
    end: float
    confidence: float
    source: str  # speech | ocr | visual | window
    evidence: str


def ground(ctx: ToolContext, video: VideoRef, start: Start, end: End,
           query: Annotated[str, Field(description="a short description of the moment to pin down")],
           channel: Annotated[Literal["speech", "ocr"] | None,
                              Field(description="only what is said (speech) or only what is shown on screen "
                                                "(ocr), when the question says which")] = None) -> GroundResult:
    """Refine when a moment starts and ends. Give a candidate window (seconds) from
    search or inspect and a short description of the moment; returns the precise
    start, end and a confidence between 0 and 1, with the evidence used. With `channel`,
    only that channel's lines can be the moment (a question about what is shown is not
    answered by a line said beside it)."""
    if channel not in (None, "speech", "ocr"):
        raise ConfigError(f"unknown channel {channel!r}; use speech or ocr")
    with ctx.store.session() as s:
        v = ctx.video(s, video)
        lo, hi = clamp_window(float(start) - PAD, float(end) + PAD, v.duration)
        spoken = phrases(words_in(s, v.id, lo, hi)) if channel != "ocr" else []
        for p, score in zip(spoken, text_scores(ctx, query, [p.text for p in spoken])):
            p.score = round(float(score), 4)
        shown = (tracks_in(s, v.id, lo, hi) or indexed_text(s, v.id, lo, hi)) if channel != "speech" else []
        for line, score in zip(shown, text_scores(ctx, query, [x.text for x in shown])):
            line.score = round(float(score), 4)
        frames = stored_frame_scores(ctx, s, v.id, lo, hi, query) if channel is None else []
        path, name, vid = v.path, v.name, v.id
    best = locate(spoken, shown, frames, 1.0 / ctx.settings.fps, (lo, hi))
    if best.source == "speech":
        best.start, best.end, best.text = _whole_turn(ctx, query, spoken, best.start, best.end)
    elif best.source == "ocr":
        track = next((x for x in shown if x.bounds and (x.start, x.end, x.text) == (best.start, best.end, best.text)),
                     None)
        if track is not None:
            best.start, best.end = _track_edges(ctx, path, track.text, track.bounds, (best.start, best.end))
        else:
            best.start, best.end = _time_text(ctx, path, best.text, best.start, best.end)
    return GroundResult(video=name, video_id=vid, start=round(best.start, 3), end=round(best.end, 3),
                        confidence=best.confidence, source=best.source, evidence=best.text)


def _whole_turn(ctx: ToolContext, query: str, spoken: list[Spoken], start: float,
                end: float) -> tuple[float, float, str]:
    """Grow the matched utterance into its neighbours of the same turn while the joined words match as well."""
    i = next((k for k, p in enumerate(spoken) if (p.start, p.end) == (start, end)), None)
    if i is None:
        return start, end, ""
    a = b = i
    score = spoken[i].score
    while True:
        options = []
        if a > 0 and spoken[a].start - spoken[a - 1].end <= TURN_GAP:
            options.append((a - 1, b))
        if b + 1 < len(spoken) and spoken[b + 1].start - spoken[b].end <= TURN_GAP:
            options.append((a, b + 1))
        options = [(x, y) for x, y in options if spoken[y].end - spoken[x].start <= TURN_MAX]
        if not options:
            break
        texts = [" ".join(p.text for p in spoken[x : y + 1]) for x, y in options]
        scored = sorted(zip(text_scores(ctx, query, texts), options), key=lambda t: -t[0])
        best, (x, y) = float(scored[0][0]), scored[0][1]
        if best < score - JOIN_SLACK:
            break
        a, b, score = x, y, max(score, best)
    return spoken[a].start, spoken[b].end, " ".join(p.text for p in spoken[a : b + 1])


def _track_edges(ctx: ToolContext, path: str, text: str, bounds: tuple[float, float, float, float],
                 span: tuple[float, float]) -> tuple[float, float]:
    """The first and last frame showing ``text``, searched between the reads that bound each edge."""
    from vdisc.errors import VdiscError
    from vdisc.index import decode

    def shows(rgb: Any) -> bool:
        return any(same_line(line.text, text) for line in read_shown(ctx, [(0.0, rgb)], 1.0, 1))

    start, end = span
    try:
        with decode.open_video(path, backend=ctx.settings.decoder) as reader:
            def grid(lo: float, hi: float) -> list[tuple[float, Any]]:
                if hi - lo <= 1.0 / EDGE_FPS:
                    return []  # the reads already pin it
                return list(reader.frames(fps=EDGE_FPS, max_side=ctx.settings.max_side, start=lo, end=hi + 1e-3))

            first = _edge(grid(bounds[0], bounds[1]), shows, rising=True)
            gone = _edge(grid(bounds[2], bounds[3]), shows, rising=False)
    except VdiscError:
        return start, end
    return (first if first is not None else start), (gone if gone is not None else end)


def _edge(frames: list[tuple[float, Any]], shows: Any, rising: bool) -> float | None:
    """Binary search over ``frames``: the time the line appears (rising) or is gone (falling)."""
    if len(frames) < 2:
        return None
    if shows(frames[0][1]) == rising:
        return frames[0][0]  # it had already changed by the first frame
    if shows(frames[-1][1]) != rising:
        return None if rising else frames[-1][0]  # never appears here; or still shown where the media stops
    i, j = 0, len(frames) - 1  # invariant: frames[i] not yet changed, frames[j] changed
    while j - i > 1:
        m = (i + j) // 2
        if shows(frames[m][1]) == rising:
            j = m
        else:
            i = m
    return frames[j][0]


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
            if any(same_line(line.text, text) for line in read_shown(ctx, [(ts, rgb)], 1 / OCR_FPS, 1))]
    if not hits:
        return start, end
    return hits[0], min(hits[-1] + 1.0 / OCR_FPS, end)
