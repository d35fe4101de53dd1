"""Bounded memory for long and live videos: hours and days consolidated from their children.

A source followed for days has tens of thousands of clips. Search keeps
reaching every one of them (their words and vectors stay), but an overview
cannot list them, so older media is consolidated into coarser units of fixed
media-time spans::

    clips -> hour k = [k*3600, (k+1)*3600) -> day k = [k*86400, (k+1)*86400)

A clip belongs to the hour its start falls in; an hour to its day. Each
period gets bounded digests of what was said, shown and seen (the children's
distinct lines, sampled evenly over the period and cut to a size; no LLM), a
"summary" text row with its text vector, and a visual vector: the
unit-normalised mean of its children's vectors (clip vectors for an hour,
hour vectors for a day), in the model space of those children.

``consolidate`` is idempotent and incremental. It builds only periods that
are complete (their end is at or before the video's duration, which for a
live source is the high-water mark of committed media) and missing or stale,
plus the open last period when ``final``; a video no longer than one period
gets none of that level (its video-level summary says it all). It reads one
period's children at a time, so memory and time per call do not grow with
the video's length; when nothing is new it costs a couple of small queries.

Retention (``retention_hours``): frame-level vectors and frame rows of clips
that ended more than that many hours before the video's end are dropped,
vectors first, then rows (as ``Store.delete_video`` does). Clip, scene, hour
and day levels stay, so old moments are still found, at clip precision.

Call it with the writer's Store, inside the writer lock: the pipeline after a
file is done, the follower after each commit and once more, with
``final=True``, when the source ends.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from sqlalchemy import delete, select, update

from vdisc.timefmt import hms

from .store import Clip, Frame, Period, Store, TextChunk, Video

PERIOD_SECONDS = {"hour": 3600.0, "day": 86400.0}
CHILD_LEVEL = {"hour": "clip", "day": "hour"}  # whose vectors a period pools
DIGEST_CHARS = 480  # per period and channel (said, shown, seen)
SUMMARY_CHARS = 2000  # the period's searchable summary text, as the video-level one
MIN_SHARE = 48  # a sampled line keeps at least this many characters when a digest overflows
EPS = 1e-6  # seconds: float slack when comparing span ends


def consolidate(store: Store, registry: Any, video_id: int, *, final: bool = False,
                retention_hours: float | None = None) -> None:
    """Bring a video's hour and day periods up to date, then apply the retention policy.

    ``final``: the video is finished, so its open last hour and day are built
    too (ending at its end). ``retention_hours``: drop frame-level vectors
    and rows of clips that ended more than this long before the video's end.
    """
    with store.session() as s:
        video = s.get(Video, video_id)
        if video is None:
            return
        duration, name = float(video.duration), video.name
    if duration <= 0:
        return
    for level in ("hour", "day"):  # hours first: a day is built from its ready hours
        _build_level(store, registry, video_id, name, duration, level, final)
    if retention_hours is not None:
        drop_old_frames(store, video_id, duration - float(retention_hours) * 3600.0)


def _wanted(duration: float, size: float, final: bool) -> list[tuple[int, float, float]]:
    """(idx, start, end) of the periods that should exist for a video this long.

    None for a video no longer than one period: it would only repeat the video level.
    """
    if duration <= size + EPS:
        return []
    full = int(math.floor(duration / size + EPS))
    out = [(k, k * size, (k + 1) * size) for k in range(full)]
    if final and duration > full * size + EPS:  # the open last period closes at the video's end
        out.append((full, full * size, duration))
    return out


def _build_level(store: Store, registry: Any, video_id: int, name: str, duration: float, level: str,
                 final: bool) -> None:
    with store.session() as s:
        have = {idx: (pid, end, ready) for pid, idx, end, ready in s.execute(
            select(Period.id, Period.idx, Period.end, Period.ready)
            .where(Period.video_id == video_id, Period.level == level))}
    todo: list[tuple[int, float, float]] = []
    stale: list[int] = []
    for k, start, end in _wanted(duration, PERIOD_SECONDS[level], final):
        cur = have.get(k)
        if cur is not None and cur[2] and abs(cur[1] - end) < EPS:
            continue  # built, and its span has not changed
        if cur is not None:  # a crash before its vectors were saved, or an open period that grew
            stale.append(cur[0])
        todo.append((k, start, end))
    if not todo:
        return
    if stale:
        _remove_periods(store, level, stale)
    touched: dict[tuple[str, str], Any] = {}
    built: list[int] = []
    for k, start, end in todo:  # one period's children in memory at a time
        pid = _build_period(store, registry, video_id, name, duration, level, k, start, end, touched)
        if pid is not None:
            built.append(pid)
    for index in touched.values():
        index.save()
    if built:  # only now are rows and vectors both on disk
        with store.session() as s, s.begin():
            s.execute(update(Period).where(Period.id.in_(built)).values(ready=True))


def _build_period(store: Store, registry: Any, video_id: int, name: str, duration: float, level: str, k: int,
                  start: float, end: float, touched: dict[tuple[str, str], Any]) -> int | None:
    """Write one period's row, summary text and vectors (not yet saved); None if it has no children."""
    child_index = store.vectors(CHILD_LEVEL[level], "visual")
    with store.session() as s:
        if level == "hour":
            # rows past the high-water mark belong to a batch a dead follower never finished
            rows = s.execute(select(Clip.id, Clip.transcript, Clip.ocr_text, Clip.caption).where(
                Clip.video_id == video_id, Clip.start >= start - EPS, Clip.start < end - EPS,
                Clip.end <= duration + EPS).order_by(Clip.start)).all()
            said = [r.transcript for r in rows]
            shown = [line for r in rows for line in r.ocr_text.splitlines()]
            seen = [r.caption for r in rows]
        else:
            rows = s.execute(select(Period.id, Period.said, Period.shown, Period.seen).where(
                Period.video_id == video_id, Period.level == "hour", Period.ready.is_(True),
                Period.start >= start - EPS, Period.start < end - EPS).order_by(Period.start)).all()
            said = [r.said for r in rows]
            shown = [line for r in rows for line in r.shown.splitlines()]
            seen = [r.seen for r in rows]
    if not rows:
        return None  # nothing was received in this stretch (a gap in a live source)
    child_ids = [r.id for r in rows]
    digests = {"said": digest(said, DIGEST_CHARS), "shown": digest(shown, DIGEST_CHARS, sep="\n"),
               "seen": digest(seen, DIGEST_CHARS)}
    summary = period_summary(name, level, k, start, end, digests)
    with store.session() as s, s.begin():
        row = Period(video_id=video_id, level=level, idx=k, start=start, end=end, ready=False, **digests)
        s.add(row)
        s.flush()
        chunk = TextChunk(video_id=video_id, level=level, unit_id=row.id, modality="summary", start=start,
                          end=end, text=summary)
        s.add(chunk)
        s.flush()
        pid, tid = row.id, chunk.id

    text_model = registry.get("text") if registry is not None else None
    if text_model is not None:
        index = store.vectors(level, "summary")
        index.add([tid], text_model.encode([summary[:SUMMARY_CHARS]]), text_model.spec)
        touched[(level, "summary")] = index
    pooled = _pooled(child_index, child_ids)
    if pooled is not None:
        index = store.vectors(level, "visual")
        index.add([pid], pooled[None], child_index.spec)  # pooled vectors live in their children's model space
        touched[(level, "visual")] = index
    return pid


