"""Video and audio decoding for vdisc: probe, sample frames on a time grid, read audio.

Everything vdisc knows about pixels and samples comes through this package, so
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
* ``open_video(path, backend, device=...)`` hands frames out as torch uint8
  tensors on ``device`` instead of numpy arrays (same pixels). With a CUDA
  device and ``backend`` "auto" or "torchcodec", torchcodec decodes on the GPU
  (NVDEC) so frames never visit the host; when it cannot (no CUDA build, a
  codec NVDEC refuses) the file is decoded on the CPU as usual and its frames
  uploaded, and that is said once per process (``log.warning``).
  :func:`frame_device` says which device an indexing device's frames go to.
* :func:`read_audio` decodes the default (else first) audio stream to float32
  mono at the requested rate, resampling in-process with PyAV's
  ``AudioResampler`` (no ffmpeg binary is ever run).
* :func:`frame_size` and :func:`frame_rgb` are the PyAV reader's frame
  conversion for callers that decode PyAV frames themselves (the live
  follower): displayed size under ``max_side``, upright RGB24.

Failures a user can cause (missing, empty or non-video file, no video stream,
backend not installed) raise :class:`vdisc.errors.DecodeError` with one line
naming the path and the reason. A file that breaks part-way (truncated
download, corrupt tail) does not raise: iteration stops after the last good
frame with a :class:`RuntimeWarning`.

Heavy libraries (``av``, ``decord``, ``torchcodec``, ``torch``) are imported
lazily, inside the functions and classes that need them.

Modules: ``base`` (types, the base reader, the time grid, errors),
``probing`` (probe and PyAV container plumbing, :data:`OPEN_TIMEOUT`),
``pyav_reader``, ``decord_reader``, ``torchcodec_reader`` (one per backend),
``audio`` (read_audio); this file picks the backend.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Callable

from vdisc.errors import DecodeError

from . import base as _base
from .audio import read_audio
from .base import _EPS as GRID_EPS  # a frame at pts <= t + GRID_EPS is the one displayed at grid time t
from .base import VideoInfo, VideoReader, _BaseReader, _check_file, _one_line
from .decord_reader import DecordReader
from .probing import probe
from .pyav_reader import PyAVReader, frame_rgb, frame_size
from .torchcodec_reader import TorchCodecReader

log = logging.getLogger(__name__)

# A private helper the live follower (index/follow.py) reaches through the package.
_lib_message = _base._lib_message

# Default preference order for ``open_video(path, "auto")``, chosen by
# measurement (benchmarks/decode_speed.py; figures in README.md, "Benchmarks"):
# PyAV was fastest and always installs, so it is first and the fallback;
# torchcodec is close but needs torch and the system FFmpeg libraries; decord,
# slowest and unmaintained, refuses duration-less Matroska and truncated MP4
# files, so it is last.
BACKENDS: tuple[str, ...] = ("pyav", "torchcodec", "decord")

_ALL_BACKENDS: tuple[str, ...] = ("pyav", "decord", "torchcodec")
#: Seconds the indexer waits for the next frame before it gives up on a file: a
#: decoder that hangs inside libavcodec cannot be interrupted in-process (only
#: the open is, ``probing.OPEN_TIMEOUT``), so the indexer reads frames in a thread.
STALL_TIMEOUT = 60.0


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
# open_video
# --------------------------------------------------------------------------- #

_FACTORIES: dict[str, Callable[[str, VideoInfo], _BaseReader]] = {
    "pyav": PyAVReader,
    "decord": DecordReader,
    "torchcodec": TorchCodecReader,
}


def frame_device(device: str) -> str | None:
    """Where an indexing run on ``device`` wants its frames: a CUDA device keeps them on the GPU
    (tensors), anything else gets numpy arrays on the host (None), exactly as before."""
    return device if device.startswith("cuda") else None


def cuda_decode_unavailable() -> str | None:
    """None when torchcodec could decode on a CUDA GPU (NVDEC), else why not (one line)."""
    reason = available_backends().get("torchcodec")
    if reason is not None:
        return reason
    try:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
    except Exception as exc:  # noqa: BLE001 - a broken torch is a reason like any other
        return _one_line(exc)
    return None


_SAID: set[str] = set()  # GPU-decode fallbacks already reported in this process


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        log.warning(message)


def open_video(path: str | os.PathLike[str], backend: str = "auto", device: str | None = None) -> VideoReader:
    """Open ``path`` for frame sampling.

    ``backend="auto"`` tries :data:`BACKENDS` in order, skipping unavailable
    ones and falling back to the next when one fails to open the file. A
    named backend raises :class:`DecodeError` saying why it cannot be used.
    Metadata (:attr:`VideoReader.info`) always comes from :func:`probe`.
    ``device`` (a torch device): frames are uint8 tensors there; on CUDA,
    decoded there too when torchcodec can (see the module docstring).
    """
    name = (backend or "auto").strip().lower()
    if name != "auto" and name not in _FACTORIES:
        raise DecodeError(f"unknown video backend {backend!r}: choose auto, {', '.join(_ALL_BACKENDS)}")
    spath = _check_file(path)
    info = probe(spath)
    if device is not None and device.startswith("cuda") and name in ("auto", "torchcodec"):
        reader = _open_on_gpu(spath, info, device)
        if reader is not None:
            return reader
    reader = _open_on_cpu(spath, info, name, backend)
    reader.device = device
    return reader


def _open_on_gpu(spath: str, info: VideoInfo, device: str) -> VideoReader | None:
    """torchcodec decoding on ``device`` (NVDEC), or None (said once) when it cannot."""
    reason = cuda_decode_unavailable()
    if reason is None:
        try:
            return TorchCodecReader(spath, info, device=device)
        except Exception as exc:  # noqa: BLE001 - any NVDEC failure: decode on the CPU instead
            reason = _one_line(exc)
    _say_once(_one_line(f"decoding on the CPU, not the GPU ({reason}); frames are uploaded to {device}"))
    return None


def _open_on_cpu(spath: str, info: VideoInfo, name: str, backend: str) -> _BaseReader:
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


__all__ = [
    "BACKENDS",
    "GRID_EPS",
    "VideoInfo",
    "VideoReader",
    "available_backends",
    "cuda_decode_unavailable",
    "frame_device",
    "frame_rgb",
    "frame_size",
    "open_video",
    "probe",
    "read_audio",
]
