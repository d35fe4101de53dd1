"""From sampled frames to shots, clips and scenes.

Shots: a cut is where the colour histogram of consecutive sampled frames
changes by more than ``cut_threshold`` (half the L1 distance of normalised
HSV histograms, so 0 = identical, 1 = disjoint). Sampling at ``cut_fps``
(default 4) places a cut within 1/cut_fps seconds of the true one.

Clips: each shot cut into pieces of at most ``clip_seconds``; a shot longer
than that is split into equal parts. Shots shorter than ``min_clip_seconds``
(flashes, slivers) merge into the shot that follows.

Scenes: runs of adjacent clips whose mean histograms are alike, up to
``scene_max_seconds``.

The segmenter is streaming: it holds the frames of the current shot only,
and at most two clips' worth of them, so memory stays flat on long videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

H_BINS, S_BINS, V_BINS = 16, 4, 4
THUMB = 64  # histograms are taken on a frame shrunk to about this width


@dataclass
class SampledFrame:
    ts: float  # presentation time, seconds
    rgb: np.ndarray | None  # kept only for frames perception will look at
    hist: np.ndarray  # normalised HSV histogram


@dataclass
class ClipSpan:
    idx: int
    start: float
    end: float
    shot: int
    frames: list[SampledFrame] = field(default_factory=list)
    mean_hist: np.ndarray | None = None  # set once the frames are dropped

    @property
    def hist(self) -> np.ndarray:
        if self.mean_hist is not None:
            return self.mean_hist
        return np.mean([f.hist for f in self.frames], axis=0) if self.frames else np.zeros(H_BINS * S_BINS * V_BINS)

    def drop_frames(self) -> None:
        """Forget the frames, keeping their mean histogram (all scene grouping needs)."""
        self.mean_hist = self.hist
        self.frames = []


def histogram(rgb: Any) -> np.ndarray:
    """Normalised HSV colour histogram of an RGB uint8 frame (256 bins).

    ``rgb`` is an H x W x 3 numpy array, or a torch uint8 tensor (a frame
    decoded on the GPU): tensors are binned where they are, with the same
    float32 arithmetic, so the histogram is bit-identical to the numpy one
    (tests/test_gpu_path.py checks a million colours and random frames).
    """
    if not isinstance(rgb, np.ndarray) and hasattr(rgb, "permute"):
        return _histogram_torch(rgb)
    step = max(1, rgb.shape[1] // THUMB)
    small = rgb[::step, ::step].astype(np.float32) / 255.0
    codes = hsv_codes(small)
    hist = np.bincount(codes.ravel(), minlength=H_BINS * S_BINS * V_BINS).astype(np.float32)
    return hist / max(hist.sum(), 1.0)


def hsv_codes(small: np.ndarray) -> np.ndarray:
    """The histogram bin of each pixel of a float32 RGB image in [0, 1]."""
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    mx, mn = small.max(-1), small.min(-1)
    delta = mx - mn
    safe = np.where(delta == 0, 1.0, delta)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    h = np.where(delta == 0, 0.0, h)
    s = np.where(mx == 0, 0.0, delta / np.where(mx == 0, 1.0, mx))
    hi = np.minimum((h * H_BINS).astype(int), H_BINS - 1)
    si = np.minimum((s * S_BINS).astype(int), S_BINS - 1)
    vi = np.minimum((mx * V_BINS).astype(int), V_BINS - 1)
    return (hi * S_BINS + si) * V_BINS + vi


def hsv_codes_torch(small: Any) -> Any:
    """:func:`hsv_codes` for a float32 torch tensor, op for op (remainder is numpy's floored %)."""
    import torch

    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    mx, mn = small.amax(-1), small.amin(-1)
    delta = mx - mn
    safe = torch.where(delta == 0, 1.0, delta)
    h = torch.where(mx == r, torch.remainder((g - b) / safe, 6),
                    torch.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    h = torch.where(delta == 0, 0.0, h)
    s = torch.where(mx == 0, 0.0, delta / torch.where(mx == 0, 1.0, mx))
    hi = (h * H_BINS).long().clamp_(max=H_BINS - 1)
    si = (s * S_BINS).long().clamp_(max=S_BINS - 1)
    vi = (mx * V_BINS).long().clamp_(max=V_BINS - 1)
    return (hi * S_BINS + si) * V_BINS + vi


def _histogram_torch(rgb: Any) -> np.ndarray:
    import torch

    step = max(1, rgb.shape[1] // THUMB)
    small = rgb[::step, ::step].to(torch.float32) / 255.0
    hist = torch.bincount(hsv_codes_torch(small).reshape(-1), minlength=H_BINS * S_BINS * V_BINS).float()
    # 256 floats to the host: the segmenter compares histograms frame by frame there
    return (hist / hist.sum().clamp(min=1.0)).cpu().numpy()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two normalised histograms, in [0, 1]."""
    return float(0.5 * np.abs(a - b).sum())


class Segmenter:
    """Feed frames in time order; get finished clips back as soon as they are known."""

    def __init__(self, clip_seconds: float = 10.0, min_clip_seconds: float = 1.0, cut_threshold: float = 0.35,
                 eager: bool = False):
        # eager (live sources): a clip is handed out as soon as it is clip_seconds long,
        # instead of waiting for the shot's end to split it evenly
        self.eager = eager
        self.clip_seconds = clip_seconds
        self.min_clip_seconds = min_clip_seconds
        self.cut_threshold = cut_threshold
        self._shot_start: float | None = None
        self._shot_frames: list[SampledFrame] = []
        self._prev: SampledFrame | None = None
        self._clip_idx = 0
        self._shot_idx = 0
        self._tail: SampledFrame | None = None  # the last frame already handed out in a clip
        self.cuts: list[float] = []

    @property
    def last_ts(self) -> float:
        """Time of the last frame pushed (0 before any)."""
        return self._prev.ts if self._prev is not None else 0.0

    @property
    def counters(self) -> tuple[int, int]:
        """(next clip index, current shot index)."""
        return self._clip_idx, self._shot_idx

    @property
    def has_state(self) -> bool:
        """Whether :meth:`state` can be taken (a clip with frames has been handed out, or restored)."""
        return self._tail is not None and self._shot_start is not None

    def push(self, frame: SampledFrame) -> Iterator[ClipSpan]:
        if self._shot_start is None:
            self._shot_start = 0.0 if frame.ts < 0.5 else frame.ts
        elif self._prev is not None and distance(self._prev.hist, frame.hist) > self.cut_threshold:
            if frame.ts - self._shot_start >= self.min_clip_seconds:
                self.cuts.append(frame.ts)
                yield from self._close_shot(frame.ts)
                self._shot_start = frame.ts
        self._prev = frame
        self._shot_frames.append(frame)
        # Bounded memory: a long shot gives up its first clip once two clips' worth is buffered.
        wait = self.clip_seconds if self.eager else 2 * self.clip_seconds
        while self._shot_frames and frame.ts - self._shot_start >= wait:
            yield self._emit(self._shot_start, self._shot_start + self.clip_seconds)

    def continue_from(self, clip_idx: int, shot_idx: int, start: float) -> None:
        """Go on from an earlier session of the same video: numbering continues, and the
        first clip starts where the last one ended (``start``), so clips tile the timeline."""
        self._clip_idx, self._shot_idx = clip_idx, shot_idx
        if start > 0:
            self._shot_start = start

    def state(self) -> dict[str, Any]:
        """Where the segmenter stands after its last clip, for :meth:`restore` in a later run.

        Frames pushed after that clip are not part of the state: a resumed run
        pushes them again, starting after ``tail_ts``. Only valid once a clip
        has been emitted.
        """
        assert self._tail is not None and self._shot_start is not None
        return {"clip_idx": self._clip_idx, "shot_idx": self._shot_idx, "shot_start": self._shot_start,
                "tail_ts": self._tail.ts, "tail_hist": self._tail.hist.tolist(), "cuts": list(self.cuts)}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue as if every frame up to ``state["tail_ts"]`` had been pushed (see :meth:`state`)."""
        self._clip_idx, self._shot_idx = int(state["clip_idx"]), int(state["shot_idx"])
        self._shot_start = float(state["shot_start"])
        self._tail = self._prev = SampledFrame(float(state["tail_ts"]), None,
                                               np.asarray(state["tail_hist"], dtype=np.float32))
        self._shot_frames = []
        self.cuts = [float(c) for c in state["cuts"]]

    def finish(self, duration: float) -> Iterator[ClipSpan]:
        if self._shot_start is not None:
            yield from self._close_shot(max(duration, self._shot_start))

    def _close_shot(self, end: float) -> Iterator[ClipSpan]:
        start = self._shot_start
        assert start is not None
        n = max(1, math.ceil((end - start) / self.clip_seconds - 1e-9))
        step = (end - start) / n
        for i in range(n):
            yield self._emit(start + i * step, end if i == n - 1 else start + (i + 1) * step)
        self._shot_idx += 1

    def _emit(self, start: float, end: float) -> ClipSpan:
        mine = [f for f in self._shot_frames if f.ts < end]
        self._shot_frames = [f for f in self._shot_frames if f.ts >= end]
        if mine:
            self._tail = mine[-1]
        clip = ClipSpan(self._clip_idx, start, end, self._shot_idx, mine)
        self._clip_idx += 1
        self._shot_start = end
        return clip


def group_scenes(
    clips: list[ClipSpan], similarity: float = 0.75, max_seconds: float = 180.0
) -> list[list[int]]:
    """Indices of clips grouped into scenes: adjacent, alike, not too long."""
    scenes: list[list[int]] = []
    for i, clip in enumerate(clips):
        if scenes and joins_scene(clips[scenes[-1][0]], clips[scenes[-1][-1]], clip, similarity, max_seconds):
            scenes[-1].append(i)
        else:
            scenes.append([i])
    return scenes


def joins_scene(first: ClipSpan, prev: ClipSpan, clip: ClipSpan, similarity: float, max_seconds: float) -> bool:
    """Whether ``clip`` continues the scene that runs from ``first`` to ``prev``."""
    same_shot = prev.shot == clip.shot
    alike = 1.0 - distance(prev.hist, clip.hist) >= similarity
    return (same_shot or alike) and clip.end - first.start <= max_seconds