def _pooled(index: Any, ids: list[int]) -> np.ndarray | None:
    """The unit-normalised mean of the vectors ``index`` holds for ``ids`` (None if it holds none)."""
    if not len(index):
        return None
    vecs = []
    for i in ids:  # looked up one by one: cost follows the period, not the whole index
        try:
            vecs.append(index.vectors([i])[0])
        except RuntimeError:  # FAISS has no such id: a child without a picture vector
            continue
    if not vecs:
        return None
    mean = np.mean(vecs, axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _remove_periods(store: Store, level: str, ids: list[int]) -> None:
    """Delete periods with their summary texts: vectors first, then rows."""
    with store.session() as s:
        text_ids = s.scalars(select(TextChunk.id).where(TextChunk.level == level, TextChunk.unit_id.in_(ids))).all()
    for index, doomed in ((store.vectors(level, "visual"), ids), (store.vectors(level, "summary"), text_ids)):
        if doomed and index.remove(doomed):
            index.save()
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(text_ids)))
        s.execute(delete(Period).where(Period.id.in_(ids)))


def drop_old_frames(store: Store, video_id: int, before: float) -> int:
    """Drop frame vectors and rows of the video's clips that ended before ``before`` seconds; how many.

    Frames already dropped have no rows, so each call only touches the frames
    that have aged out since the last one.
    """
    if before <= 0:
        return 0
    with store.session() as s:
        # walks the video's remaining frames (the retained window plus what just aged out), not all its clips
        ids = s.scalars(select(Frame.id).join(Clip, Clip.id == Frame.clip_id)
                        .where(Frame.video_id == video_id, Clip.end < before)).all()
    if not ids:
        return 0
    index = store.vectors("frame", "visual")
    if index.remove(ids):
        index.save()
    with store.session() as s, s.begin():
        for k in range(0, len(ids), 10000):  # below SQLite's limit on bound parameters
            s.execute(delete(Frame).where(Frame.id.in_(ids[k : k + 10000])))
    return len(ids)


def digest(parts: Iterable[str], limit: int, sep: str = " ") -> str:
    """Distinct parts in order, at most ``limit`` characters.

    When they do not fit, parts are sampled evenly across the list (each
    shortened to its share), so a digest speaks for its whole stretch rather
    than only its beginning.
    """
    uniq = list(dict.fromkeys(" ".join(p.split()) for p in parts if p and p.strip()))
    whole = sep.join(uniq)
    if len(whole) <= limit:
        return whole
    # as many evenly spaced parts as fit whole, or else as many as keep a readable share each
    readable = max(MIN_SHARE, limit // 4)
    for n in range(min(len(uniq), (limit + len(sep)) // (1 + len(sep))), 0, -1):
        picks = [uniq[round(i * (len(uniq) - 1) / (n - 1))] for i in range(n)] if n > 1 else [uniq[len(uniq) // 2]]
        if len(sep.join(picks)) <= limit:
            return sep.join(picks)
        share = max(1, (limit - len(sep) * (n - 1)) // n)
        if share >= readable:
            break
    return sep.join(p if len(p) <= share else p[: share - 1].rstrip() + "…" for p in picks)[:limit]


def period_summary(name: str, level: str, k: int, start: float, end: float, digests: dict[str, str]) -> str:
    """The searchable text of a period: where it is, then what was seen, said and shown."""
    parts = [f"{level.title()} {k + 1} of {name} ({hms(start)}-{hms(end)})."]
    for key, label in (("seen", "Seen"), ("said", "Said"), ("shown", "Shown")):
        if digests[key]:
            parts.append(f"{label}: " + digests[key].replace("\n", "; "))
    return " ".join(parts)[:SUMMARY_CHARS]


__all__ = ["consolidate", "digest", "drop_old_frames", "period_summary", "PERIOD_SECONDS"]
