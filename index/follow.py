"""Following a live or growing source: clips are indexed as soon as they are complete.

    source (URL, growing file, capture device) -> one demux pass, video + audio
      -> frames @ cut_fps -> eager segmenter (a clip is out once clip_seconds long)
      -> per batch of clips: perceive (visual embeddings, OCR, captions), speech of its audio
      -> the writer (``writer.py``): scenes online, rows + vectors committed -> consolidate()

A live source can be read once only, so everything comes from one pass over
its packets, unlike a file (decoded and transcribed separately). The source
is one video in the library, with status "live" while followed and "done"
after; following it again continues its timeline.

Crash safety: each batch is written rows first, vectors second, and only
then does ``videos.duration`` (the high-water mark) move past it. A follower
that dies leaves rows past the mark; the next follow of the source drops
them (and any of their vectors) before continuing, and the next writer of the
library settles a video no follower is following any more
(``writer.settle_dead_followers``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select

from vdisc.config import Settings
from vdisc.errors import ConfigError, DecodeError, VdiscError

from . import decode
from .decode import probing
from .memory import consolidate
from .models import Registry
from .perceive import ClipResult, Perceiver, assign_words
from .pipeline import Progress, ProgressFn
from .segment import SampledFrame, Segmenter, histogram
from .store import Clip, Store, Video, now_iso
from .writer import VideoWriter, drop_after, record_models

log = logging.getLogger("vdisc")

IDLE_SECONDS = 30.0  # a growing file that stops growing this long has ended
READ_TIMEOUT = 30.0  # a network source silent this long has ended
ASR_RATE = 16000
AUDIO_LAG = 5.0  # seconds a clip waits for its audio before it is committed without the rest
DEVICE_FORMATS = frozenset("v4l2 video4linux2 avfoundation dshow gdigrab x11grab alsa pulse lavfi".split())


class FollowReport(BaseModel):
    source: str
    status: str  # ended (the source ended) | stopped (by the user or --duration) | failed
    video_id: int | None = None
    reason: str = ""
    clips: int = 0  # committed in this session
    media_seconds: float = 0.0  # media indexed in this session
    duration: float = 0.0  # the video's whole timeline
    continued_from: float = 0.0  # where this session started on that timeline
    seconds: float = 0.0  # wall-clock time spent


class Follower:
    """Follow one source until it ends, ``stop`` is set, or ``duration`` media seconds are done."""

    def __init__(self, settings: Settings, store: Store, registry: Registry, source: str | Path, *,
                 duration: float | None = None, stop: threading.Event | None = None,
                 progress: ProgressFn | None = None, idle: float = IDLE_SECONDS) -> None:
        self.settings, self.store, self.registry = settings, store, registry
        self.source = str(source)
        self.duration = duration
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda event: None)
        self.idle = idle
        self.report = FollowReport(source=self.source, status="failed")

    # ---- the run ------------------------------------------------------------
    def run(self) -> FollowReport:
        t0 = time.monotonic()
        live: _LiveVideo | None = None
        try:
            container, path, fmt = _open_source(self.source, self.stop, self.idle)
            with contextlib.closing(container):
                vs = next((s for s in container.streams.video), None)
                if vs is None:
                    raise DecodeError(f"{self.source}: no video stream")
                aus = next((s for s in container.streams.audio), None)
                live = _LiveVideo(self, path, vs, aus, fmt)
                self.report.video_id, self.report.continued_from = live.video_id, live.start
                ended = self._loop(container, vs, aus, live)
            self.report.status = "ended" if ended else "stopped"
        except Exception as exc:  # noqa: BLE001 - report it; what was committed stays
            self._failed(exc)
        finally:
            if live is not None:
                try:
                    live.finish()
                except Exception as exc:  # noqa: BLE001
                    self._failed(exc)
                self.report.duration = live.writer.end
            self.report.seconds = round(time.monotonic() - t0, 3)
        return self.report

    def _failed(self, exc: Exception) -> None:
        self.report.status = "failed"
        if isinstance(exc, VdiscError):
            self.report.reason = str(exc)
            return
        if os.environ.get("VDISC_DEBUG"):
            raise exc
        log.debug("following %s failed", self.source, exc_info=exc)
        self.report.reason = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def _loop(self, container: Any, vs: Any, aus: Any, live: "_LiveVideo") -> bool:
        """Read until the source ends (True) or we are told to stop (False)."""
        st = self.settings
        seg = Segmenter(st.clip_seconds, st.min_clip_seconds, st.cut_threshold, eager=True)
        seg.continue_from(live.next_clip_idx, live.next_shot_idx, live.start)
        audio = _AudioBuffer() if aus is not None and self.registry.get("asr") is not None else None
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
        size: tuple[int, int] | None = None  # of the displayed picture (None: as decoded), from the first frame
        sized = False
        perceiver = Perceiver.from_registry(st, self.registry)
        origin: float | None = None  # source time of the first video frame = media time ``live.offset``
        if live.skip_before > 0:  # a growing file followed again: its clock is the file's, jump ahead
            origin = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
            with contextlib.suppress(Exception):  # not seekable: frames before skip_before are skipped instead
                container.seek(int((origin + live.skip_before - 1.0) / vs.time_base), stream=vs, backward=True)
        next_grid = next_keep = live.start  # media times of the next sampled / kept frame
        grid_step, keep_step = 1.0 / st.cut_fps, 1.0 / st.fps
        pending: list[ClipResult] = []
        last_ts, pushed = live.start, False
        streams = [vs] + ([aus] if audio is not None else [])
        try:
            for packet in container.demux(streams):
                if self.stop.is_set():
                    return False
                try:
                    frames = packet.decode()
                except Exception as exc:  # noqa: BLE001 - a damaged packet in a live feed is skipped
                    log.debug("skipping a bad packet: %s", exc)
                    continue
                if packet.stream is not vs:
                    for af in frames:
                        # audio of media already indexed (a file followed again) is not kept
                        if af.pts is not None and (origin is None or float(af.pts * af.time_base) - origin
                                                   + live.offset >= live.skip_before - 1.0):
                            audio.add(af)
                else:
                    for frame in frames:
                        if frame.pts is None:
                            continue
                        t = float(frame.pts * frame.time_base)
                        origin = t if origin is None else origin
                        ts = t - origin + live.offset  # media time on the video's timeline
                        if ts < live.skip_before or ts + 1e-3 < next_grid:
                            continue
                        if self.duration is not None and ts - live.start >= self.duration:
                            self.stop.set()
                            break
                        while next_grid <= ts + 1e-3:
                            next_grid += grid_step
                        keep = ts >= next_keep - 0.5 * grid_step
                        while next_keep <= ts + 0.5 * grid_step:
                            next_keep += keep_step
                        if not sized:
                            size, sized = decode.frame_size(frame, st.max_side), True
                        rgb = decode.frame_rgb(frame, size, reformatter)
                        last_ts, pushed = ts, True
                        for clip in seg.push(SampledFrame(ts=ts, rgb=rgb if keep else None, hist=histogram(rgb))):
                            pending.append(ClipResult(clip))
                heard = None if audio is None or origin is None else audio.until - origin + live.offset
                ready = []  # clips whose audio is in (or late beyond waiting for), in order
                for r in pending:
                    if heard is not None and heard < r.span.end and last_ts - r.span.end < AUDIO_LAG:
                        break
                    ready.append(r)
                if ready:
                    pending = pending[len(ready):]
                    self._commit(ready, live, perceiver, audio, origin)
                if self.stop.is_set():
                    return False
            return True
        finally:
            # what is complete is kept: the shot in progress becomes the last clip
            if pushed:
                end = last_ts + grid_step
                pending.extend(ClipResult(c) for c in seg.finish(end))
                if pending:
                    self._commit(pending, live, perceiver, audio, origin)

    def _commit(self, batch: list[ClipResult], live: "_LiveVideo", perceiver: Perceiver,
                audio: "_AudioBuffer | None", origin: float | None) -> None:
        perceiver(batch)
        if audio is not None and origin is not None:
            lo, hi = batch[0].span.start, batch[-1].span.end
            samples = audio.take(origin + lo - live.offset, origin + hi - live.offset)
            if len(samples) >= ASR_RATE // 2:
                words = self.registry.get("asr").transcribe(samples)
                for w in words:
                    w.start, w.end = w.start + lo, w.end + lo
                assign_words(batch, words)
        live.writer.add(batch)
        consolidate(self.store, self.registry, live.video_id, final=False,
                    retention_hours=self.settings.retention_hours)
        self.report.clips += len(batch)
        self.report.media_seconds = round(live.writer.end - live.start, 3)
        self.progress(Progress(video=live.name, stage="follow", done=live.writer.end, total=live.writer.end))


class _LiveVideo:
    """The followed source's video row and where this session sits on its timeline; writes through a VideoWriter."""

    def __init__(self, follower: Follower, path: str, vs: Any, aus: Any, fmt: str | None) -> None:
        self.store, self.registry, self.settings = follower.store, follower.registry, follower.settings
        reg = self.registry
        self.channels = [channel for role, channel in (("asr", "speech"), ("visual", "visual"), ("ocr", "ocr"),
                                                       ("caption", "caption"))
                         if reg.get(role) is not None and (role != "asr" or aus is not None)]
        with self.store.session() as s, s.begin():
            video = s.scalar(select(Video).where(Video.path == path))
            if video is not None and not video.fingerprint.startswith("live:"):
                raise ConfigError(f"{path} is already indexed as a finished file; remove it first (vdisc rm)")
            if video is None:
                video = Video(path=path, name=_display_name(path), fingerprint="live:" + _digest(path), size=0,
                              duration=0.0, fps=float(vs.average_rate or 0), width=vs.codec_context.width or 0,
                              height=vs.codec_context.height or 0, has_audio=aus is not None, status="live",
                              channels=self.channels, decoder="pyav-live", summary="")
                s.add(video)
                s.flush()
            else:
                video.status = "live"
            if not video.started_at:
                video.started_at = now_iso()  # media second 0, on the wall clock (when following began)
            self.video_id, self.name = video.id, video.name
            high_water, started = float(video.duration), _parse_iso(video.started_at)
        drop_after(self.store, self.video_id, high_water)  # rows of a batch a dead follower never finished
        record_models(self.store, reg)  # readers open the library with these encoders while it grows
        if fmt == "file":  # a growing file is its own timeline: skip what is indexed
            self.offset, self.skip_before = 0.0, high_water
        else:  # a stream's clock restarts; place this session at its wall-clock time since media second 0
            self.offset, self.skip_before = max(high_water, time.time() - started), 0.0
        with self.store.session() as s:  # numbering goes on from an earlier session
            last = s.execute(select(Clip.idx, Clip.shot).where(Clip.video_id == self.video_id)
                             .order_by(Clip.idx.desc()).limit(1)).first()
        self.next_clip_idx, self.next_shot_idx = (0, 0) if last is None else (last[0] + 1, last[1] + 1)
        self.had_clips = last is not None
        self.start = max(self.offset, self.skip_before)  # media time where this session begins
        self.writer = VideoWriter(self.store, reg, self.settings, self.video_id, start=self.start)

    def finish(self) -> None:
        """Finish the video (its open scene, summary, video vector, "done"), or drop it if nothing came."""
        if not self.had_clips and self.writer.end <= self.offset and self.writer.scene is None:
            self.store.delete_video(self.video_id)  # nothing came through: no empty video left behind
            return
        self.writer.finish(self.channels)


