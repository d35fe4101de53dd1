"""The PyAV backend (sequential, frame-threaded, seeking over GOPs) and its frame conversion."""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from .base import (
    _EPS, _MAX_BAD_PACKETS, VideoInfo, _BaseReader, _fail, _target_size, _warn_if_short, _warn_truncated,
)
from .probing import _drain, _open_container, _rotation_steps, _stream_start, _video_streams

log = logging.getLogger(__name__)


def frame_size(frame: Any, max_side: int | None) -> tuple[int, int] | None:
    """Target (w, h) for a PyAV VideoFrame's displayed (upright) picture: max side <= ``max_side``.

    None when no resize is needed (``max_side`` None, or the picture is small enough).
    """
    width, height = frame.width, frame.height
    if _rotation_steps(frame) % 2:  # shown rotated by +-90 degrees
        width, height = height, width
    return _target_size(width, height, max_side)


def frame_rgb(frame: Any, size: tuple[int, int] | None, reformatter: Any) -> np.ndarray:
    """A PyAV VideoFrame as contiguous ``H x W x 3`` uint8 RGB, scaled to ``size`` and turned upright.

    ``size`` is for the displayed picture (:func:`frame_size`), None keeps the
    frame's own size. One ``av.video.reformatter.VideoReformatter`` per stream
    reuses its swscale context.
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
        """:func:`frame_rgb`; one reformatter per ``frames()`` call reuses its swscale context."""
        return frame_rgb(frame, size, reformatter)

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


def _skip_until(it: Iterator[Any], t: float, start: float, tb: Fraction) -> Iterator[Any]:
    """Drop frames whose relative pts is <= t (already seen)."""
    for frame in it:
        if frame.pts is not None and float(frame.pts * tb) - start <= t + _EPS:
            continue
        yield frame
        break
    yield from it
