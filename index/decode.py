"""Video and audio decoding for vdisc: probe, sample frames on a time grid, read audio.

Everything vdisc knows about pixels and samples comes through this module, so
the rest of the code never touches a decoding library directly.

* :func:`probe` reads cheap metadata with PyAV (:class:`VideoInfo`). When the
  container does not say how long the video is (e.g. a WebM/Matroska file
  written to a pipe), the duration is found by demuxing -- not decoding -- to
  the last packet.
* :func:`open_video` returns a :class:`VideoReader` from one of three
  backends: ``"pyav"`` (always installed; the fallback), ``"decord"`` and
  ``"torchcodec"``. ``"auto"`` tries :data:`BACKENDS` in order and falls back
  to the next one when a backend is missing or cannot open the file.
* :meth:`VideoReader.frames` streams one RGB frame per grid time
  ``t_k = start + k / fps`` (``k = 0, 1, ...`` while ``t_k < min(end,
  duration)``; by default ``start = 0`` and ``end = None``, i.e. the whole
  video, and then there is always at least ``t_0 = 0``). A negative
  ``start`` counts as 0; a window with ``start >= end``, or starting at or
  after the end of the video, yields nothing. Each grid time gets the frame
  *displayed* at ``t_k``, i.e. the one with the largest presentation timestamp
  ``<= t_k + 1e-6`` (the first frame if the video starts later). It yields
  ``(pts, rgb)`` with the frame's true pts in seconds relative to the start of
  the video stream and an ``H x W x 3`` ``uint8`` array. A frame chosen for
  several consecutive grid times (``fps`` above the video's rate) is yielded
  once. ``max_side`` downscales inside the decoder (never upscales). Frames
  are turned upright when the file carries a display rotation (phone video),
  and :class:`VideoInfo` reports the displayed width and height. All three
  backends pick the same frames; pixels may differ by a few levels because
  each one converts colours and scales with its own settings.
* The PyAV reader decodes sequentially (frame threading) and converts only the
  sampled frames to RGB; when the grid step is several keyframe intervals it
  seeks instead, checking that each seek landed at or before its target. A
  window with ``start > 0`` begins with such a seek (to the keyframe at or
  before ``start``; further back if the index is coarse, from the beginning
  as a last resort), so a few seconds deep inside a long video cost a few
  seconds of decoding. decord and torchcodec index the window's frames
  directly.
* :func:`read_audio` decodes the default (else first) audio stream to float32
  mono at the requested rate, resampling in-process with PyAV's
  ``AudioResampler`` (no ffmpeg binary is ever run).

Failures a user can cause (missing, empty or non-video file, no video stream,
backend not installed) raise :class:`vdisc.errors.DecodeError` with one line
naming the path and the reason. A file that breaks part-way (truncated
download, corrupt tail) does not raise: iteration stops after the last good
frame with a :class:`RuntimeWarning`.

Heavy libraries (``av``, ``decord``, ``torchcodec``, ``torch``) are imported
lazily, inside the functions and classes that need them.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from vdisc.errors import DecodeError

if TYPE_CHECKING:  # pragma: no cover
    import av

log = logging.getLogger(__name__)

# Default preference order for ``open_video(path, "auto")``, chosen by
# measurement with benchmarks/decode_speed.py (2-vCPU CPU machine; generated
# 10-min 854x480 30 fps H.264 video, 1 fps, seconds incl. open, best of 2):
#
#   backend     max_side=None  max_side=512      (30 s 720p VP8 WebM, full size)
#   pyav        10.6 s (57x)   11.0 s (54x)      0.3 s
#   torchcodec  13.2 s (45x)   13.2 s (45x)      0.3 s
#   decord      13.5 s (45x)   13.6 s (44x)      0.5 s
#
# At 1 fps every backend has to decode every frame, so decode speed decides:
# PyAV (sequential, frame-threaded, RGB conversion of sampled frames only) was
# fastest on H.264 and level with torchcodec on VP8; at 0.05 fps it seeks over
# GOPs and was fastest too (0.5 s vs 0.7 s torchcodec, 0.9 s decord). It always
# installs, so it is first and is the fallback. torchcodec is second (close,
# but needs torch and the system FFmpeg libraries); decord, slowest and
# unmaintained, refuses duration-less Matroska and truncated MP4 files, is last.
BACKENDS: tuple[str, ...] = ("pyav", "torchcodec", "decord")

_ALL_BACKENDS: tuple[str, ...] = ("pyav", "decord", "torchcodec")
_EPS = 1e-6  # a frame at pts <= t + _EPS is displayed at t
_BATCH = 8  # frames fetched per call from decord / torchcodec (bounded memory)
_MAX_BAD_PACKETS = 100  # consecutive undecodable packets before giving up
#: Seconds FFmpeg may spend opening a file (reading the header and probing the
#: streams) before vdisc gives up on it: a demuxer that loops on a damaged file
#: is interrupted through FFmpeg's interrupt callback and the file fails with
#: one line. Only the open is bounded (PyAV's read timeout would also fire on a
#: seek made after a long pause between packets). A decoder that hangs inside
#: libavcodec cannot be interrupted in-process, so the indexer reads frames in
#: a thread and gives up on a file whose decoder yields nothing for
#: ``STALL_TIMEOUT`` seconds.
OPEN_TIMEOUT = 60.0
STALL_TIMEOUT = 60.0


# --------------------------------------------------------------------------- #
# Public types
# --------------------------------------------------------------------------- #


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

    def frames(
        self, fps: float = 1.0, max_side: int | None = None, start: float = 0.0, end: float | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
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


def _av_open(path: str) -> av.container.InputContainer:
    """``av.open`` for reading, with :data:`OPEN_TIMEOUT` on the open (not on reads)."""
    import av

    return av.open(path, mode="r", timeout=(OPEN_TIMEOUT, None))


def _open_container(path: str) -> av.container.InputContainer:
    import av

    try:
        return _av_open(path)
    except av.error.ExitError as exc:
        raise _fail(path, f"timed out after {OPEN_TIMEOUT:g} s opening it (FFmpeg hangs on this file)") from exc
    except av.error.InvalidDataError as exc:
        raise _fail(
            path, "not a video file, or a damaged or incomplete one (FFmpeg cannot read it)"
        ) from exc
    except av.error.PermissionError as exc:
        raise _fail(path, "permission denied") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise _fail(path, f"cannot open: {exc}") from exc


def _video_streams(container: Any) -> list[Any]:
    """Real video streams (cover art / attached pictures excluded)."""
    import av

    out = []
    for s in container.streams.video:
        try:
            if s.disposition & av.stream.Disposition.attached_pic:
                continue
        except Exception:  # noqa: BLE001 - very old PyAV: no disposition flags
            pass
        out.append(s)
    return out


def _audio_stream(container: Any) -> Any | None:
    streams = list(container.streams.audio)
    if not streams:
        return None
    try:
        import av

        for s in streams:
            if s.disposition & av.stream.Disposition.default:
                return s
    except Exception:  # noqa: BLE001
        pass
    return streams[0]


def _stream_start(stream: Any) -> float | None:
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


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
# Backends available
# --------------------------------------------------------------------------- #

_AVAILABLE: dict[str, str | None] | None = None


def _check_backend(name: str) -> str | None:
    if name == "pyav":
        try:
            importlib.import_module("av")
        except ImportError as exc:
            return f"PyAV not installed: pip install av ({_one_line(exc)})"
        return None
    if name == "decord":
        try:
            importlib.import_module("decord")
        except ImportError:
            return "decord not installed: pip install decord (x86_64 wheels only)"
        except Exception as exc:  # noqa: BLE001 - broken native library
            return f"decord unusable: {_one_line(exc)} (reinstall: pip install --force-reinstall decord)"
        return None
    if name == "torchcodec":
        try:
            importlib.import_module("torch")
        except ImportError:
            return "torchcodec needs torch: pip install torch torchcodec"
        try:
            mod = importlib.import_module("torchcodec.decoders")
            getattr(mod, "VideoDecoder")
        except ImportError as exc:
            if "torchcodec" in str(exc) and "No module named" in str(exc):
                return "torchcodec not installed: pip install torchcodec"
            return (
                f"torchcodec unusable: {_one_line(exc)[:200]} "
                "(it needs FFmpeg shared libraries, e.g. apt-get install ffmpeg)"
            )
        except Exception as exc:  # noqa: BLE001 - RuntimeError/OSError loading libav*
            return (
                f"torchcodec unusable: {_one_line(exc)[:200]} "
                "(it needs FFmpeg shared libraries, e.g. apt-get install ffmpeg, "
                "and a torchcodec build matching torch)"
            )
        return None
    return f"unknown backend {name!r} (choose from {', '.join(_ALL_BACKENDS)})"


def available_backends() -> dict[str, str | None]:
    """Backend name -> None when usable, else a one-line reason with an install hint.

    The result is cached for the life of the process (importing torch is slow).
    """
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = {name: _check_backend(name) for name in _ALL_BACKENDS}
    return dict(_AVAILABLE)


# --------------------------------------------------------------------------- #
# probe
# --------------------------------------------------------------------------- #


def _rotation_steps(frame: Any) -> int:
    """Counter-clockwise quarter turns needed to display ``frame`` upright (0-3).

    Phone videos carry a display matrix instead of rotated pixels; decord and
    torchcodec apply it, so PyAV must too for the backends to agree.
    """
    try:
        degrees = float(getattr(frame, "rotation", 0) or 0)
    except Exception:  # noqa: BLE001 - no side data / older PyAV
        return 0
    return int(round(degrees / 90.0)) % 4


def _first_frame_facts(path: str, stream_index: int) -> tuple[int, tuple[int, int] | None]:
    """(quarter turns, coded (w, h)) of the first decodable frame; (0, None) if none decodes."""
    import av

    try:
        with _av_open(path) as container:
            vs = container.streams[stream_index]
            for frame in container.decode(vs):
                return _rotation_steps(frame), (frame.width, frame.height)
    except (av.error.FFmpegError, OSError, EOFError, ValueError):
        pass
    return 0, None


def _scan_end(container: Any, stream: Any) -> tuple[float | None, float | None, int]:
    """Demux (no decoding) ``stream`` to the end: (first pts s, end pts s, packet count)."""
    import av

    tb = stream.time_base
    first = last = None
    count = 0
    try:
        for pkt in container.demux(stream):
            if pkt.size == 0:
                continue
            ts = pkt.pts if pkt.pts is not None else pkt.dts
            if ts is None:
                continue
            count += 1
            end = ts + (pkt.duration or 0)
            first = ts if first is None else min(first, ts)
            last = end if last is None else max(last, end)
    except (av.error.FFmpegError, EOFError) as exc:
        log.info("demux stopped early while measuring duration: %s", exc)
    if first is None or last is None or tb is None:
        return None, None, count
    return float(first * tb), float(last * tb), count


def probe(path: str | os.PathLike[str], *, require_video: bool = True) -> VideoInfo:
    """Cheap metadata via PyAV.

    Raises :class:`DecodeError` (one line, naming the path) for a missing,
    empty or unreadable file, and -- unless ``require_video=False`` -- for a
    file without a video stream. With ``require_video=False`` an audio-only
    file gives ``has_video=False``, ``fps=0`` and zero width/height.
    """
    spath = _check_file(path)
    container = _open_container(spath)
    try:
        return _probe_container(container, spath, path, require_video)
    finally:
        container.close()


def _probe_container(container: Any, spath: str, path: object, require_video: bool) -> VideoInfo:
    vstreams = _video_streams(container)
    astream = _audio_stream(container)
    if not vstreams:
        if require_video:
            if astream is not None:
                raise _fail(path, "no video stream (audio only)")
            raise _fail(path, "no video stream: not a video file")
        if astream is None:
            raise _fail(path, "no video or audio stream: not a media file")
    vs = vstreams[0] if vstreams else None
    main = vs if vs is not None else astream

    container_start = (container.start_time or 0) / 1_000_000 if container.start_time is not None else 0.0
    start = _stream_start(main)
    duration: float | None = None
    if main.duration is not None and main.time_base is not None and main.duration > 0:
        duration = float(main.duration * main.time_base)
    elif container.duration is not None and container.duration > 0:
        duration = container.duration / 1_000_000
        if start is not None:
            # the container's span starts at its earliest stream; ours at this stream
            duration -= max(0.0, start - container_start)
    num_frames = int(vs.frames) if vs is not None and vs.frames else None

    scanned_count = 0
    if duration is None or duration <= 0:
        first, end, scanned_count = _scan_end(container, main)
        if first is not None and end is not None:
            duration = end - (start if start is not None else first)
    duration = max(0.0, float(duration or 0.0))

    fps = 0.0
    width = height = 0
    if vs is not None:
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if rate:
            fps = float(rate)
        count = num_frames or scanned_count
        if fps <= 0 and count and duration > 0:
            fps = count / duration
        cc = vs.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        rotation, first_size = _first_frame_facts(spath, vs.index)
        if (width <= 0 or height <= 0) and first_size is not None:
            width, height = first_size
        if rotation % 2:  # shown rotated by +-90 degrees (phone video): report the displayed size
            width, height = height, width

    return VideoInfo(
        path=spath,
        duration=duration,
        fps=fps,
        width=width,
        height=height,
        has_video=vs is not None,
        has_audio=astream is not None,
        num_frames=num_frames,
    )


# --------------------------------------------------------------------------- #
# Base reader
# --------------------------------------------------------------------------- #


class _BaseReader:
    name = "base"

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
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(pts_seconds, rgb_uint8_HxWx3)`` for the grid ``start + k / fps`` below
        ``min(end, duration)`` (see the module docstring)."""
        self._check_open()
        size = _target_size(self.info.width, self.info.height, max_side)
        start, end = _check_window(start, end)
        times = _grid_list(_check_fps(fps), self.info.duration, start, end)
        if not times:
            return iter(())
        return self._frames(times, size)

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------- #
# PyAV backend
# --------------------------------------------------------------------------- #