class _AudioBuffer:
    """Mono 16 kHz audio by source time, dropped once transcribed."""

    def __init__(self) -> None:
        import av

        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_RATE)
        self.start: float | None = None  # source time of samples[0]
        self.samples = np.zeros(0, np.float32)

    @property
    def until(self) -> float:
        return -np.inf if self.start is None else self.start + len(self.samples) / ASR_RATE

    def add(self, frame: Any) -> None:
        t = float(frame.pts * frame.time_base)
        chunks = [f.to_ndarray().reshape(-1).astype(np.float32) for f in self._resampler.resample(frame)]
        data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if self.start is None:
            self.start = t
        gap = int(round((t - self.until) * ASR_RATE))
        if gap > ASR_RATE // 10:  # a hole in the feed: keep the clock right with silence
            data = np.concatenate([np.zeros(gap, np.float32), data])
        self.samples = np.concatenate([self.samples, data])

    def take(self, lo: float, hi: float) -> np.ndarray:
        """Samples for source times [lo, hi); everything before ``hi`` is then forgotten."""
        if self.start is None:
            return np.zeros(0, np.float32)
        a = max(0, int(round((lo - self.start) * ASR_RATE)))
        b = max(a, int(round((hi - self.start) * ASR_RATE)))
        out = self.samples[a:b].copy()
        self.samples = self.samples[b:]
        self.start += b / ASR_RATE
        return out


