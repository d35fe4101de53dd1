"""Perception: decoded clips in, what the models found in them out (``ClipResult``); no store access.

The step is pure so that it can run anywhere the models are: in the indexing
process for files and live sources, or (later) on workers that send their
results back to the library's one writer (``writer.py``). Each clip gets its
sampled frame times, one visual vector per kept frame, the distinct lines of
on-screen text read from a few of its frames, and a caption; speech is
transcribed per file or per batch of audio and handed to the clips with
``assign_words``.

Within a batch the three models run at once, each in its own thread (torch
and onnxruntime release the GIL): on a GPU the visual model, the captioner and
OCR (onnxruntime-gpu, else the CPU) overlap instead of queueing. Each writes
its own fields, and OCR reads the clips in order (its memo spans them), so the
results are those of running them one after the other. Frames may be numpy
arrays or torch tensors (decoded on the GPU, ``decode.open_video(device=)``):
the visual model takes them as they are; only the frames OCR and the
captioner read are copied to the host.
"""

from __future__ import annotations

import bisect
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from vdisc.config import Settings

from .checkpoint import ClipRecord
from .segment import ClipSpan, SampledFrame

OCR_SAME_PICTURE = 2.0  # mean absolute difference (0-255) of 64x48 thumbnails below which a frame is not read again


@dataclass
class ClipResult:
    """One clip on its way to the library: its span and what perception found in it."""

    span: ClipSpan
    frame_ts: list[float] = field(default_factory=list)
    frame_vecs: np.ndarray | None = None
    # (frames, cells^2, dim) pooled patch cells per frame: only for a trained compressor that takes them
    frame_cells: np.ndarray | None = None
    ocr_lines: list[str] = field(default_factory=list)  # distinct lines read in the clip
    ocr_reads: list[tuple[float, list[str]]] = field(default_factory=list)  # (frame time, lines) per OCR read
    caption: str = ""
    words: list[Any] = field(default_factory=list)

    @property
    def has_vectors(self) -> bool:
        return self.frame_vecs is not None and len(self.frame_vecs) > 0

    def record(self) -> ClipRecord:
        return ClipRecord(idx=self.span.idx, start=self.span.start, end=self.span.end, shot=self.span.shot,
                          hist=self.span.hist, frame_ts=self.frame_ts, frame_vecs=self.frame_vecs,
                          frame_cells=self.frame_cells, ocr_lines=self.ocr_lines, ocr_reads=self.ocr_reads,
                          caption=self.caption)

    @classmethod
    def from_record(cls, c: ClipRecord) -> "ClipResult":
        span = ClipSpan(c.idx, c.start, c.end, c.shot, [], mean_hist=c.hist)
        return cls(span, frame_ts=list(c.frame_ts), frame_vecs=c.frame_vecs, frame_cells=c.frame_cells,
                   ocr_lines=list(c.ocr_lines), ocr_reads=[(float(t), list(lines)) for t, lines in c.ocr_reads],
                   caption=c.caption)