class PyAVReader(_BaseReader):
    """Sequential, frame-threaded decode; only sampled frames are converted to RGB.

    For sparse grids (step several times the keyframe interval) it seeks to
    the keyframe before the next grid time instead of decoding through,
    verifying that the seek did not overshoot (else it falls back to
    sequential decoding).
    """

    name = "pyav"
    #: seek only when the next grid time lies this many keyframe intervals ahead
    SEEK_GOPS = 2.0
    #: and at least this many seconds ahead
    SEEK_MIN_SECONDS = 4.0

    def __init__(self, path: str, info: VideoInfo) -> None:
        super().__init__(path, info)
        container = _open_container(path)
        try:
            vstreams = _video_streams(container)
            if not vstreams:
                raise _fail(path, "no video stream")
            vs = vstreams[0]
            self._stream_index = vs.index
            if vs.codec_context is None:
                raise _fail(path, f"no decoder for video codec {vs.codec.name!r}")
            self._start = _stream_start(vs)
        finally:
            container.close()
        self._open: set[Any] = set()
        self.seeks = 0  # number of seeks done by the last frames() call (for tests/diagnostics)

    def close(self) -> None:
        for c in list(self._open):
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._open.clear()
        super().close()

    # -- decoding ---------------------------------------------------------- #

    def _decoded(self, container: Any, vs: Any, state: dict[str, Any]) -> Iterator[Any]:
        """Decoded frames in presentation order; stops (with a warning) on a demux error.

        A packet the decoder rejects is skipped (FFmpeg conceals most damage);
        after many in a row the file is treated as broken from there on.
        """
        import av

        bad = 0
        demux = container.demux(vs)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except (av.error.FFmpegError, EOFError) as exc:
                state["error"] = exc
                yield from _drain(vs)  # frames still buffered in the decoder are good
                return
            try:
                frames = packet.decode()
            except av.error.EOFError:
                return
            except av.error.FFmpegError as exc:
                bad += 1
                state["bad_packets"] = state.get("bad_packets", 0) + 1
                if bad >= _MAX_BAD_PACKETS:
                    state["error"] = exc
                    return
                continue
            bad = 0
            yield from frames

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        container = _open_container(self.path)
        self._open.add(container)
        try:
            yield from self._frames_in(container, times, size)
        finally:
            self._open.discard(container)
            container.close()

    def _convert(self, frame: Any, size: tuple[int, int] | None, reformatter: Any) -> np.ndarray:
        """RGB24, scaled by swscale to the displayed ``size`` and turned upright.

        One reformatter per ``frames()`` call reuses its swscale context.
        """
        turns = _rotation_steps(frame)
        w, h = size if size is not None else (None, None)
        if turns % 2 and size is not None:
            w, h = h, w  # size is for the displayed (rotated) picture
        try:
            arr = reformatter.reformat(frame, width=w, height=h, format="rgb24").to_ndarray()
        except (AttributeError, TypeError):  # older PyAV: per-frame conversion
            arr = frame.to_ndarray(format="rgb24", width=w, height=h)
        if turns:
            arr = np.rot90(arr, turns)
        return np.ascontiguousarray(arr)

    def _frames_in(
        self, container: Any, times: list[float], size: tuple[int, int] | None
    ) -> Iterator[tuple[float, np.ndarray]]:
        from av.video.reformatter import VideoReformatter

        vs = container.streams[self._stream_index]
        vs.thread_type = "AUTO"
        reformatter = VideoReformatter()
        tb = vs.time_base
        start = self._start
        nominal_step = 1.0 / self.info.fps if self.info.fps > 0 else 0.04
        self.seeks = 0

        gi = 0  # index of the next grid time to serve
        prev: tuple[float, Any] | None = None  # latest frame with pts <= times[gi] (or the first frame)
        last_emitted: float | None = None
        last_t: float | None = None  # pts of the last decoded frame (relative)
        last_key: float | None = None
        kf_gap = 0.0  # largest keyframe interval seen so far
        can_seek = True
        seek_block = -math.inf  # no new seek until the grid passes this time
        state: dict[str, Any] = {}
        it: Iterator[Any] | None = None
        if times and times[0] > 0 and start is not None:
            # a window deep in the file: start at a keyframe at or before it
            it = self._seek_window(container, vs, times[0], start, tb, state)
        if it is None:
            it = self._decoded(container, vs, state)

        while gi < len(times):
            try:
                frame = next(it)
            except StopIteration:
                break
            if frame.pts is not None:
                if start is None:
                    start = float(frame.pts * tb)
                t = float(frame.pts * tb) - start
            else:  # no timestamp: assume constant rate after the previous frame
                t = (last_t + nominal_step) if last_t is not None else 0.0
            if last_t is not None and t < last_t - _EPS:
                continue  # out-of-order timestamp from a broken stream: ignore
            last_t = t
            if frame.key_frame:
                if last_key is not None and t > last_key:
                    kf_gap = max(kf_gap, t - last_key)
                last_key = t

            if prev is None:
                prev = (t, frame)
                continue
            # frames arrive in presentation order; ``prev`` is displayed at every
            # grid time before this frame's pts
            while gi < len(times) and times[gi] + _EPS < t:
                if last_emitted is None or prev[0] != last_emitted:
                    yield prev[0], self._convert(prev[1], size, reformatter)
                    last_emitted = prev[0]
                gi += 1
            prev = (t, frame)
            if gi >= len(times):
                break

            # sparse grid: jump over whole GOPs instead of decoding them
            target = times[gi]
            if (
                can_seek
                and start is not None
                and kf_gap > 0
                and target > seek_block
                and target - t > max(self.SEEK_GOPS * kf_gap, self.SEEK_MIN_SECONDS)
            ):
                new_it = self._seek(container, vs, target, start, tb, state)
                if new_it is None:
                    can_seek = False
                    continue
                first = new_it[0]
                if first is None:  # nothing after the seek point: go back to where we were
                    can_seek = False
                    it = self._resume_after(t, kf_gap, container, vs, start, tb, state)
                    continue
                ft, fframe = first
                if ft > target + _EPS and ft > t + _EPS:
                    # overshoot: the keyframe index is coarse; the frame shown at
                    # ``target`` may be earlier. Re-decode sequentially from the
                    # current frame instead (correctness first).
                    log.debug("%s: seek to %.3f landed at %.3f; decoding sequentially", self.path, target, ft)
                    can_seek = False
                    it = self._resume_after(t, kf_gap, container, vs, start, tb, state)
                    continue
                self.seeks += 1
                it = new_it[1]
                if ft <= t + _EPS:
                    # landed at or before the frame we hold (a longer GOP than seen
                    # so far): keep ``prev``, skip repeats, and decode on to ``target``
                    seek_block = target
                    it = _skip_until(it, t, start, tb)
                else:
                    prev = (ft, fframe)
                last_t = max(t, ft)
                last_key = None

        if "error" in state:
            _warn_truncated(self.path, self.name, last_t, state["error"])
        elif gi < len(times):
            _warn_if_short(self.path, self.name, last_t, self.info)
        if state.get("bad_packets"):
            log.info("%s: skipped %d undecodable packets", self.path, state["bad_packets"])
        if gi < len(times) and prev is not None and (last_emitted is None or prev[0] != last_emitted):
            yield prev[0], self._convert(prev[1], size, reformatter)

    def _seek(
        self, container: Any, vs: Any, target: float, start: float, tb: Fraction, state: dict[str, Any]
    ) -> tuple[tuple[float, Any] | None, Iterator[Any]] | None:
        """Seek to the keyframe at or before ``target``; return (first frame, rest) or None."""
        import av

        try:
            container.seek(int(math.floor((target + start) / tb)), stream=vs, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError) as exc:
            log.debug("%s: seek failed (%s); decoding sequentially", self.path, exc)
            return None
        it = self._decoded(container, vs, state)
        for frame in it:
            if frame.pts is None:
                continue
            return (float(frame.pts * tb) - start, frame), it
        return None, it

    #: how far before a window's start to retry when a seek lands after it (s)
    WINDOW_BACKOFF: tuple[float, ...] = (0.0, 10.0, 60.0)

    def _seek_window(
        self, container: Any, vs: Any, target: float, start: float, tb: Fraction, state: dict[str, Any]
    ) -> Iterator[Any] | None:
        """Decoded frames from a keyframe at or before relative time ``target`` (> 0).

        Retries further back when the keyframe index is coarse and the seek
        lands after ``target`` (correctness first); when no seek lands at or
        before it, or seeking fails, seeks back to the beginning, and returns
        None when even that fails (the caller then decodes on from where the
        container is: the start, if no seek ever succeeded). Successful
        window seeks count in :attr:`seeks`.
        """
        import itertools

        for back in self.WINDOW_BACKOFF:
            at = target - back
            if at <= 0:
                break
            got = self._seek(container, vs, at, start, tb, state)
            if got is None:  # seeking failed: go back to the start
                break
            if got[0] is not None and got[0][0] <= target + _EPS:
                self.seeks += 1
                return itertools.chain([got[0][1]], got[1])
            log.debug(
                "%s: window seek to %.3f landed at %s; trying further back",
                self.path, at, "the end" if got[0] is None else f"{got[0][0]:.3f}",
            )
        got = self._seek(container, vs, -start if start else 0.0, start, tb, state)
        if got is None:
            return None
        if got[0] is None:
            return got[1]
        return itertools.chain([got[0][1]], got[1])

    def _resume_after(
        self, t: float, kf_gap: float, container: Any, vs: Any, start: float, tb: Fraction, state: dict[str, Any]
    ) -> Iterator[Any]:
        """Continue sequential decoding just after relative pts ``t`` (after a bad seek).

        Seeks well before ``t`` and checks that it landed at or before ``t``;
        if not, starts over from the beginning of the file.
        """
        import itertools

        for back in (t - 4 * max(kf_gap, 1.0), None):
            got = None
            if back is not None and back > 0:
                got = self._seek(container, vs, back, start, tb, state)
                if got is not None and got[0] is not None and got[0][0] > t + _EPS:
                    got = None  # still too late
            if got is None or got[0] is None:
                if back is not None:
                    continue
                got = self._seek(container, vs, -start if start else 0.0, start, tb, state)
                if got is None:
                    return iter(())
                if got[0] is None:
                    return got[1]
            first_frame = got[0][1]
            return _skip_until(itertools.chain([first_frame], got[1]), t, start, tb)
        return iter(())  # pragma: no cover - the loop always returns


