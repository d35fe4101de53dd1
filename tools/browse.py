"""browse: the global view of what is in the library, bounded in size.

A planner's first look: which videos there are, how long, and a timeline
with short digests of what was said, shown and seen. However long a video
is, its timeline has at most ``max_scenes`` entries, and the work to build it
does not grow with the video's length:

- a video with few scenes lists them as they are;
- otherwise the timeline is ``max_scenes`` stretches, each built from the
  coarsest unit that fits in it: days (their consolidated digests) when a
  stretch is a day or longer, hours when it is an hour or longer, else
  adjacent scenes pooled as before, digested from a bounded, evenly spread
  sample of their clips. An hour or day that is not consolidated yet (the
  open end of a live video) is read from its finer units instead.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from vdisc.index.memory import PERIOD_SECONDS, digest
from vdisc.index.store import VISIBLE_STATUSES, Clip, Period, Scene, Video

from .context import ToolContext

DIGEST_CHARS = 160  # per timeline entry and channel
CLIP_SAMPLE = 12  # most clips read for one entry's digest
FINER = {"day": "hour", "hour": "scene"}


class SceneDigest(BaseModel):
    start: float
    end: float
    said: str = ""
    shown: str = ""
    seen: str = ""


class VideoOverview(BaseModel):
    video: str
    video_id: int
    duration: float
    clips: int
    channels: list[str]
    status: str = "done"  # live: still growing; its duration is the latest media received
    started_at: str = ""  # live sources: ISO wall-clock time of media second 0 (to turn clock times into seconds)
    unit: str = "scene"  # what each timeline entry was built from: scene | hour | day
    scenes: list[SceneDigest]


class BrowseResult(BaseModel):
    videos: list[VideoOverview]
    total_videos: int
    page: int = 1  # of ``pages``: the videos listed are page ``page`` of all of them, oldest first
    pages: int = 1


def browse(ctx: ToolContext,
           video: Annotated[str | None, Field(description="one video's file name or id; none for all")] = None,
           max_scenes: Annotated[int, Field(description="most timeline entries per video", ge=1, le=200)] = 24,
           max_videos: Annotated[int, Field(description="videos per page", ge=1, le=200)] = 20,
           page: Annotated[int, Field(description="which page of videos, from 1", ge=1)] = 1) -> BrowseResult:
    """List the videos in scope with their durations and a timeline of scenes.

    Each scene has a short digest of what is said (speech), shown (on-screen
    text) and seen (captions). Use it first to learn what a video contains and
    where to look. `video` limits the view to one video (id or file name).
    Long videos get at most `max_scenes` entries, each an hour or a day when
    that is what fits; a video with status "live" is still growing. A large
    library comes in pages of `max_videos` videos (`page`, `pages`).
    """
    max_scenes = max(1, min(int(max_scenes), 200))
    with ctx.store.session() as s:
        if video is not None:
            videos = [ctx.video(s, video)]
            total = 1
        else:
            visible = Video.status.in_(VISIBLE_STATUSES)
            total = s.scalar(select(func.count()).select_from(Video).where(visible)) or 0
            videos = s.scalars(select(Video).where(visible).order_by(Video.id)
                               .offset((page - 1) * max_videos).limit(max_videos)).all()
        out = [_overview(s, v, max_scenes) for v in videos]
    pages = max(1, math.ceil(total / max_videos)) if video is None else 1
    return BrowseResult(videos=out, total_videos=total, page=page if video is None else 1, pages=pages)


def _overview(s: Any, v: Video, max_scenes: int) -> VideoOverview:
    n_clips = s.scalar(select(func.count()).select_from(Clip).where(Clip.video_id == v.id)) or 0
    n_scenes = s.scalar(select(func.count()).select_from(Scene).where(Scene.video_id == v.id)) or 0
    duration = float(v.duration)
    stretch = duration / max_scenes
    unit = "day" if stretch >= PERIOD_SECONDS["day"] else "hour" if stretch >= PERIOD_SECONDS["hour"] else "scene"
    if n_scenes <= max_scenes or unit == "scene":
        scenes = s.execute(select(Scene.start, Scene.end).where(Scene.video_id == v.id).order_by(Scene.start)).all()
        spans = _pool([(a, b) for a, b in scenes], max_scenes, duration)
        unit = "scene"
    else:
        spans = _group_periods(duration, PERIOD_SECONDS[unit], max_scenes)
    entries = []
    for a, b in spans:
        said, shown, seen = _parts(s, v.id, a, b, unit)
        entries.append(SceneDigest(start=round(a, 3), end=round(b, 3), said=digest(said, DIGEST_CHARS),
                                   shown=digest(shown, DIGEST_CHARS), seen=digest(seen, DIGEST_CHARS)))
    return VideoOverview(video=v.name, video_id=v.id, duration=round(duration, 3), clips=n_clips,
                         channels=list(v.channels), status=v.status, started_at=v.started_at or "", unit=unit,
                         scenes=entries)


def _pool(spans: list[tuple[float, float]], n: int, duration: float) -> list[tuple[float, float]]:
    """At most ``n`` spans: scene boundaries kept when they fit, else equal stretches snapped to them."""
    if len(spans) <= n:
        return spans
    if not spans:
        return [(0.0, duration)]
    out: list[tuple[float, float]] = []
    per = len(spans) / n
    for i in range(n):
        group = spans[round(i * per) : round((i + 1) * per)]
        if group:
            out.append((group[0][0], group[-1][1]))
    return out


def _group_periods(duration: float, size: float, n: int) -> list[tuple[float, float]]:
    """At most ``n`` stretches made of whole periods of ``size`` seconds, the last ending at ``duration``."""
    count = max(1, math.ceil(duration / size - 1e-9))
    per = count / n if count > n else 1.0
    bounds = sorted({min(math.floor(i * per + 0.5), count) for i in range(min(n, count) + 1)})
    return [(a * size, min(b * size, duration)) for a, b in zip(bounds, bounds[1:])]


def _parts(s: Any, video_id: int, a: float, b: float, unit: str) -> tuple[list[str], list[str], list[str]]:
    """What was said, shown and seen in [a, b), from ``unit``'s digests, filling gaps from finer units."""
    if unit == "scene":
        return _clip_parts(s, video_id, a, b)
    size = PERIOD_SECONDS[unit]
    done = {p.idx: p for p in s.scalars(select(Period).where(
        Period.video_id == video_id, Period.level == unit, Period.ready.is_(True),
        Period.start >= a - 1e-6, Period.start < b - 1e-6))}
    said: list[str] = []
    shown: list[str] = []
    seen: list[str] = []
    for k in range(int(a // size), max(int(a // size) + 1, math.ceil(b / size - 1e-9))):
        p = done.get(k)
        if p is not None:
            parts = ([p.said], p.shown.splitlines(), [p.seen])
        else:  # not consolidated (yet): read its finer units
            parts = _parts(s, video_id, max(a, k * size), min(b, (k + 1) * size), FINER[unit])
        said += parts[0]
        shown += parts[1]
        seen += parts[2]
    return said, shown, seen


def _clip_parts(s: Any, video_id: int, a: float, b: float) -> tuple[list[str], list[str], list[str]]:
    """Texts of at most CLIP_SAMPLE clips starting in [a, b), spread evenly over the stretch."""
    inside = (Clip.video_id == video_id, Clip.start >= a - 1e-6, Clip.start < b - 1e-6)
    n = s.scalar(select(func.count()).select_from(Clip).where(*inside)) or 0
    if not n:
        return [], [], []
    step = max(1, math.ceil(n / CLIP_SAMPLE))
    numbered = select(Clip.transcript, Clip.ocr_text, Clip.caption,
                      func.row_number().over(order_by=Clip.start).label("rn")).where(*inside).subquery()
    rows = s.execute(select(numbered.c.transcript, numbered.c.ocr_text, numbered.c.caption)
                     .where((numbered.c.rn - 1) % step == 0).order_by(numbered.c.rn)).all()
    return ([r.transcript for r in rows], [line for r in rows for line in r.ocr_text.splitlines()],
            [r.caption for r in rows])
