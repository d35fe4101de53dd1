"""probe() and the PyAV plumbing every backend shares: opening under OPEN_TIMEOUT, stream pickers, demux scans."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import VideoInfo, _check_file, _fail

if TYPE_CHECKING:  # pragma: no cover
    import av

log = logging.getLogger(__name__)

#: Seconds FFmpeg may spend opening a file (reading the header and probing the
#: streams) before vdisc gives up on it: a demuxer that loops on a damaged file
#: is interrupted through FFmpeg's interrupt callback and the file fails with
#: one line. Only the open is bounded (PyAV's read timeout would also fire on a
#: seek made after a long pause between packets); a decoder that hangs inside
#: libavcodec is bounded by the indexer instead (``decode.STALL_TIMEOUT``).
OPEN_TIMEOUT = 60.0


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