def _drain(stream: Any) -> list[Any]:
    """Flush a decoder whose input stopped early; [] if it cannot."""
    try:
        return list(stream.codec_context.decode(None))
    except Exception:  # noqa: BLE001
        return []


def _packet_pts(path: str) -> np.ndarray | None:
    """Sorted pts (s, relative to the video stream start) of every video packet, by demuxing only."""
    import av

    try:
        container = _av_open(path)
    except (av.error.FFmpegError, OSError):
        return None
    try:
        vstreams = _video_streams(container)
        if not vstreams:
            return None
        vs = vstreams[0]
        raw = []
        try:
            for pkt in container.demux(vs):
                if pkt.size and pkt.pts is not None:
                    raw.append(pkt.pts)
        except (av.error.FFmpegError, EOFError):
            pass
        if not raw:
            return None
        raw.sort()
        base = vs.start_time if vs.start_time is not None else raw[0]
        tb = vs.time_base
        return np.array([float((x - base) * tb) for x in raw], dtype=np.float64)
    finally:
        container.close()


def _skip_until(it: Iterator[Any], t: float, start: float, tb: Fraction) -> Iterator[Any]:
    """Drop frames whose relative pts is <= t (already seen)."""
    for frame in it:
        if frame.pts is not None and float(frame.pts * tb) - start <= t + _EPS:
            continue
        yield frame
        break
    yield from it


