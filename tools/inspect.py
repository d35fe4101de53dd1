"""inspect: zoom in on a window of a video.

Decodes the window densely (default 4 fps, capped at ``max_frames``), scores
every frame against the question with the visual encoder, collects the words
spoken (word timestamps from the index) and shown (OCR of a few frames) inside
it, asks the captioner about it when one is configured, and returns the best
sub-window with what was seen. The compressed clip encoder plugs in here.
"""

from __future__ import annotations

from pydantic import BaseModel

from vdisc.errors import DecodeError

from .context import ToolContext, clamp_window
from .evidence import (
    FrameScore, Shown, Spoken, indexed_text, locate, phrases, read_shown, text_scores, words_in,
)

MAX_SIDE = 448  # frames for the visual encoder (224 px input) and OCR of large text
TOP_FRAMES = 8  # frames listed in the result


class InspectResult(BaseModel):
    video: str
    video_id: int
    start: float
    end: float
    question: str
    best_start: float
    best_end: float
    confidence: float
    source: str
    frames: list[FrameScore]  # the best frames, by time
    spoken: list[Spoken]
    shown: list[Shown]
    caption: str = ""


def inspect(ctx: ToolContext, video: str, start: float, end: float, question: str, fps: float = 4.0,
            max_frames: int = 48, ocr_frames: int = 4) -> InspectResult:
    """Zoom in on a window (seconds) of a video to check a candidate moment.

    Looks at the frames densely and scores them against the question, lists the
    words spoken and the text shown inside the window, and returns the best
    sub-window with a confidence. Use it on search hits before answering.
    """
    from vdisc.index import decode

    with ctx.store.session() as s:
        v = ctx.video(s, video)
        lo, hi = clamp_window(start, end, v.duration)
        spoken = phrases(words_in(s, v.id, lo, hi))
        indexed = indexed_text(s, v.id, lo, hi)
        path, name, vid = v.path, v.name, v.id
    fps = max(0.1, min(float(fps), max_frames / max(hi - lo, 1e-3)))
    try:
        with decode.open_video(path, backend=ctx.settings.decoder) as reader:
            frames = list(reader.frames(fps=fps, max_side=MAX_SIDE, start=lo, end=hi))
    except DecodeError as exc:
        raise DecodeError(f"{exc} (was the file moved? re-index it)") from None

    scores: list[FrameScore] = []
    visual = ctx.registry.get("visual")
    if visual is not None and frames:
        sims = visual.encode_images([rgb for _, rgb in frames]) @ visual.encode_texts([question])[0]
        scores = [FrameScore(ts=round(ts, 3), score=round(float(x), 4)) for (ts, _), x in zip(frames, sims)]
    shown = read_shown(ctx, frames, 1.0 / fps, ocr_frames)
    fresh = {_key(x.text) for x in shown}
    shown += [x for x in indexed if _key(x.text) not in fresh]  # lines the index read between our samples
    for item, score in zip(spoken + shown, text_scores(ctx, question, [x.text for x in spoken + shown])):
        item.score = round(float(score), 4)
    caption = ""
    captioner = ctx.registry.get("caption")
    if captioner is not None and frames:
        from PIL import Image

        step = max(1, len(frames) // 4)
        caption = captioner.caption([[Image.fromarray(rgb) for _, rgb in frames[::step][:4]]],
                                    prompt=f"Watch these frames from one video moment. {question}")[0]
    best = locate(spoken, shown, scores, 1.0 / fps, (lo, hi))
    top = sorted(sorted(scores, key=lambda f: -f.score)[:TOP_FRAMES], key=lambda f: f.ts)
    return InspectResult(video=name, video_id=vid, start=round(lo, 3), end=round(hi, 3), question=question,
                         best_start=round(best.start, 3), best_end=round(best.end, 3), confidence=best.confidence,
                         source=best.source, frames=top, spoken=spoken, shown=shown, caption=caption)


def _key(text: str) -> str:
    return "".join(text.lower().split())
