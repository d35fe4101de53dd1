"""The ``inspect`` tool: zoom-in inspection of a window of a video.

Decodes the window densely (default 4 fps, capped at ``max_frames``), scores
every frame against the question with the visual encoder, collects the words
spoken (word timestamps from the index) and shown (OCR of a few frames) inside
it, asks the captioner about it when one is configured, and returns the best
sub-window with what was seen.

The frames go through the image encoder once, as token grids, and then
through the STORM-style clip compressor (``index/models/compressor``): a
bidirectional Mamba over the tokens followed by temporal and spatial pooling,
whose per-group tokens score sub-windows. ``tokens_in``/``tokens_out`` report
the reduction; ``VDISC_COMPRESSOR=off`` scores plain frame embeddings instead.

A followed stream (a URL, which cannot be read twice) is judged from what the
index kept of the window: stored frame vectors, words and on-screen lines.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from vdisc.errors import DecodeError

from .context import End, Start, ToolContext, VideoRef, clamp_window
from .evidence import (
    FrameScore, Shown, Spoken, indexed_text, locate, phrases, read_shown, stored_frame_scores, text_scores, words_in,
)

MAX_SIDE = 448  # frames for the visual encoder (224 px input) and OCR of large text
TOP_FRAMES = 8  # frames listed in the result


class SubWindow(BaseModel):
    start: float
    end: float
    score: float


class InspectResult(BaseModel):
    video: str
    video_id: int
    start: float
    end: float
    question: str
    best_start: float  # the best sub-window over every channel (words first, then pictures)
    best_end: float
    confidence: float
    source: str
    frames: int  # frames decoded from the window
    tokens_in: int  # visual tokens before compression (frames x tokens per frame)
    tokens_out: int  # after the compressor (equal to tokens_in when it is off)
    best: SubWindow | None = None  # the best visual sub-window (compressed token groups, else frames)
    top_frames: list[FrameScore] = []  # the frames most like the question, by time
    spoken: list[Spoken] = []
    shown: list[Shown] = []
    caption: str = ""


def inspect(ctx: ToolContext, video: VideoRef, start: Start, end: End,
            question: Annotated[str, Field(description="what to look for in the window")],
            fps: Annotated[float, Field(description="frames per second looked at", gt=0, le=30)] = 4.0,
            max_frames: Annotated[int, Field(description="most frames looked at", ge=1, le=256)] = 48,
            ocr_frames: Annotated[int, Field(description="most frames read for on-screen text", ge=0,
                                             le=64)] = 4) -> InspectResult:
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
        stream = v.fingerprint.startswith("live:") and "://" in path
        stored = stored_frame_scores(ctx, s, v.id, lo, hi, question) if stream else []
    fps = max(0.1, min(float(fps), max_frames / max(hi - lo, 1e-3)))
    if stream:  # a stream cannot be read again: judge the window by what the index kept of it
        frames: list[tuple[float, Any]] = []
        scores, best, tokens_in, tokens_out = stored, None, 0, 0
    else:
        try:
            with decode.open_video(path, backend=ctx.settings.decoder) as reader:
                frames = list(reader.frames(fps=fps, max_side=MAX_SIDE, start=lo, end=hi))
        except DecodeError as exc:
            raise DecodeError(f"{exc} (was the file moved? re-index it)") from None
        scores, best, tokens_in, tokens_out = _look(ctx, frames, question, 1.0 / fps)
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
    found = locate(spoken, shown, scores, 1.0 / fps, (lo, hi))
    top = sorted(sorted(scores, key=lambda f: -f.score)[:TOP_FRAMES], key=lambda f: f.ts)
    return InspectResult(video=name, video_id=vid, start=round(lo, 3), end=round(hi, 3), question=question,
                         best_start=round(found.start, 3), best_end=round(found.end, 3), confidence=found.confidence,
                         source=found.source, frames=len(frames), tokens_in=tokens_in, tokens_out=tokens_out,
                         best=best, top_frames=top, spoken=spoken, shown=shown, caption=caption)


def _look(ctx: ToolContext, frames: list[tuple[float, Any]], question: str,
          period: float) -> tuple[list[FrameScore], SubWindow | None, int, int]:
    """Frame scores, the best visual sub-window and token counts, through the compressor when on.

    One pass of the image encoder gives both: the CLS token of each frame's
    grid is its embedding, and the whole grid goes through the compressor,
    whose per-group CLS tokens score the sub-windows.
    """
    visual = ctx.registry.get("visual")
    if visual is None or not frames:
        return [], None, 0, 0
    import torch

    query = torch.from_numpy(visual.encode_texts([question])[0])
    times = [ts for ts, _ in frames]
    compressor = ctx.registry.compressor()
    if compressor is None:
        vecs = torch.from_numpy(visual.encode_images([rgb for _, rgb in frames]))
        per_frame = vecs @ query
        scores = [FrameScore(ts=round(t, 3), score=round(float(x), 4)) for t, x in zip(times, per_frame)]
        i = int(per_frame.argmax())
        best = SubWindow(start=round(times[i], 3), end=round(times[i] + period, 3), score=round(float(per_frame[i]), 4))
        return scores, best, len(frames), len(frames)
    tokens = visual.encode_image_tokens([rgb for _, rgb in frames])
    cls = torch.nn.functional.normalize(tokens[:, 0].float().cpu(), dim=-1)
    per_frame = cls @ query
    scores = [FrameScore(ts=round(t, 3), score=round(float(x), 4)) for t, x in zip(times, per_frame)]
    clip = compressor.compress(tokens, times, grid=visual.grid)
    groups = [(span, tok) for span, cell, tok in zip(clip.spans, clip.cells, clip.tokens) if cell is None]
    sims = [float(torch.nn.functional.normalize(tok.float().cpu(), dim=0) @ query) for _, tok in groups]
    k = max(range(len(groups)), key=lambda j: sims[j])
    (a, b), score = groups[k][0], sims[k]
    best = SubWindow(start=round(a, 3), end=round(b + period, 3), score=round(score, 4))
    return scores, best, clip.tokens_in, clip.tokens_out


def _key(text: str) -> str:
    return "".join(text.lower().split())
