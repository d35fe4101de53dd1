"""browse: the global view of what is in the library, bounded in size.

A planner's first look: which videos there are, how long, and a scene list
with short digests of what was said, shown and seen. However long a video is,
the scene list has at most ``max_scenes`` entries: adjacent scenes are pooled
into equal-length stretches when there are more.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select

from vdisc.index.store import Clip, Scene, Video

from .context import ToolContext

DIGEST_CHARS = 160  # per scene and channel


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
    scenes: list[SceneDigest]


class BrowseResult(BaseModel):
    videos: list[VideoOverview]
    total_videos: int


def browse(ctx: ToolContext, video: str | None = None, max_scenes: int = 24, max_videos: int = 20) -> BrowseResult:
    """List the videos in scope with their durations and a timeline of scenes.

    Each scene has a short digest of what is said (speech), shown (on-screen
    text) and seen (captions). Use it first to learn what a video contains and
    where to look. `video` limits the view to one video (id or file name).
    """
    max_scenes = max(1, min(int(max_scenes), 200))
    with ctx.store.session() as s:
        if video is not None:
            videos = [ctx.video(s, video)]
            total = 1
        else:
            q = select(Video).where(Video.status == "done").order_by(Video.id)
            all_videos = s.scalars(q).all()
            videos, total = all_videos[:max_videos], len(all_videos)
        out = []
        for v in videos:
            clips = s.scalars(select(Clip).where(Clip.video_id == v.id).order_by(Clip.start)).all()
            scenes = s.scalars(select(Scene).where(Scene.video_id == v.id).order_by(Scene.start)).all()
            spans = _pool([(sc.start, sc.end) for sc in scenes], max_scenes, v.duration)
            out.append(VideoOverview(
                video=v.name, video_id=v.id, duration=round(v.duration, 3), clips=len(clips),
                channels=list(v.channels), scenes=[_digest(a, b, clips) for a, b in spans],
            ))
    return BrowseResult(videos=out, total_videos=total)


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


def _digest(start: float, end: float, clips: list[Clip]) -> SceneDigest:
    inside = [c for c in clips if c.start < end and c.end > start]

    def cut(parts: list[str]) -> str:
        text = " ".join(dict.fromkeys(" ".join(p.split()) for p in parts if p and p.strip()))
        return text if len(text) <= DIGEST_CHARS else text[: DIGEST_CHARS - 1].rstrip() + "…"

    return SceneDigest(
        start=round(start, 3), end=round(end, 3),
        said=cut([c.transcript for c in inside]),
        shown=cut([line for c in inside for line in c.ocr_text.splitlines()]),
        seen=cut([c.caption for c in inside]),
    )
