"""Cut moments out of videos and concatenate them into one file, with PyAV (no ffmpeg binary needed).

Each part is decoded from the keyframe before its start and re-encoded, so
cuts are frame-exact: picture k of a part shows the latest source frame at or
before ``start + k / fps`` (fixed-rate resampling, so variable-frame-rate
sources cut cleanly), and its audio is resampled to 48 kHz stereo and trimmed
by sample count, silence filling gaps. Frame and sample counts come from
cumulative times, so over many parts pictures and sound never drift apart and
the clip lasts the sum of its parts. The output is H.264 (MPEG-4 Part 2 where
PyAV's FFmpeg lacks libx264) with AAC audio, at the first part's size and
frame rate; other sizes are letterboxed. Rotation metadata is not applied.
"""

from __future__ import annotations

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import BaseModel

from vdisc.errors import ConfigError, DecodeError

CLIP_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that take H.264/MPEG-4 video with AAC audio
AUDIO_RATE = 48_000  # Hz, stereo: every part's audio is resampled to this so they concatenate
DEFAULT_FPS = 25.0  # frame rate when a video does not say


class ClipPart(BaseModel):
    """One piece of a clip: a file and a window of it in seconds (from the first video frame)."""

    path: str
    start: float
    end: float


class ClipReport(BaseModel):
    """What ``cut_clip`` wrote."""

    path: str
    duration: float  # seconds: the sum of the parts
    moments: int  # parts
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    fps: float
    seconds: float  # time it took


def _encoder(names: Iterable[str]) -> str | None:
    import av

    for name in names:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - not in this FFmpeg build: try the next
            continue
    return None


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


class _ClipWriter:
    """An output file fed with pictures and audio samples at fixed rates (so duration is exact)."""

    def __init__(self, path: str, width: int, height: int, fps: Fraction, audio: bool) -> None:
        import av

        codec = _encoder(("libx264", "mpeg4"))
        if codec is None:
            raise DecodeError("this FFmpeg (PyAV) build has no H.264 or MPEG-4 encoder")
        # faststart: the index goes first, so a browser can play the clip while it downloads
        opts = {"movflags": "+faststart"} if Path(path).suffix.lower() in (".mp4", ".m4v", ".mov") else {}
        self.out = av.open(path, "w", container_options=opts)
        self.vs = self.out.add_stream(codec, rate=fps)
        self.vs.width, self.vs.height, self.vs.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            self.vs.options = {"preset": "veryfast", "crf": "20"}
        else:
            self.vs.bit_rate = 2_000_000
        self.vs.codec_context.thread_type = "AUTO"
        self.video_codec = codec
        self.width, self.height, self.fps = width, height, fps
        self.tb = 1 / fps
        self.vpts = 0
        self.audio_codec: str | None = None
        self.as_: Any = None
        if audio:
            self.audio_codec = _encoder(("aac",))
        if self.audio_codec is not None:
            self.as_ = self.out.add_stream(self.audio_codec, rate=AUDIO_RATE)
            self.as_.layout = "stereo"
            self.as_.format = "fltp"
            self.apts = 0
            self._pending: list[Any] = []  # float32 (2, n) chunks not yet a full encoder frame
            self._pending_n = 0

    def picture(self, frame: Any) -> None:
        """Encode one output frame (already yuv420p at the output size)."""
        frame.pts = self.vpts
        frame.time_base = self.tb  # a decoded frame carries its source's time base; pts counts output frames
        self.vpts += 1
        for packet in self.vs.encode(frame):
            self.out.mux(packet)

    def samples(self, chunk: Any) -> None:
        """Append (2, n) float32 samples at AUDIO_RATE."""
        if self.as_ is None or chunk.shape[1] == 0:
            return
        self._pending.append(chunk)
        self._pending_n += chunk.shape[1]
        size = self.as_.codec_context.frame_size or 1024
        while self._pending_n >= size:
            self._encode_audio(size)

    def silence(self, n: int) -> None:
        import numpy as np

        while n > 0:
            k = min(n, AUDIO_RATE)
            self.samples(np.zeros((2, k), np.float32))
            n -= k

    def _encode_audio(self, n: int) -> None:
        import av
        import numpy as np

        buf = np.concatenate(self._pending, axis=1)
        chunk, rest = buf[:, :n], buf[:, n:]
        self._pending, self._pending_n = ([rest] if rest.shape[1] else []), rest.shape[1]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = self.apts, Fraction(1, AUDIO_RATE)
        self.apts += chunk.shape[1]
        for packet in self.as_.encode(frame):
            self.out.mux(packet)

    def close(self) -> None:
        if self.as_ is not None:
            if self._pending_n:
                self._encode_audio(self._pending_n)  # the last frame may be short
            for packet in self.as_.encode(None):
                self.out.mux(packet)
        for packet in self.vs.encode(None):
            self.out.mux(packet)
        self.out.close()


