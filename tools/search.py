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
When nothing at all clears the floor (a paraphrase far from a garbled
transcript), the nearest texts are returned anyway, scaled down by
``FAINT_SHARE``: an empty answer would hide the closest candidate, and
whether it is close enough is for the caller (ground's confidence) to say.
Weights favour clips (the moments people jump to) over the coarser scene,
hour, day and video levels, and word/text channels over raw visual
similarity, which is broader. All of this is a function of the query and
the index only.

Time relative to a video's end: ``last`` keeps the final seconds of each
video (for a live source, the latest media received). ``order`` "earliest" or
"latest" returns the *relevant* hits in time order instead of by score: a hit
is relevant when its score is at least ``ORDER_FRACTION`` of the best one,
and a coarse hit (scene, hour, day, video) is left out when a finer relevant
hit lies inside it, so the answer is as precise as the index allows. In that
mode equal scores within a list share a rank (the same words said twice
vote alike), and the word index breaks ties by time, so its limited list
keeps the earliest or latest of equally good matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr
from sqlalchemy import select

from vdisc.config import LEVELS, MODALITIES, Level, Modality
from vdisc.errors import ConfigError, LibraryError

from .context import ToolContext

# [start, end] in seconds: a list of two numbers (tool schemas must not use tuples; see agent/toolbox.py)
Window = Annotated[list[float], Field(min_length=2, max_length=2)]

RRF_K = 60  # the usual RRF constant: flattens the head so no single list dominates
TEXT_FLOOR = 0.25  # cosine below which two sentence embeddings are unrelated
DENSE_DEPTH = 20  # hits taken from each dense list
FAINT_SHARE = 0.1  # when no text clears TEXT_FLOOR: the nearest ones are returned with this share of their vote
FTS_DEPTH = 50  # hits taken from the word index
# Events (utterances, text tracks) carry the true extent of what was said or shown; they vote a little
# below the clip holding them, so a clip still leads while the event's own span comes with it.
LEVEL_WEIGHT = {"clip": 1.0, "event": 0.9, "scene": 0.7, "frame": 0.6, "hour": 0.45, "day": 0.4, "video": 0.4}
COARSE = frozenset({"scene", "hour", "day", "video"})  # levels that can contain a finer hit
ORDER_FRACTION = 0.5  # with order earliest/latest: hits scoring at least this share of the best are relevant
ORDER_POOL = 100  # units materialised to sort by time (the best-scored ones)
MODALITY_WEIGHT = {"speech": 1.0, "ocr": 1.0, "caption": 1.0, "summary": 1.0, "visual": 0.5, "words": 1.0,
                   "temporal": 0.6}  # the trained clip compressor's vectors (frame order kept): trained on words, so a
# little above raw visual similarity; where two clips pool to one visual vector it decides their order
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
        # presentation is asked for by the notebook, at display time: the page's renderer is imported only then
        from vdisc.web.render import Media, search_html

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
    query: Annotated[str, Field(description="what is said, shown or seen, in plain words")],
    *,
    top_k: Annotated[int, Field(description="how many moments to return", ge=1, le=100)] = 10,
    video: Annotated[str | int | None, Field(description="only this video (file name or id)")] = None,
    level: Annotated[Level | None, Field(description="only this granularity")] = None,
    modality: Annotated[Modality | None, Field(description="only this channel")] = None,
    within: Annotated[Window | None, Field(description="only moments overlapping [start, end] seconds")] = None,
    after: Annotated[float | None, Field(description="only moments ending after this second")] = None,
    before: Annotated[float | None, Field(description="only moments starting before this second")] = None,
    last: Annotated[float | None, Field(description="only the final seconds of each video (600 = the last "
                                                     "10 minutes)", gt=0)] = None,
    order: Annotated[Literal["relevance", "earliest", "latest"],
                     Field(description="best first, or the relevant moments in time order")] = "relevance",
) -> SearchResult:
    """Find the moments that best match a description, across all videos. Describe what is said, shown or
    seen in plain words. Filters: `video` (id or file name), `level`, `modality`, time windows in seconds
    (`within=[start, end]`, `after`, `before`: moments overlapping the window), and `last`: only the final
    `last` seconds of each video, i.e. the most recent media of a live source ("in the last 10 minutes" is
    last=600). `order`: "relevance" (default, best first); "earliest" or "latest" return the relevant hits
    (score at least half the best) in time order, first or most recent first: use them for "the first
    time", "when did it begin", "the latest", "most recently".

    Hybrid search over speech, on-screen text, captions and visuals at clip,
    event (whole utterances and on-screen text tracks), scene, frame, hour, day and video level.
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
    if order not in ("relevance", "earliest", "latest"):
        raise ConfigError(f"unknown order {order!r}; use relevance, earliest or latest")
    if last is not None and not last > 0:
        raise ConfigError(f"--last must be a positive duration, not {last!r}")
    lo, hi = time_window(within, after, before)
    ordered = order != "relevance"

    def ranks(scores: list[float]) -> list[int]:
        """List positions; in time order, equal scores share a rank, so equally good moments vote alike."""
        if not ordered:
            return list(range(len(scores)))
        return [next(j for j, x in enumerate(scores) if abs(x - sc) <= 1e-9 * max(1.0, abs(sc)))
                for sc in scores]

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
            words = store.fts(s, query, limit=FTS_DEPTH, prefer=order if ordered else None, video_id=video_id,
                              level=level, modality=modality, lo=lo, hi=hi, last=last)
            for rank, (chunk, _) in zip(ranks([sc for _, sc in words]), words):
                vote(chunk.level, chunk.unit_id, rank, MODALITY_WEIGHT["words"], chunk.text, chunk.modality)

        # 2. dense lists
        qvecs: dict[Any, np.ndarray] = {}
        below: list[list[tuple[int, float]]] = []  # each dense text list as it came, before the floor

        def text_vote(hits: list[tuple[int, float]]) -> None:
            chunks = {c.id: c for c in s.scalars(select(TextChunk).where(TextChunk.id.in_([i for i, _ in hits])))}
            for rank, (tid, _) in zip(ranks([sc for _, sc in hits]), hits):
                c = chunks.get(tid)
                if c is not None:
                    vote(c.level, c.unit_id, rank, MODALITY_WEIGHT[c.modality], c.text, c.modality)

        for index in store.vector_indexes():
            if (level and index.level != level) or (modality and index.modality != modality) or not len(index):
                continue
            if index.modality == "temporal":  # the trained clip compressor's vectors: unit ids, like visual
                key, is_visual = "temporal", True
                if key not in qvecs:
                    from vdisc.index.models.compressor import temporal_query

                    qvecs[key] = temporal_query(registry, query, index.model_key)
                if qvecs[key] is None:
                    continue  # no trained compressor, or not the one (or text model) these vectors came from
            else:
                is_visual = key = index.modality == "visual"
                model = registry.get("visual" if is_visual else "text")
                if model is None or index.model_key != model.spec.key:
                    continue  # no model, or vectors from another model: their scores would be meaningless
                if key not in qvecs:  # one encoding per model, not per index
                    qvecs[key] = _query_vector(model, query, is_visual)
            qvec = qvecs[key]
            allowed = None
            if video_id is not None or lo is not None or hi is not None or last is not None:
                allowed = _allowed_ids(s, index, video_id, lo, hi, last)
            hits = index.search(qvec, DENSE_DEPTH, allowed=allowed)
            if not is_visual:
                below.append(hits)
                hits = [(i, sc) for i, sc in hits if sc >= TEXT_FLOOR]
                text_vote(hits)
            else:
                for rank, (uid, _) in zip(ranks([sc for _, sc in hits]), hits):
                    vote(index.level, uid, rank, MODALITY_WEIGHT[index.modality], why=index.modality)

        if not units and any(below):
            # nothing cleared the floor: the nearest texts still answer, at the bottom of any scale (a
            # tenth of their vote), so "no moments" means the filters leave no text, and callers judge how near
            for hits in below:
                text_vote(hits)
            for u in units.values():
                u.score *= FAINT_SHARE
        ranked = sorted(units.values(), key=lambda u: (-u.score, -LEVEL_WEIGHT[u.level], u.id))
        pool = ranked[: top_k * 2] if order == "relevance" else ranked[:ORDER_POOL]
        # rows can vanish under a concurrent re-index (vectors go first, rows after): skip those units
        found = [(h, u) for h, u in ((_materialise(s, u), u) for u in pool) if h[0] >= 0]
        if order == "relevance":
            found = _reread(ctx, query, found)[:top_k]
        else:
            found = _in_time_order(found, order)[:top_k]
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


def _in_time_order(found: list[tuple[tuple[int, float, float, str], _Unit]],
                   order: str) -> list[tuple[tuple[int, float, float, str], _Unit]]:
    """The relevant hits (at least ORDER_FRACTION of the best score), earliest first or latest first.

    A coarse hit that contains a finer relevant hit of the same video is left
    out: the finer one says more precisely when.
    """
    if not found:
        return []
    best = max(u.score for _, u in found)
    relevant = [(h, u) for h, u in found if u.score >= ORDER_FRACTION * best]
    fine = [h for h, u in relevant if u.level not in COARSE]

    def covers(h: tuple[int, float, float, str]) -> bool:
        return any(f[0] == h[0] and h[1] <= f[1] and f[2] <= h[2] for f in fine)

    kept = [(h, u) for h, u in relevant if u.level not in COARSE or not covers(h)]
    if order == "earliest":
        return sorted(kept, key=lambda hu: (hu[0][1], hu[0][2], -hu[1].score))
    return sorted(kept, key=lambda hu: (-hu[0][2], -hu[0][1], -hu[1].score))


def parse_duration(text: str | float | int) -> float:
    """Seconds from '45' (seconds), '90s', '10m', '2h', '1h30m', '1d' or a number; ConfigError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)([dhms]?)", raw)
        units = [u for _, u in parts]
        if (not raw or "".join(n + u for n, u in parts) != raw or ("" in units and len(parts) > 1)
                or len(set(units)) != len(units)):
            raise ConfigError(f"bad duration {str(text)!r}: use seconds or a span like 90s, 10m, 2h, 1h30m")
        scale = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
        seconds = sum(float(n) * scale[u] for n, u in parts)
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"bad duration {str(text)!r}: it must be more than zero seconds")
    return seconds


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


