"""Shared pieces of the decoders: VideoInfo, the VideoReader protocol, the base reader, the time grid, errors."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from vdisc.errors import DecodeError

_EPS = 1e-6  # a frame at pts <= t + _EPS is displayed at t
_BATCH = 8  # frames fetched per call from decord / torchcodec (bounded memory)
_MAX_BAD_PACKETS = 100  # consecutive undecodable packets before giving up


# --------------------------------------------------------------------------- #
# Public types
# --------------------------------------------------------------------------- #

#: One decoded RGB frame, H x W x 3 uint8: a numpy array, or a torch tensor when
#: the reader was opened with a ``device`` (frames bound for models on a GPU).
Frame = Any


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of one video file, as :func:`probe` reads it."""

    path: str
    duration: float  # seconds; found by demuxing to the last packet when the container does not say
    fps: float  # average frame rate
    width: int
    height: int
    has_video: bool
    has_audio: bool
    num_frames: int | None  # as the container reports it, may be None


@runtime_checkable
class VideoReader(Protocol):
    """An open video; use as a context manager or call :meth:`close`."""

    name: str  # backend name: "pyav" | "decord" | "torchcodec"
    info: VideoInfo
    device: str | None  # None: frames are numpy arrays; else torch uint8 tensors on this device
    decode_device: str  # where the pixels were decoded: "cpu", or "cuda:N" for NVDEC

    def frames(
        self, fps: float = 1.0, max_side: int | None = None, start: float = 0.0, end: float | None = None
    ) -> Iterator[tuple[float, Frame]]:
        """Yield ``(pts_seconds, rgb_uint8_HxWx3)`` for the grid ``start + k / fps`` below ``min(end, duration)``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoReader: ...

    def __exit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _fail(path: object, reason: object) -> DecodeError:
    return DecodeError(_one_line(f"{path}: {reason}"))


def _check_file(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as a string, or raise DecodeError for the obvious misses."""
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise _fail(path, "no such file")
    if p.is_dir():
        raise _fail(path, "is a directory, not a video file")
    if not p.is_file():
        raise _fail(path, "is not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise _fail(path, f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise _fail(path, "file is empty")
    if not os.access(p, os.R_OK):
        raise _fail(path, "permission denied")
    return str(p)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """(w, h) so that max(w, h) <= max_side with the aspect kept, or None for no resize."""
    if max_side is None:
        return None
    if int(max_side) != max_side or max_side <= 0:
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    if width <= 0 or height <= 0 or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    w = max(1, min(max_side, round(width * scale)))
    h = max(1, min(max_side, round(height * scale)))
    return w, h


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return fps


def _check_window(start: float, end: float | None) -> tuple[float, float | None]:
    """Validated ``(start, end)``: ``start`` clamped to >= 0; ``end`` None or a number."""
    start = float(start)
    if math.isnan(start) or start == math.inf:
        raise ValueError(f"start must be a finite number of seconds, got {start!r}")
    start = max(0.0, start)
    if end is not None:
        end = float(end)
        if math.isnan(end):
            raise ValueError(f"end must be a number of seconds or None, got {end!r}")
    return start, end


def _grid(fps: float, duration: float, start: float = 0.0, end: float | None = None) -> Iterator[float]:
    """t_k = start + k / fps while t_k < min(end, duration).

    The full grid (``start == 0``, ``end`` None or > 0) always has at least
    t_0 = 0, even when the duration is unknown (0); a window that starts at or
    after its stop is empty.
    """
    stop = duration if end is None else min(end, duration)
    if end is not None and start >= end:
        return
    k = 0
    while True:
        t = start + k / fps
        if t >= stop and not (k == 0 and start == 0):
            return
        yield t
        k += 1


def _grid_list(fps: float, duration: float, start: float = 0.0, end: float | None = None) -> list[float]:
    return list(_grid(fps, duration, start, end))


def _pick_indices(pts: np.ndarray, times: list[float]) -> list[int]:
    """For sorted frame pts, the index displayed at each time, consecutive repeats removed."""
    idx = np.searchsorted(pts, np.asarray(times, dtype=np.float64) + _EPS, side="right") - 1
    idx = np.clip(idx, 0, len(pts) - 1)
    out: list[int] = []
    for i in idx.tolist():
        if not out or out[-1] != i:
            out.append(i)
    return out


def _lib_message(exc: BaseException) -> str:
    """First line of a native library's error, without its "[time] file.cc:123:" prefix."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    text = re.sub(r"^\[[0-9:]+\]\s*", "", text)
    text = re.sub(r"^\S+\.(?:cc|cpp|h):\d+:\s*", "", text)
    return _one_line(text)


def _warn_truncated(path: str, backend: str, where: float | None, exc: object) -> None:
    at = f"after {where:.3f} s" if where is not None else "before the first frame"
    msg = _one_line(f"{path}: {backend} stopped decoding {at}: {exc}")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _warn_if_short(path: str, backend: str, frames_end: float | None, info: VideoInfo) -> None:
    """Warn when the frames end well before the duration the file states (truncated file)."""
    if frames_end is None:
        return
    step = 1.0 / info.fps if info.fps > 0 else 0.04
    if frames_end + 2 * step + max(2.0, 0.01 * info.duration) < info.duration:
        msg = _one_line(
            f"{path}: {backend}: video frames end at {frames_end:.2f} s but the file says "
            f"{info.duration:.2f} s (truncated or damaged file?); stopped there"
        )
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------- #
# Base reader
# --------------------------------------------------------------------------- #


class _BaseReader:
    name = "base"
    #: None: numpy frames. A torch device: frames are uint8 tensors there (``open_video`` sets it;
    #: a reader that decodes into tensors itself sets ``_yields_tensors``, the others are converted).
    device: str | None = None
    decode_device = "cpu"
    _yields_tensors = False

    def __init__(self, path: str, info: VideoInfo) -> None:
        self.path = path
        self.info = info
        self._closed = False

    def __enter__(self) -> _BaseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.path!r}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: reader is closed")

    def frames(
        self, fps: float = 1.0, max_side: int | None = None, start: float = 0.0, end: float | None = None
    ) -> Iterator[tuple[float, Frame]]:
        """Yield ``(pts_seconds, rgb_uint8_HxWx3)`` for the grid ``start + k / fps`` below
        ``min(end, duration)`` (see the contract in the ``vdisc.index.decode`` docstring).
        With a ``device`` the frames are torch uint8 tensors on it, same pixels."""
        self._check_open()
        size = _target_size(self.info.width, self.info.height, max_side)
        start, end = _check_window(start, end)
        times = _grid_list(_check_fps(fps), self.info.duration, start, end)
        if not times:
            return iter(())
        frames = self._frames(times, size)
        if self.device is None or self._yields_tensors:
            return frames
        return _as_tensors(frames, self.device)

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True


def _as_tensors(frames: Iterator[tuple[float, np.ndarray]], device: str) -> Iterator[tuple[float, Frame]]:
    """The frames as uint8 tensors on ``device`` (zero-copy on the CPU; uploaded in the read-ahead thread)."""
    import torch

    try:
        for pts, rgb in frames:
            yield pts, torch.from_numpy(rgb).to(device)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # the backend's own cleanup (its container) runs now, not at garbage collection
