"""Hybrid search over every granularity of the index.

Ranked lists come from BM25 over words (SQLite FTS5) and from dense vectors
(text embeddings of speech / on-screen text / captions / summaries, and
visual embeddings of frames, clips, scenes, videos). Each list votes for
*units* (a clip, a scene, a frame, a video) and the votes are fused by
reciprocal rank fusion: score(unit) = sum over lists of w / (K + rank).

Two guards keep a list from voting for everything it ranks:
- a dense text list only keeps hits whose cosine similarity clears
  ``TEXT_FLOOR`` (sentence embeddings of unrelated texts score below it);
- each dense list is cut at ``DENSE_DEPTH``.
Weights favour clips (the moments people jump to) over the coarser scene
and video levels, and word/text channels over raw visual similarity, which
is broader. All of this is a function of the query and the index only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, PrivateAttr
from sqlalchemy import select

from vdisc.config import LEVELS, MODALITIES
from vdisc.errors import ConfigError, LibraryError

from .context import ToolContext

RRF_K = 60  # the usual RRF constant: flattens the head so no single list dominates
TEXT_FLOOR = 0.25  # cosine below which two sentence embeddings are unrelated
DENSE_DEPTH = 20  # hits taken from each dense list
FTS_DEPTH = 50  # hits taken from the word index
LEVEL_WEIGHT = {"clip": 1.0, "scene": 0.7, "frame": 0.6, "video": 0.4}
MODALITY_WEIGHT = {"speech": 1.0, "ocr": 1.0, "caption": 1.0, "summary": 1.0, "visual": 0.5, "words": 1.0}
SNIPPET_CHARS = 200


class Hit(BaseModel):
    video: str
    video_id: int
    level: str
    start: float
    end: float
    score: float
    snippet: str


class SearchResult(BaseModel):
    query: str
    hits: list[Hit]
    _paths: dict[str, str] = PrivateAttr(default_factory=dict)  # video name -> file, for thumbnails

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def _repr_html_(self) -> str:
        from vdisc.index.render import Media, search_html

        return search_html(self, Media.inline(self._paths))


@dataclass
class _Unit:
    level: str
    id: int
    score: float = 0.0
    best: float = 0.0  # largest single contribution, and the text that made it
    snippet: str = ""
    matched: list[str] = field(default_factory=list)


def search(
    ctx: ToolContext,
    query: str,
    *,
    top_k: int = 10,
    video: str | int | None = None,
    level: str | None = None,
    modality: str | None = None,
    within: tuple[float, float] | None = None,
    after: float | None = None,
    before: float | None = None,
) -> SearchResult:
    """Find the moments that best match a description, across all videos.

    Hybrid search over speech, on-screen text, captions and visuals at clip,
    scene, frame and video level. Describe what is said, shown or seen in
    plain words. Optional filters: `video` (id or file name), `level`, `modality`,
    and time windows in seconds: `within=[start, end]`, `after`, `before`
    (moments overlapping the window are kept).
    """
    store, registry = ctx.store, ctx.registry
    from vdisc.index.store import TextChunk, Video

    query = query.strip()
    if not query:
        raise ConfigError("the search query is empty")
    if level is not None and level not in LEVELS:
        raise ConfigError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
    if top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    lo, hi = time_window(within, after, before)

    units: dict[tuple[str, int], _Unit] = {}

    def vote(lvl: str, uid: int, rank: int, weight: float, snippet: str = "", why: str = "") -> None:
        u = units.setdefault((lvl, uid), _Unit(lvl, uid))
        c = weight * LEVEL_WEIGHT.get(lvl, 0.5) / (RRF_K + rank)
        u.score += c
        if why and why not in u.matched:
            u.matched.append(why)
        if snippet and c > u.best:
            u.best, u.snippet = c, snippet

    with store.session() as s:
        video_id = None
        if video is not None:
            v = store.find_video(s, video)
            if v is None:
                raise LibraryError(f"no indexed video matches {video!r}; see vdisc ls")
            video_id = v.id

        # 1. words (BM25)
        if modality != "visual":
            for rank, (chunk, _) in enumerate(
                store.fts(s, query, limit=FTS_DEPTH, video_id=video_id, level=level, modality=modality, lo=lo, hi=hi)
            ):
                vote(chunk.level, chunk.unit_id, rank, MODALITY_WEIGHT["words"], chunk.text, chunk.modality)

        # 2. dense lists
        qvecs: dict[bool, np.ndarray] = {}
        for index in store.vector_indexes():
            if (level and index.level != level) or (modality and index.modality != modality) or not len(index):
                continue
            is_visual = index.modality == "visual"
            model = registry.get("visual" if is_visual else "text")
            if model is None or index.model_key != model.spec.key:
                continue  # no model, or vectors from another model: their scores would be meaningless
            if is_visual not in qvecs:  # one encoding per model, not per index
                qvecs[is_visual] = _query_vector(model, query, is_visual)
            qvec = qvecs[is_visual]
            allowed = None
            if video_id is not None or lo is not None or hi is not None:
                allowed = _allowed_ids(s, index, video_id, lo, hi)
            hits = index.search(qvec, DENSE_DEPTH, allowed=allowed)
            if not is_visual:
                hits = [(i, sc) for i, sc in hits if sc >= TEXT_FLOOR]
                chunks = {c.id: c for c in s.scalars(select(TextChunk).where(TextChunk.id.in_([i for i, _ in hits])))}
                for rank, (tid, _) in enumerate(hits):
                    c = chunks.get(tid)
                    if c is not None:
                        vote(c.level, c.unit_id, rank, MODALITY_WEIGHT[c.modality], c.text, c.modality)
            else:
                for rank, (uid, _) in enumerate(hits):
                    vote(index.level, uid, rank, MODALITY_WEIGHT["visual"], why="visual")

        ranked = sorted(units.values(), key=lambda u: (-u.score, -LEVEL_WEIGHT[u.level], u.id))
        # rows can vanish under a concurrent re-index (vectors go first, rows after): skip those units
        found = [(h, u) for h, u in ((_materialise(s, u), u) for u in ranked[: top_k * 2]) if h[0] >= 0][:top_k]
        hits_out, ranked = [h for h, _ in found], [u for _, u in found]
        videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_({h[0] for h in hits_out})))}
        names = {i: v.name for i, v in videos.items()}
    result = SearchResult(
        query=query,
        hits=[Hit(video=names.get(vid, "?"), video_id=vid, level=u.level, start=round(a, 3), end=round(b, 3),
                  score=round(u.score, 6), snippet=snip) for (vid, a, b, snip), u in zip(hits_out, ranked)],
    )
    result._paths = {v.name: v.path for v in videos.values()}
    return result


def _query_vector(model: Any, query: str, visual: bool) -> np.ndarray:
    return (model.encode_texts([query]) if visual else model.encode([query]))[0]


def time_window(within: tuple[float, float] | None, after: float | None,
                before: float | None) -> tuple[float | None, float | None]:
    """The [lo, hi] seconds a moment must overlap (None = open), from the three filters."""
    lo, hi = (float(within[0]), float(within[1])) if within is not None else (None, None)
    if after is not None:
        lo = max(lo, float(after)) if lo is not None else float(after)
    if before is not None:
        hi = min(hi, float(before)) if hi is not None else float(before)
    if lo is not None and hi is not None and hi <= lo:
        raise ConfigError(f"empty time window: {lo:g}s to {hi:g}s")
    return lo, hi


def _allowed_ids(session: Any, index: Any, video_id: int | None, lo: float | None, hi: float | None) -> list[int]:
    """Row ids of ``index`` that belong to the video and overlap [lo, hi]."""
    from vdisc.index.store import UNIT_TABLES, TextChunk, Video

    if index.modality != "visual":
        table, conds = TextChunk, [TextChunk.level == index.level, TextChunk.modality == index.modality]
    else:
        table, conds = UNIT_TABLES[index.level], []
    if video_id is not None:
        conds.append((table.id if table is Video else table.video_id) == video_id)
    if table is Video:
        if lo is not None:
            conds.append(Video.duration > lo)
    elif index.level == "frame":
        conds += [table.ts >= lo] if lo is not None else []
        conds += [table.ts < hi] if hi is not None else []
    else:
        conds += [table.end > lo] if lo is not None else []
        conds += [table.start < hi] if hi is not None else []
    return list(session.scalars(select(table.id).where(*conds)))


def _materialise(session: Any, unit: _Unit) -> tuple[int, float, float, str]:
    """(video id, start, end, snippet) of a unit."""
    from vdisc.index.store import UNIT_TABLES, Clip

    row = session.get(UNIT_TABLES[unit.level], unit.id)
    if row is None:  # vectors of a video removed while we searched
        return (-1, 0.0, 0.0, "")
    fallback = f"[{'+'.join(unit.matched)} match]"
    if unit.level == "video":
        return (row.id, 0.0, row.duration, _trim(unit.snippet or row.summary))
    if unit.level == "frame":
        clip = session.get(Clip, row.clip_id)
        end = min(row.ts + 1.0, clip.end) if clip else row.ts + 1.0
        return (row.video_id, row.ts, end, _trim(unit.snippet or _clip_text(clip) or fallback))
    snippet = unit.snippet or (_clip_text(row) if unit.level == "clip" else "")
    return (row.video_id, row.start, row.end, _trim(snippet or fallback))


def _clip_text(clip: Any) -> str:
    if clip is None:
        return ""
    return clip.transcript or clip.caption or clip.ocr_text.replace("\n", " / ")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"