# --------------------------------------------------------------------------- #
# decord backend
# --------------------------------------------------------------------------- #


class DecordReader(_BaseReader):
    """decord: grid times -> frame indices via ``get_frame_timestamp``; small ``get_batch`` calls."""

    name = "decord"

    def __init__(self, path: str, info: VideoInfo) -> None:
        super().__init__(path, info)
        import decord

        self._decord = decord
        try:  # decord prints FFmpeg's complaints itself; vdisc reports them as warnings
            decord.logging.set_level(decord.logging.QUIET)
        except Exception:  # noqa: BLE001
            pass
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)
            n = len(self._vr)
            if n <= 0:
                raise _fail(path, "decord found no frames")
            ts = np.asarray(self._vr.get_frame_timestamp(range(n)), dtype=np.float64)
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - decord raises DECORDError / RuntimeError
            raise _fail(path, f"decord cannot open it: {_lib_message(exc)}") from exc
        starts = ts[:, 0] if ts.ndim == 2 else ts
        # decord indexes frames in presentation order; keep a sorted view anyway
        self._order = np.argsort(starts, kind="stable")
        self._pts = starts[self._order].astype(np.float64)
        # decord's timestamps are float32 (off by ~3e-5 s at 10 min, worse later),
        # which can flip the choice at a grid time; the exact pts come from a
        # cheap PyAV demux pass (packet timestamps, no decoding) when it sees
        # the same number of frames.
        exact = _packet_pts(path)
        if exact is not None and len(exact) == n and np.abs(exact - self._pts).max() < 0.5 / max(info.fps, 1.0):
            self._pts = exact
        else:
            log.info("%s: decord frame times are float32 approximations", path)
        self._resized: dict[tuple[int, int], Any] = {}

    def close(self) -> None:
        self._vr = None
        self._resized.clear()
        super().close()

    def _reader(self, size: tuple[int, int] | None) -> Any:
        if size is None:
            return self._vr
        if size not in self._resized:
            d = self._decord
            self._resized[size] = d.VideoReader(
                self.path, ctx=d.cpu(0), width=size[0], height=size[1], num_threads=0
            )
        return self._resized[size]

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        return self._frames_at(_pick_indices(self._pts, times), size)

    def _frames_at(self, picks: list[int], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        try:
            vr = self._reader(size)
        except Exception as exc:  # noqa: BLE001
            raise _fail(self.path, f"decord cannot open it at size {size}: {_lib_message(exc)}") from exc
        last: float | None = None
        for b in range(0, len(picks), _BATCH):
            chunk = picks[b : b + _BATCH]
            try:
                batch = vr.get_batch([int(self._order[i]) for i in chunk]).asnumpy()
            except Exception as exc:  # noqa: BLE001 - DECORDError on a damaged file
                _warn_truncated(self.path, self.name, last, exc)
                return
            for i, arr in zip(chunk, batch):
                last = float(self._pts[i])
                yield last, np.ascontiguousarray(arr)
            del batch
        if picks and picks[-1] == len(self._pts) - 1:
            _warn_if_short(self.path, self.name, last, self.info)


# --------------------------------------------------------------------------- #
# torchcodec backend
# --------------------------------------------------------------------------- #


class TorchCodecReader(_BaseReader):
    """torchcodec: ``get_frames_played_at`` on batches of grid times, NHWC uint8."""

    name = "torchcodec"

    def __init__(self, path: str, info: VideoInfo) -> None:
        super().__init__(path, info)
        self._decoders: dict[tuple[int, int] | None, Any] = {}
        try:
            dec = self._decoder(None)
            md = dec.metadata
            self._begin = float(md.begin_stream_seconds)
            self._end = float(md.end_stream_seconds)
            header = md.begin_stream_seconds_from_header
            self._start = float(header) if header is not None else self._begin
        except Exception as exc:  # noqa: BLE001 - RuntimeError from the C++ core
            raise _fail(path, f"torchcodec cannot open it: {_lib_message(exc)}") from exc
        if not self._end > self._begin:
            raise _fail(path, "torchcodec found no frames")

    def _decoder(self, size: tuple[int, int] | None) -> Any:
        if size not in self._decoders:
            from torchcodec.decoders import VideoDecoder

            transforms = None
            if size is not None:
                from torchcodec.transforms import Resize

                transforms = [Resize(size=(size[1], size[0]))]
            self._decoders[size] = VideoDecoder(
                self.path,
                dimension_order="NHWC",
                seek_mode="exact",
                num_ffmpeg_threads=0,
                transforms=transforms,
            )
        return self._decoders[size]

    def close(self) -> None:
        self._decoders.clear()
        super().close()

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, np.ndarray]]:
        try:
            dec = self._decoder(size)
        except Exception as exc:  # noqa: BLE001
            raise _fail(self.path, f"torchcodec cannot open it at size {size}: {_lib_message(exc)}") from exc
        # absolute stream seconds, clamped into [first frame, end of last frame)
        hi = math.nextafter(self._end, -math.inf)
        hi = min(hi, self._end - 1e-7) if self._end - self._begin > 1e-6 else self._begin
        query = [min(max(self._start + t + _EPS, self._begin), hi) for t in times]
        last: float | None = None
        for b in range(0, len(query), _BATCH):
            chunk = query[b : b + _BATCH]
            try:
                batches = [dec.get_frames_played_at(seconds=chunk)]
            except Exception:  # noqa: BLE001 - RuntimeError on a damaged file: go frame by frame
                batches = []
                for q in chunk:
                    try:
                        batches.append(dec.get_frames_played_at(seconds=[q]))
                    except Exception as exc:  # noqa: BLE001
                        failed: Exception | None = exc
                        break
                else:
                    failed = None
            else:
                failed = None
            for batch in batches:
                data = batch.data.numpy()
                for pts, arr in zip(batch.pts_seconds.tolist(), data):
                    rel = float(pts) - self._start
                    if last is not None and abs(rel - last) < 1e-9:
                        continue
                    last = rel
                    yield rel, np.ascontiguousarray(arr)
                del data
            del batches
            if failed is not None:
                _warn_truncated(self.path, self.name, last, failed)
                return
        if times and self._start + times[-1] + _EPS >= self._end:  # grid ran past the last frame
            _warn_if_short(self.path, self.name, last, self.info)