class Perceiver:
    """The per-clip models of one video (visual, OCR, caption) and the OCR memo that spans its batches."""

    def __init__(self, settings: Settings, visual: Any = None, ocr: Any = None, captioner: Any = None,
                 overlap: bool = True, cells: int = 0) -> None:
        self.settings = settings
        self.visual, self.ocr, self.captioner = visual, ocr, captioner
        self.cells = cells  # pooled patch cells per side each frame also gets (a trained compressor's input)
        self.overlap = overlap  # run the models of a batch at once (False: one after the other)
        self.memo: dict[str, Any] = {}  # the last picture OCR read and its lines

    @property
    def batch_frames(self) -> int:
        """Kept frames per batch: the visual model's batch where it was sized from free GPU memory
        (``device.gpu_batch_size``), else ``settings.batch_size`` (the CPU default)."""
        return max(self.settings.batch_size, int(getattr(self.visual, "batch_size", 0) or 0))

    @classmethod
    def from_registry(cls, settings: Settings, registry: Any) -> "Perceiver":
        comp = registry.trained_compressor()
        return cls(settings, registry.get("visual"), registry.get("ocr"), registry.get("caption"),
                   cells=comp.needs_cells if comp is not None else 0)

    @property
    def channels(self) -> list[str]:
        """The picture channels this perceiver fills ("speech" is added by whoever transcribes)."""
        return [name for name, model in (("visual", self.visual), ("ocr", self.ocr), ("caption", self.captioner))
                if model is not None]

    def memo_state(self) -> dict[str, Any]:
        return {"ocr_thumb": self.memo.get("thumb"), "ocr_lines": self.memo.get("lines"),
                "ocr_shot": self.memo.get("shot")}

    def restore_memo(self, state: dict[str, Any]) -> None:
        if state.get("ocr_thumb") is not None:
            self.memo.update(thumb=state["ocr_thumb"], lines=state["ocr_lines"])
            if state.get("ocr_shot") is not None:
                self.memo["shot"] = state["ocr_shot"]

    def __call__(self, batch: list[ClipResult]) -> None:
        """Fill in ``batch`` (frame times, vectors, text, captions), then drop its frames."""
        if not batch:
            return
        kept = [(r, f) for r in batch for f in kept_frames(r.span)]
        for r, f in kept:
            r.frame_ts.append(f.ts)
        tasks: list[Callable[[], None]] = []
        if self.visual is not None and kept:
            tasks.append(lambda: self._embed(batch, [f.rgb for _, f in kept]))
        if self.ocr is not None and self.settings.ocr_frames_per_clip > 0:
            tasks.append(lambda: self._read_batch(batch))
        if self.captioner is not None:
            tasks.append(lambda: self._caption(batch))
        run_together(tasks if self.overlap else [lambda: [t() for t in tasks]])
        for r in batch:
            r.span.drop_frames()  # frames are done with; keep memory flat

    def _embed(self, batch: list[ClipResult], frames: list[Any]) -> None:
        if self.cells:  # the same forward pass, the same frame vectors, plus the compressor's cells
            vecs, cells = self.visual.encode_images_cells(frames, self.cells)
        else:
            vecs, cells = self.visual.encode_images(frames), None
        offset = 0
        for r in batch:
            n = len(r.frame_ts)
            r.frame_vecs = vecs[offset : offset + n]
            if cells is not None:
                r.frame_cells = cells[offset : offset + n]
            offset += n

    def _read_batch(self, batch: list[ClipResult]) -> None:
        for r in batch:  # in order: the memo carries from one clip to the next, within a shot
            if self.memo.get("shot", r.span.shot) != r.span.shot:
                # a new shot starts with no memo, so the reads of a shot never depend on the shot before
                # (a split file's parts agree from their first common cut on: ``index/split.py``)
                self.memo.clear()
            self.memo["shot"] = r.span.shot
            r.ocr_reads = self._read_text(kept_frames(r.span), ocr_reads(r.span, self.settings))
            r.ocr_lines = list(dict.fromkeys(line for _, lines in r.ocr_reads for line in lines))

    def _caption(self, batch: list[ClipResult]) -> None:
        from PIL import Image

        clips = [[Image.fromarray(host(f.rgb)) for f in spread(kept_frames(r.span), self.settings.caption_frames)]
                 for r in batch]
        todo = [i for i, frames in enumerate(clips) if frames]
        captions = self.captioner.caption([clips[i] for i in todo]) if todo else []
        for i, text in zip(todo, captions):
            batch[i].caption = text.strip()

    def _read_text(self, frames: list[SampledFrame], n: int) -> list[tuple[float, list[str]]]:
        """OCR a few frames of a clip, skipping frames that look like the last one read: (time, lines) each."""
        reads: list[tuple[float, list[str]]] = []
        for f in spread(frames, n):
            rgb = host(f.rgb)  # only the frames OCR reads leave the GPU
            thumb = rgb[:: max(1, rgb.shape[0] // 48), :: max(1, rgb.shape[1] // 64)].astype(np.int16)
            prev = self.memo.get("thumb")
            if prev is not None and prev.shape == thumb.shape and np.abs(prev - thumb).mean() < OCR_SAME_PICTURE:
                found = self.memo["lines"]  # same picture as before: reuse, don't read again
            else:
                found = [line.text for line in self.ocr.read(rgb)]
                self.memo["thumb"], self.memo["lines"] = thumb, found
            reads.append((f.ts, [line for line in dict.fromkeys(found) if line]))
        return reads


def ocr_reads(span: ClipSpan, settings: Settings) -> int:
    """How many frames of a clip OCR reads: ``ocr_frames_per_clip`` at least, and enough that no two reads
    are more than ``ocr_every`` seconds apart, so a short sign in a long clip is not missed between reads."""
    if settings.ocr_frames_per_clip <= 0:
        return 0
    return max(settings.ocr_frames_per_clip, math.ceil((span.end - span.start) / settings.ocr_every) + 1)


def assign_words(results: list[ClipResult], words: list[Any]) -> None:
    """Hand each word to the clip holding its midpoint (clips tile time, in order)."""
    if not results:
        return
    starts = [r.span.start for r in results]
    for w in words:
        host = max(bisect.bisect_right(starts, 0.5 * (w.start + w.end)) - 1, 0)
        results[host].words.append(w)


def kept_frames(span: ClipSpan) -> list[SampledFrame]:
    """The frames of a clip that perception looks at (the others only fed the cut detector)."""
    return [f for f in span.frames if f.rgb is not None]


def spread(frames: list[Any], n: int) -> list[Any]:
    """``n`` frames spread evenly (first, middle, last...)."""
    if len(frames) <= n:
        return list(frames)
    if n <= 1:
        return [frames[len(frames) // 2]]
    return [frames[round(i * (len(frames) - 1) / (n - 1))] for i in range(n)]


def host(rgb: Any) -> np.ndarray:
    """A frame as a numpy array on the host (a torch tensor is copied off its device)."""
    return rgb if isinstance(rgb, np.ndarray) else rgb.cpu().numpy()


def run_together(tasks: list[Callable[[], None]]) -> None:
    """Run ``tasks`` at once (the first in this thread) and wait for all; the first error is raised."""
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(len(tasks) - 1, thread_name_prefix="vdisc-perceive") as pool:
        futures = [pool.submit(task) for task in tasks[1:]]
        error: BaseException | None = None
        try:
            tasks[0]()
        except BaseException as exc:  # noqa: BLE001 - raised once the others are done
            error = exc
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001
                error = error or exc
    if error is not None:
        raise error