def _allowed_ids(session: Any, index: Any, video_id: int | None, lo: float | None, hi: float | None,
                 last: float | None = None) -> Any:
    """Row ids of ``index`` that belong to the video, overlap [lo, hi] and lie in its final ``last`` seconds,
    as id ranges (``IdRanges``): SQL finds the runs, so no id list is ever built in Python.

    The runs are taken over the index's own rows (its level and modality) in id order: a run ends only
    where a row of this index fails the filter, so a video's rows, written together by the one writer,
    make one range however many other rows (other levels, other channels) share their id span.
    """
    from sqlalchemy import and_, case, func, true

    from vdisc.index.idranges import IdRanges
    from vdisc.index.store import UNIT_MODALITIES, UNIT_TABLES, Period, TextChunk, Video

    if index.modality not in UNIT_MODALITIES:  # temporal vectors are keyed by clip ids too
        table, population = TextChunk, [TextChunk.level == index.level, TextChunk.modality == index.modality]
    else:
        table, population = UNIT_TABLES[index.level], []
        if table is Period:
            population.append(Period.level == index.level)
    conds = []
    owner = table.id if table is Video else table.video_id
    if video_id is not None:
        conds.append(owner == video_id)
    if table is Video:
        if lo is not None:
            conds.append(Video.duration > lo)
        if last is not None:
            return IdRanges.empty()  # a whole video never lies inside its own final stretch
    elif index.level == "frame":
        conds += [table.ts >= lo] if lo is not None else []
        conds += [table.ts < hi] if hi is not None else []
    else:
        conds += [table.end > lo] if lo is not None else []
        conds += [table.start < hi] if hi is not None else []
    if last is not None:  # the same rule as the word index (store.LAST_WINDOW_SQL)
        end_of_video = select(Video.duration).where(Video.id == table.video_id).scalar_subquery()
        if index.level == "frame":
            conds.append(table.ts >= end_of_video - last)
        elif index.level in ("hour", "day", "video"):
            conds.append(table.start > end_of_video - last - 1e-6)
        else:
            conds.append(table.end > end_of_video - last)
    rows = select(table.id.label("id"), case((and_(true(), *conds), 1), else_=0).label("ok")).where(*population)
    if video_id is not None:  # only the video's id span can hold its rows: the runs are looked for there
        first, final = session.execute(select(func.min(table.id), func.max(table.id))
                                       .where(*population, owner == video_id)).one()
        if first is None:
            return IdRanges.empty()
        rows = rows.where(table.id.between(first, final))
    r = rows.subquery()
    runs = select(r.c.id, r.c.ok, (func.row_number().over(order_by=r.c.id)
                                   - func.row_number().over(partition_by=r.c.ok, order_by=r.c.id)).label("run")
                  ).subquery()
    pairs = session.execute(select(func.min(runs.c.id), func.max(runs.c.id)).where(runs.c.ok == 1)
                            .group_by(runs.c.run)).all()
    return IdRanges.from_inclusive(pairs)