# --------------------------------------------------------------------------- #
# open_video / read_audio
# --------------------------------------------------------------------------- #

_FACTORIES: dict[str, Callable[[str, VideoInfo], _BaseReader]] = {
    "pyav": PyAVReader,
    "decord": DecordReader,
    "torchcodec": TorchCodecReader,
}


def open_video(path: str | os.PathLike[str], backend: str = "auto") -> VideoReader:
    """Open ``path`` for frame sampling.

    ``backend="auto"`` tries :data:`BACKENDS` in order, skipping unavailable
    ones and falling back to the next when one fails to open the file. A
    named backend raises :class:`DecodeError` saying why it cannot be used.
    Metadata (:attr:`VideoReader.info`) always comes from :func:`probe`.
    """
    name = (backend or "auto").strip().lower()
    if name != "auto" and name not in _FACTORIES:
        raise DecodeError(f"unknown video backend {backend!r}: choose auto, {', '.join(_ALL_BACKENDS)}")
    spath = _check_file(path)
    info = probe(spath)
    avail = available_backends()
    if name != "auto":
        reason = avail.get(name)
        if reason is not None:
            raise DecodeError(_one_line(f"{spath}: video backend {name!r} unavailable: {reason}"))
        return _FACTORIES[name](spath, info)

    failures: list[str] = []
    for cand in BACKENDS:
        reason = avail.get(cand)
        if reason is not None:
            log.debug("backend %s skipped: %s", cand, reason)
            continue
        try:
            return _FACTORIES[cand](spath, info)
        except Exception as exc:  # noqa: BLE001 - any backend failure: try the next one
            log.info("backend %s could not open %s: %s", cand, spath, exc)
            failures.append(f"{cand}: {_one_line(exc)}")
    detail = "; ".join(failures) if failures else "no video backend is installed (pip install av)"
    raise DecodeError(_one_line(f"{spath}: no backend could open it ({detail})"))


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Decode the (default) audio stream to float32 mono in [-1, 1] at ``sample_rate``.

    Resampling and down-mixing are done in-process by PyAV's ``AudioResampler``.
    Returns an empty array when the file has no audio stream. A file that
    breaks part-way returns the audio decoded so far (with a RuntimeWarning).
    """
    import av

    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    spath = _check_file(path)
    container = _open_container(spath)
    try:
        stream = _audio_stream(container)
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        chunks: list[np.ndarray] = []
        done = 0.0
        bad = 0

        def take(frames: list[Any]) -> None:
            for out in frames:
                chunks.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))

        def take_all(decoded: list[Any]) -> None:
            for frame in decoded:
                take(resampler.resample(frame))

        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except (av.error.FFmpegError, EOFError) as exc:
                _warn_truncated(spath, "audio", done, exc)
                take_all(_drain(stream))
                break
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                break
            except av.error.FFmpegError as exc:
                bad += 1
                if bad >= _MAX_BAD_PACKETS:
                    _warn_truncated(spath, "audio", done, exc)
                    break
                continue
            bad = 0
            for frame in decoded:
                if frame.time is not None:
                    done = float(frame.time)
                take(resampler.resample(frame))
        take(resampler.resample(None))
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks)
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio


__all__ = [
    "BACKENDS",
    "VideoInfo",
    "VideoReader",
    "available_backends",
    "open_video",
    "probe",
    "read_audio",
]