# ---- opening sources ----------------------------------------------------------
def _open_source(source: str, stop: threading.Event, idle: float) -> tuple[Any, str, str | None]:
    """(container, path stored for the video, kind): kind "file" for a growing file."""
    import av

    fmt, target = None, source
    head, sep, rest = source.partition(":")
    if sep and head in DEVICE_FORMATS:
        fmt, target = head, rest
    try:
        if fmt is not None:
            return av.open(target, format=fmt, timeout=(probing.OPEN_TIMEOUT, READ_TIMEOUT)), source, "device"
        if "://" in source:
            options = {"live_start_index": "0"} if ".m3u8" in source.lower() else {}
            return av.open(source, options=options, timeout=(probing.OPEN_TIMEOUT, READ_TIMEOUT)), source, "url"
        path = Path(source).expanduser()
        if not path.exists():
            raise DecodeError(f"{source}: no such file, URL or device")
        path = path.resolve()
        return av.open(_TailFile(path, stop, idle), mode="r"), str(path), "file"
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{source}: cannot open it as a live source: {decode._lib_message(exc)}") from None


class _TailFile:
    """A file read as it grows: at its end, wait for more until it is idle for ``idle`` seconds.

    The container must be streamable (MPEG-TS, Matroska/WebM, fragmented MP4):
    a plain MP4 writes its index last and cannot be read while it grows.
    """

    def __init__(self, path: Path, stop: threading.Event, idle: float) -> None:
        self.fh = path.open("rb")
        self.path, self.stop, self.idle = path, stop, idle
        self.ended = False  # idle once: the end is final (FFmpeg reads again after an empty read)

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        waited = 0.0
        while not data and not self.ended and not self.stop.is_set():
            if waited >= self.idle:
                self.ended = True
                break
            time.sleep(0.1)
            waited += 0.1
            data = self.fh.read(n)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def close(self) -> None:
        self.fh.close()


def _parse_iso(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return time.time()


def _display_name(source: str) -> str:
    tail = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    return tail or source


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]



class FollowHandle:
    """A follower running in a background thread (``Library.follow``): ask away while it runs."""

    def __init__(self, follower: Follower, cleanup: contextlib.ExitStack) -> None:
        self.follower = follower
        self._cleanup = cleanup
        self._thread = threading.Thread(target=self._run, name="vdisc-follow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._cleanup:  # releases the writer lock when the follower is done
            self.follower.run()

    def __repr__(self) -> str:
        r = self.report
        return f"<FollowHandle {r.source!r} {'running' if self.running else r.status}: {r.clips} clips>"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def report(self) -> FollowReport:
        """Progress so far (clips, media seconds); final once not running."""
        return self.follower.report

    def stop(self, timeout: float | None = None) -> FollowReport:
        """Stop after the clips that are complete are committed; returns the report."""
        self.follower.stop.set()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> FollowReport:
        """Wait for the source to end (or ``timeout`` seconds)."""
        self._thread.join(timeout)
        return self.report