def _reread(ctx: ToolContext, query: str, found: list[tuple[tuple[int, float, float, str], _Unit]]
            ) -> list[tuple[tuple[int, float, float, str], _Unit]]:
    """The best hits re-read against the query by the rerank role (a cross-encoder), when it loads: their
    order and scores become the second stage's (``tools.rerank``). Off, the fused order stands: the
    model-free fallback reader did not beat it on the dev benchmark, so it is not used here."""
    if len(found) < 2 or ctx.registry.get("rerank") is None:
        return found
    from .rerank import DEPTH, Candidate, rerank

    head, tail = found[:DEPTH], found[DEPTH:]
    # a hit with no text of its own (a visual match) gets a neutral reading, not one of its placeholder
    cands = [Candidate(text="" if is_placeholder(h[3]) else h[3], start=h[1],
                       end=h[2], level=u.level, score=u.score, at=i) for i, (h, u) in enumerate(head)]
    out = []
    for c in rerank(ctx, query, cands):
        h, u = head[c.at]  # type: ignore[attr-defined]
        u.score = c.score
        out.append((h, u))
    low = min((u.score for _, u in out), default=0.0)
    for _, u in tail:  # below every re-read hit, in their fused order
        u.score = min(u.score, low * 0.999)
    return out + tail


def is_placeholder(snippet: str) -> bool:
    """Whether a hit's snippet is the stand-in for a hit with no text of its own ("[visual match]")."""
    return snippet.startswith("[") and snippet.endswith(" match]")


