"""The torchcodec backend: get_frames_played_at on batches of grid times, NHWC uint8.

With a CUDA ``device`` the decoder runs on the GPU (NVDEC) and frames stay
there as uint8 tensors: the cut detector's histograms and the visual model's
preprocessing read them in place, and only the frames OCR and the captioner
read are copied to the host. NVDEC frames are resized on the GPU with torch
(bilinear, antialiased, like torchcodec's own CPU ``Resize``).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from .base import _BATCH, _EPS, Frame, VideoInfo, _BaseReader, _fail, _lib_message, _warn_if_short, _warn_truncated


class TorchCodecReader(_BaseReader):
    """torchcodec: ``get_frames_played_at`` on batches of grid times, NHWC uint8."""

    name = "torchcodec"
    _yields_tensors = True

    def __init__(self, path: str, info: VideoInfo, device: str | None = None) -> None:
        super().__init__(path, info)
        self.device = device
        self.decode_device = device if device is not None and device.startswith("cuda") else "cpu"
        self._decoders: dict[tuple[int, int] | None, Any] = {}
        try:
            dec = self._decoder(None)
            md = dec.metadata
            self._begin = float(md.begin_stream_seconds)
            self._end = float(md.end_stream_seconds)
            header = md.begin_stream_seconds_from_header
            self._start = float(header) if header is not None else self._begin
            if self.decode_device != "cpu":  # NVDEC refuses some streams only when asked for a frame
                dec.get_frames_played_at(seconds=[self._begin])
        except Exception as exc:  # noqa: BLE001 - RuntimeError from the C++ core
            raise _fail(path, f"torchcodec cannot open it: {_lib_message(exc)}") from exc
        if not self._end > self._begin:
            raise _fail(path, "torchcodec found no frames")

    def _decoder(self, size: tuple[int, int] | None) -> Any:
        if self.decode_device != "cpu":
            size = None  # one full-size NVDEC decoder; _resize scales its frames on the GPU
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
                device=self.decode_device,
            )
        return self._decoders[size]

    def close(self) -> None:
        self._decoders.clear()
        super().close()

    def _frames(self, times: list[float], size: tuple[int, int] | None) -> Iterator[tuple[float, Frame]]:
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
                data = self._pixels(batch.data, size)
                for pts, arr in zip(batch.pts_seconds.tolist(), data):
                    rel = float(pts) - self._start
                    if last is not None and abs(rel - last) < 1e-9:
                        continue
                    last = rel
                    if self.device is None:
                        arr = np.ascontiguousarray(arr)
                    elif self.decode_device != "cpu":
                        arr = arr.clone()  # its own GPU memory: a kept frame must not pin its whole batch
                    yield rel, arr
                del data
            del batches
            if failed is not None:
                _warn_truncated(self.path, self.name, last, failed)
                return
        if times and self._start + times[-1] + _EPS >= self._end:  # grid ran past the last frame
            _warn_if_short(self.path, self.name, last, self.info)

    def _pixels(self, data: Any, size: tuple[int, int] | None) -> Any:
        """A decoded NHWC batch as the caller wants it: numpy (no device), or tensors on ``device``."""
        if self.device is None:
            return data.numpy()
        if self.decode_device != "cpu" and size is not None:
            data = _resize(data, size)
        return data.to(self.device)  # a no-op where it already is


def _resize(data: Any, size: tuple[int, int]) -> Any:
    """NHWC uint8 frames scaled to ``size`` (w, h) on their device: bilinear, antialiased, rounded."""
    import torch.nn.functional as F

    x = data.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(data.dtype).permute(0, 2, 3, 1).contiguous()