def _fit(frame: Any, width: int, height: int) -> Any:
    """``frame`` as yuv420p at width x height, scaled to fit and letterboxed when the shape differs."""
    import av
    import numpy as np

    if (frame.width, frame.height) == (width, height):
        return frame.reformat(format="yuv420p")
    scale = min(width / frame.width, height / frame.height)
    w, h = _even(frame.width * scale), _even(frame.height * scale)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    canvas[y:y + h, x:x + w] = frame.to_ndarray(width=w, height=h, format="rgb24")
    return av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")


OPEN_TIMEOUT = 30.0  # s: a file that does not answer (a stale network mount) fails instead of hanging


def _open(path: str) -> Any:
    import av

    try:
        return av.open(path, timeout=OPEN_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - FFmpeg's reasons vary; the user needs the file and the reason
        raise DecodeError(f"{path}: cannot open: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None


def _main_video(container: Any, path: str) -> Any:
    """The stream the indexer read (the default one, else the first): index times are on its clock."""
    streams = list(container.streams.video)
    if not streams:
        raise DecodeError(f"{path}: no video stream")
    import av

    return next((s for s in streams if s.disposition & av.stream.Disposition.default), streams[0])


def _decoded(container: Any, streams: list[Any]) -> Iterator[Any]:
    """Decoded frames of ``streams`` in demux order; a damaged tail ends the stream instead of failing."""
    import av

    try:
        for packet in container.demux(*streams):
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                continue  # FFmpeg conceals a bad packet; the fixed-rate writer fills the gap
    except (av.error.FFmpegError, EOFError):
        return


LOOKAHEAD = 2.0  # s past a part's end after which a stream that has not delivered never will


def _cut(writer: _ClipWriter, part: ClipPart, n_frames: int, n_samples: int) -> None:
    """Append ``part`` to the writer as exactly ``n_frames`` pictures and ``n_samples`` audio samples.

    Picture k shows the latest decoded frame at or before part.start + k / fps
    (a fixed-rate resampling, so variable-rate sources cut cleanly); audio is
    resampled and trimmed to the part by sample count, silence filling gaps.
    """
    import av

    fps = float(writer.fps)
    length = part.end - part.start
    container = _open(part.path)
    try:
        vs = _main_video(container, part.path)
        vs.thread_type = "AUTO"
        as_ = container.streams.audio[0] if container.streams.audio and writer.as_ is not None else None
        t0 = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0  # index times start here
        try:
            container.seek(int((part.start + t0) / vs.time_base), stream=vs, backward=True)
        except av.error.FFmpegError:
            pass  # unseekable: decode from the start, frames before the part are skipped below

        k = 0  # next output picture, at part.start + k / fps
        prev: Any = None  # latest decoded frame at or before that time, and its converted form
        prev_fit: Any = None
        written = 0  # samples of this part handed to the writer
        pos = 0  # part-relative index of the resampler's next output sample
        heard = False  # an audio frame has set ``pos``
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE) if as_ is not None else None

        def emit(frame: Any) -> None:
            nonlocal prev_fit, k
            if frame is prev and prev_fit is not None:
                fitted = prev_fit
            else:
                fitted = _fit(frame, writer.width, writer.height)
                if frame is prev:
                    prev_fit = fitted
            writer.picture(fitted)
            k += 1

        def take(chunk: Any) -> None:
            nonlocal written, pos
            n = chunk.shape[1]
            if pos > written:
                writer.silence(min(pos, n_samples) - written)
                written = min(pos, n_samples)
            lo, hi = max(written - pos, 0), min(n, n_samples - pos)
            if hi > lo:
                writer.samples(chunk[:, lo:hi])
                written = pos + hi
            pos += n

        for frame in _decoded(container, [vs] + ([as_] if as_ is not None else [])):
            if frame.pts is None or frame.time is None:
                continue
            t = frame.time - t0 - part.start  # seconds into the part
            if isinstance(frame, av.VideoFrame):
                while k < n_frames and t > k / fps + 1e-6:
                    emit(prev if prev is not None else frame)
                prev, prev_fit = frame, None
            elif resampler is not None and written < n_samples:
                if not heard:
                    pos, heard = int(round(t * AUDIO_RATE)), True
                for out in resampler.resample(frame):
                    take(out.to_ndarray())
            if (k >= n_frames and (resampler is None or written >= n_samples)) or t > length + LOOKAHEAD:
                break
        # the file ended first (or the part runs to its very end): hold the last picture, pad with silence
        while k < n_frames:
            if prev is None:
                raise DecodeError(f"{part.path}: no picture decoded at {part.start:g} s")
            emit(prev)
        if writer.as_ is not None:
            if resampler is not None and heard and written < n_samples:
                for out in resampler.resample(None):
                    take(out.to_ndarray())
            writer.silence(n_samples - written)
    finally:
        container.close()


def _output_shape(path: str) -> tuple[int, int, Fraction, bool]:
    """Width, height, frame rate and has-audio of a video (the clip takes its first part's)."""
    container = _open(path)
    try:
        vs = _main_video(container, path)
        rate = vs.average_rate or vs.guessed_rate
        fps = Fraction(rate).limit_denominator(1001) if rate and 1 <= float(rate) <= 120 else Fraction(DEFAULT_FPS)
        return _even(vs.codec_context.width), _even(vs.codec_context.height), fps, bool(container.streams.audio)
    finally:
        container.close()


def cut_clip(parts: list[ClipPart], out: str | Path) -> ClipReport:
    """Cut ``parts`` from their files and concatenate them into one video at ``out``.

    Pictures are re-encoded (H.264 when PyAV's FFmpeg has it, else MPEG-4) at
    the first part's size and frame rate, other sizes letterboxed; audio is
    AAC, 48 kHz stereo, silence where a file has none. Each part contributes
    exactly its length, so the clip lasts their sum. The file appears only
    when complete (written beside it, then renamed).
    """
    started = time.monotonic()
    out = Path(out).expanduser()
    if not parts:
        raise ConfigError("nothing to cut: no moments")
    if out.suffix.lower() not in CLIP_SUFFIXES:
        raise ConfigError(f"--clip writes {', '.join(CLIP_SUFFIXES)} files, not {out.name!r}")
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: no such directory {out.parent}")
    if out.exists() and out.resolve() in {Path(p.path).resolve() for p in parts}:
        raise ConfigError(f"{out} is one of the source videos; write the clip elsewhere")
    for p in parts:
        if not Path(p.path).is_file():
            raise DecodeError(f"{p.path}: no such file (moved since it was indexed? re-run vdisc index)")
    shapes = {p.path: _output_shape(p.path) for p in parts}
    width, height, fps, _ = shapes[parts[0].path]
    audio = any(shape[3] for shape in shapes.values())
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(fd)
    try:
        writer = _ClipWriter(tmp, width, height, fps, audio)
        try:
            # counts from cumulative times: rounding never drifts pictures and sound apart over many parts
            done = 0.0
            for part in parts:
                a, b = done, done + part.end - part.start
                _cut(writer, part, max(1, round(b * float(fps)) - round(a * float(fps))),
                     round(b * AUDIO_RATE) - round(a * AUDIO_RATE))
                done = b
        finally:
            writer.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ClipReport(path=str(out), duration=round(writer.vpts / float(fps), 3), moments=len(parts),
                      video_codec=writer.video_codec, audio_codec=writer.audio_codec, width=width, height=height,
                      fps=round(float(fps), 3), seconds=round(time.monotonic() - started, 2))