def _materialise(session: Any, unit: _Unit) -> tuple[int, float, float, str]:
    """(video id, start, end, snippet) of a unit."""
    from vdisc.index.store import UNIT_TABLES, Clip

    row = session.get(UNIT_TABLES[unit.level], unit.id)
    if row is None:  # vectors of a video removed while we searched
        return (-1, 0.0, 0.0, "")
    fallback = f"[{'+'.join(unit.matched)} match]"
    if unit.level == "video":
        return (row.id, 0.0, row.duration, _trim(unit.snippet or row.summary))
    if unit.level in ("hour", "day"):
        return (row.video_id, row.start, row.end, _trim(unit.snippet or row.said or row.shown or row.seen or fallback))
    if unit.level == "frame":
        clip = session.get(Clip, row.clip_id)
        end = min(row.ts + 1.0, clip.end) if clip else row.ts + 1.0
        return (row.video_id, row.ts, end, _trim(unit.snippet or _clip_text(clip) or fallback))
    if unit.level == "event":
        return (row.video_id, row.start, row.end, _trim(unit.snippet or row.text))
    snippet = unit.snippet or (_clip_text(row) if unit.level == "clip" else "")
    return (row.video_id, row.start, row.end, _trim(snippet or fallback))


def _clip_text(clip: Any) -> str:
    if clip is None:
        return ""
    return clip.transcript or clip.caption or clip.ocr_text.replace("\n", " / ")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"

