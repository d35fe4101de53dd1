"""The decord backend: grid times -> frame indices from its frame timestamps, small get_batch calls."""

from __future__ import annotations

import logging
from typing import Any, Iterator

import numpy as np

from vdisc.errors import DecodeError

from .base import _BATCH, VideoInfo, _BaseReader, _fail, _lib_message, _pick_indices, _warn_if_short, _warn_truncated
from .probing import _packet_pts

log = logging.getLogger(__name__)


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
