"""Evidence inside a time window, shared by `inspect` and `ground`.

Speech comes as phrases (runs of Whisper words split at pauses and sentence
ends), on-screen text as lines with the time they were read, visuals as
per-frame similarities to the query. ``locate`` turns those signals into the
one span that best matches a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select

from vdisc.index.events import utterances
from vdisc.index.store import Event, Frame, Word

from .context import ToolContext
from .search import TEXT_FLOOR

TEXT_MATCH = TEXT_FLOOR  # the same bar search uses for "this text is about the query"
VISUAL_DROP = 0.02  # a frame within this of the peak similarity belongs to the peak's span
# CLIP-style text-image cosine: ~0.18 for unrelated pairs, ~0.32 for a clear match (ViT-B/32 class).
VISUAL_RANGE = (0.18, 0.32)
VISUAL_MAX_CONFIDENCE = 0.6  # pictures alone never make an answer as sure as matching words


class Spoken(BaseModel):
    start: float
    end: float
    text: str
    score: float = 0.0  # similarity to the query


class Shown(BaseModel):
    start: float
    end: float
    text: str
    score: float = 0.0
    bounds: tuple[float, float, float, float] | None = None  # a text track's: where its edges may lie


class FrameScore(BaseModel):
    ts: float
    score: float


@dataclass
class Located:
    start: float
    end: float
    confidence: float
    source: str  # speech | ocr | caption | visual | window
    text: str


def phrases(words: Sequence[Any]) -> list[Spoken]:
    """Timed words as utterances (split at sentence ends and pauses, the index's rule)."""
    return [Spoken(start=round(u[0].start, 3), end=round(u[-1].end, 3), text=" ".join(w.text for w in u))
            for u in utterances(words)]


def tracks_in(session: Any, video_id: int, lo: float, hi: float) -> list[Shown]:
    """The text tracks (on-screen lines with their whole extent) overlapping [lo, hi], unclamped."""
    rows = session.scalars(select(Event).where(Event.video_id == video_id, Event.kind == "track",
                                               Event.end > lo, Event.start < hi).order_by(Event.start)).all()
    return [Shown(start=e.start, end=e.end, text=e.text, bounds=tuple(e.bounds)) for e in rows]


def indexed_text(session: Any, video_id: int, lo: float, hi: float) -> list[Shown]:
    """On-screen lines the index read in clips overlapping [lo, hi], each spanning its clip (clamped)."""
    from vdisc.index.store import Clip

    clips = session.scalars(select(Clip).where(Clip.video_id == video_id, Clip.end > lo, Clip.start < hi)
                            .order_by(Clip.start)).all()
    return [Shown(start=round(max(c.start, lo), 3), end=round(min(c.end, hi), 3), text=line)
            for c in clips for line in c.ocr_text.splitlines() if line.strip()]


def words_in(session: Any, video_id: int, lo: float, hi: float) -> list[Any]:
    q = select(Word).where(Word.video_id == video_id, Word.end > lo, Word.start < hi).order_by(Word.start)
    return list(session.scalars(q))


def text_scores(ctx: ToolContext, query: str, texts: list[str]) -> np.ndarray:
    """Similarity of each text to the query: text embeddings, else shared-word overlap."""
    if not texts:
        return np.zeros(0, np.float32)
    model = ctx.registry.get("text")
    if model is not None:
        v = model.encode([query, *texts])
        return (v[1:] @ v[0]).astype(np.float32)
    q = set(_words(query))
    return np.array([len(q & set(_words(t))) / max(len(q), 1) for t in texts], np.float32)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def stored_frame_scores(ctx: ToolContext, session: Any, video_id: int, lo: float, hi: float,
                        query: str) -> list[FrameScore]:
    """Query similarity of the frames indexed in [lo, hi], from stored vectors (no decoding)."""
    model = ctx.registry.get("visual")
    index = ctx.store.vectors("frame", "visual")
    if model is None or not len(index) or index.model_key != model.spec.key:
        return []
    rows = session.execute(select(Frame.id, Frame.ts).where(
        Frame.video_id == video_id, Frame.ts >= lo, Frame.ts < hi).order_by(Frame.ts)).all()
    if not rows:
        return []
    sims = index.vectors([r[0] for r in rows]) @ model.encode_texts([query])[0]
    return [FrameScore(ts=round(r[1], 3), score=round(float(x), 4)) for r, x in zip(rows, sims)]


def visual_peak(frames: list[FrameScore], period: float) -> tuple[float, float, float] | None:
    """(start, end, peak score) of the contiguous run of frames near the best frame."""
    if not frames:
        return None
    best = max(range(len(frames)), key=lambda i: frames[i].score)
    floor = frames[best].score - VISUAL_DROP
    a = b = best
    while a > 0 and frames[a - 1].score >= floor:
        a -= 1
    while b < len(frames) - 1 and frames[b + 1].score >= floor:
        b += 1
    return frames[a].ts, frames[b].ts + period, frames[best].score


def text_confidence(score: float) -> float:
    """A text line's confidence: a match (similarity at least TEXT_MATCH) maps 0.15 (unrelated) to 0.6 (the
    same thing in other words) onto [0.05, 1]; a line below TEXT_MATCH is no match and gets half its
    similarity (at least 0.025), under any "not found" cut."""
    if score < TEXT_MATCH:
        return round(max(float(score), 0.05) * 0.5, 3)
    return round(float(np.clip((score - 0.15) / 0.45, 0.05, 1.0)), 3)


def locate(spoken: list[Spoken], shown: list[Shown], frames: list[FrameScore], period: float,
           window: tuple[float, float]) -> Located:
    """The span that best answers the query in a window, by channel strength.

    Words (spoken or shown) that match the query pin the moment precisely;
    without them, the run of frames most like the query; without those, the
    window itself with low confidence.
    """
    text_hits = [(s.score, "speech", s) for s in spoken] + [(s.score, "ocr", s) for s in shown]
    if text_hits:
        score, source, hit = max(text_hits, key=lambda t: t[0])
        if score >= TEXT_MATCH:
            return Located(hit.start, hit.end, text_confidence(score), source, hit.text)
    peak = visual_peak(frames, period)
    if peak is not None:
        a, b, score = peak
        lo, hi = VISUAL_RANGE
        conf = float(np.clip((score - lo) / (hi - lo), 0.05, 1.0)) * VISUAL_MAX_CONFIDENCE
        return Located(a, min(b, window[1]), round(conf, 3), "visual", "")
    if text_hits:
        score, source, hit = max(text_hits, key=lambda t: t[0])
        return Located(hit.start, hit.end, text_confidence(score), source, hit.text)
    return Located(window[0], window[1], 0.05, "window", "")


def read_shown(ctx: ToolContext, frames: list[tuple[float, np.ndarray]], period: float,
               limit: int) -> list[Shown]:
    """OCR up to ``limit`` evenly spread frames; a line's span runs over the frames that show it."""
    ocr = ctx.registry.get("ocr")
    if ocr is None or not frames or limit <= 0:
        return []
    picks = frames if len(frames) <= limit else [frames[round(i * (len(frames) - 1) / (limit - 1))]
                                                 for i in range(limit)] if limit > 1 else [frames[len(frames) // 2]]
    seen: dict[str, Shown] = {}
    step = (picks[1][0] - picks[0][0]) if len(picks) > 1 else period
    for ts, rgb in picks:
        for line in ocr.read(rgb):
            key = " ".join(line.text.split()).lower()
            if key in seen:
                seen[key].end = round(ts + step, 3)
            else:
                seen[key] = Shown(start=round(ts, 3), end=round(ts + step, 3), text=line.text)
    return list(seen.values())
