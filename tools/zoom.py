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
With the compressor on, the compressed tokens are the visual evidence: each
group token (its span, and its cell for patch tokens) is scored against the
question and the visual span is located on them (``tokens``; no raw frames in
``top_frames``). A compressor trained with a text head scores its tokens in
that text model's space, so a question about order ("moves left to right")
finds the sub-window where it happens, which per-frame scores cannot.

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


class TokenScore(BaseModel):
    start: float  # the span of frames the compressed token summarises
    end: float
    cell: tuple[int, int] | None = None  # its pooled-grid cell; None for a group's CLS token
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
    top_frames: list[FrameScore] = []  # the frames most like the question, by time (compressor off)
    tokens: list[TokenScore] = []  # the compressed group tokens, scored, by time (compressor on)
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
        scores, best, tokens_in, tokens_out, tokens = stored, None, 0, 0, []
    else:
        try:
            with decode.open_video(path, backend=ctx.settings.decoder) as reader:
                frames = list(reader.frames(fps=fps, max_side=MAX_SIDE, start=lo, end=hi))
        except DecodeError as exc:
            raise DecodeError(f"{exc} (was the file moved? re-index it)") from None
        scores, best, tokens_in, tokens_out, tokens = _look(ctx, frames, question, 1.0 / fps)
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
    if tokens:  # the visual channel is the compressed tokens: one score per group, a group's span long
        groups = [FrameScore(ts=t.start, score=t.score) for t in tokens]
        found = locate(spoken, shown, groups, tokens[0].end - tokens[0].start, (lo, hi))
        scores = []
    else:
        found = locate(spoken, shown, scores, 1.0 / fps, (lo, hi))
    top = sorted(sorted(scores, key=lambda f: -f.score)[:TOP_FRAMES], key=lambda f: f.ts)
    return InspectResult(video=name, video_id=vid, start=round(lo, 3), end=round(hi, 3), question=question,
                         best_start=round(found.start, 3), best_end=round(found.end, 3), confidence=found.confidence,
                         source=found.source, frames=len(frames), tokens_in=tokens_in, tokens_out=tokens_out,
                         best=best, top_frames=top, tokens=tokens, spoken=spoken, shown=shown, caption=caption)


def _look(ctx: ToolContext, frames: list[tuple[float, Any]], question: str,
          period: float) -> tuple[list[FrameScore], SubWindow | None, int, int, list[TokenScore]]:
    """Frame scores (compressor off) or scored compressed tokens (on), the best visual sub-window and
    token counts.

    One pass of the image encoder gives what the compressor needs: token grids, or for a compressor
    trained on frame embeddings (``cls_only``) just those, with their pooled patch cells when it was
    trained on them (``cells``; the same input the index gives it). Its group tokens score the sub-windows,
    in the space of its head's text model when it has one.
    """
    visual = ctx.registry.get("visual")
    if visual is None or not frames:
        return [], None, 0, 0, []
    import torch

    times = [ts for ts, _ in frames]
    compressor = ctx.registry.compressor()
    if compressor is None:
        query = torch.from_numpy(visual.encode_texts([question])[0])
        vecs = torch.from_numpy(visual.encode_images([rgb for _, rgb in frames]))
        per_frame = vecs @ query
        scores = [FrameScore(ts=round(t, 3), score=round(float(x), 4)) for t, x in zip(times, per_frame)]
        i = int(per_frame.argmax())
        best = SubWindow(start=round(times[i], 3), end=round(times[i] + period, 3), score=round(float(per_frame[i]), 4))
        return scores, best, len(frames), len(frames), []
    scorer = ctx.registry.get(compressor.query_role)
    if scorer is None:
        return [], None, 0, 0, []  # a head into a text space and no text model: nothing to score with
    query = torch.from_numpy(scorer.encode([question])[0] if compressor.query_role == "text"
                             else scorer.encode_texts([question])[0])
    # the input its weights expect: frame embeddings, + pooled patch cells (``cells``), or token grids
    clip = compressor.compress_images(visual, [rgb for _, rgb in frames], times)
    groups = [TokenScore(start=round(a, 3), end=round(b + period, 3), score=round(float(vec.cpu() @ query), 4))
              for (a, b), vec in compressor.group_vectors(clip)]
    top = max(groups, key=lambda t: t.score)
    best = SubWindow(start=top.start, end=top.end, score=top.score)
    return [], best, clip.tokens_in, clip.tokens_out, groups


def _key(text: str) -> str:
    return "".join(text.lower().split())
