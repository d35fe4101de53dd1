"""Indexing files: one video file in, rows and vectors in the library out.

    probe -> speech (Whisper words) -> frames @ cut_fps -> shots -> clips
          -> per batch of clips: perceive (visual embeddings, OCR, captions)
          -> the writer (``writer.py``): scenes, rows, text + visual vectors -> done

A video row is written first with status "indexing" and flipped to "done"
last; a run that dies in between leaves a row that the next run removes
(vectors first, then rows), so the library never holds half a video. The
perception work survives such a crash: each batch of clips is checkpointed
(see ``checkpoint.py``) and the next run resumes after the last saved clip.
Decoding runs a few frames ahead in a thread, which also bounds a decoder
that hangs (``decode.STALL_TIMEOUT``). Progress is reported through a
callback in media seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from pydantic import BaseModel
from sqlalchemy import select

from vdisc.config import Settings
from vdisc.errors import DecodeError, VdiscError

from . import decode, remote
from .checkpoint import Checkpoint, NoCheckpoint, Resume
from .models import Registry
from .perceive import ClipResult, Perceiver, assign_words, kept_frames
from .segment import SampledFrame, Segmenter, histogram
from .store import Store, Video
from .writer import VideoWriter

log = logging.getLogger("vdisc")

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv".split()
)


class Progress(BaseModel):
    """One progress event: ``done`` of ``total`` media seconds of ``stage``."""

    video: str
    stage: str  # resume | speech | frames | store  (resume: ``done`` seconds were already indexed)
    done: float
    total: float
    part: int | None = None  # the part of a file split by time range whose frames these are (summed by the driver)


ProgressFn = Callable[[Progress], None]


class IndexReport(BaseModel):
    path: str
    status: str  # indexed | unchanged | failed
    video_id: int | None = None
    reason: str = ""
    duration: float = 0.0
    clips: int = 0
    scenes: int = 0
    frames: int = 0
    words: int = 0
    events: int = 0  # utterances and text tracks
    channels: list[str] = []
    seconds: float = 0.0  # wall-clock time spent
    resumed_from: float = 0.0  # media seconds already done by an interrupted earlier run


def file_fingerprint(path: Path, block: int = 1 << 20) -> str:
    """Size plus a hash of the first and last MiB: cheap, and changes when the file does."""
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(block))
        if size > 2 * block:
            fh.seek(-block, 2)
            h.update(fh.read(block))
    return f"{size}-{h.hexdigest()[:16]}"


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders walked recursively for video extensions; sorted, unique."""
    out: list[Any] = []
    for p in paths:
        if remote.is_url(p):  # fsspec URLs (s3://, gs://, file://): files, or the videos under a prefix
            out.extend(remote.expand(str(p), VIDEO_EXTENSIONS))
            continue
        p = Path(p).expanduser()
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            out.append(p)
    return list(dict.fromkeys(x.resolve() if isinstance(x, Path) and x.exists() else x for x in out))


class Indexer:
    """Indexes files into one library with one set of models."""

    def __init__(self, settings: Settings, store: Store, registry: Registry, progress: ProgressFn | None = None):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.progress = progress or (lambda event: None)

    # ---- one file -----------------------------------------------------------
    def index(self, path: str | Path, force: bool = False) -> IndexReport:
        admitted = self.admit(path, force)
        return admitted if isinstance(admitted, IndexReport) else self.commit(admitted, force)

    def admit(self, path: str | Path, force: bool = False) -> "Admission | IndexReport":
        """The checks before any work: the file to index, or its report when there is nothing to do
        (unchanged, moved, unreadable). A file moved since it was indexed gets its new path here."""
        t0 = time.monotonic()
        report = IndexReport(path=str(path), status="failed")
        try:
            path = remote.as_path(path).expanduser()  # a URL stays a URL: it is the video's identity
            if not path.exists():
                raise DecodeError(f"{path}: no such file")
            path = path.resolve()
            report.path = str(path)
            info = remote.probe(path) if isinstance(path, remote.RemoteFile) else decode.probe(path)
            fingerprint = file_fingerprint(path)
            with self.store.session() as s:
                old = s.scalar(select(Video).where(Video.path == str(path)))
                if old is not None and old.status == "done" and old.fingerprint == fingerprint and not force:
                    return report.model_copy(update=dict(
                        status="unchanged", video_id=old.id, duration=old.duration, channels=list(old.channels),
                        reason="already indexed and unchanged (use --force to re-index)",
                    ))
                if old is None:  # the same file under another name: a move, not a new video
                    moved = s.scalars(select(Video).where(Video.fingerprint == fingerprint,
                                                          Video.status == "done")).first()
                    if moved is not None and not remote.exists(moved.path) and not force:
                        was = moved.path
                        moved.path, moved.name = str(path), path.name
                        s.commit()
                        return report.model_copy(update=dict(
                            status="unchanged", video_id=moved.id, duration=moved.duration,
                            channels=list(moved.channels), reason=f"moved from {was}; path updated"))
            return Admission(path, info, fingerprint, old.id if old is not None else None, report, t0)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
            report.reason = failure_reason(exc, path)
        report.seconds = round(time.monotonic() - t0, 3)
        return report

    def commit(self, job: "Admission", force: bool = False, perceived: "Perceived | None" = None) -> IndexReport:
        """Index an admitted file: perceive it here, or write what was ``perceived`` elsewhere (a Ray worker)."""
        report = job.report
        try:
            if job.old_id is not None:
                self.store.delete_video(job.old_id)
            self._index_new(job.path, job.info, job.fingerprint, report, force, perceived)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
            report.reason = failure_reason(exc, job.path)
        report.seconds = round(time.monotonic() - job.t0, 3)
        return report

    def _index_new(self, path: Path, info: decode.VideoInfo, fingerprint: str, report: IndexReport,
                   force: bool, perceived: "Perceived | None" = None) -> None:
        if perceived is not None:  # perceived elsewhere, without checkpoints: this file's old ones are stale
            ckpt, resume = Checkpoint(self.store.home, fingerprint, path, {}), None
            ckpt.discard_others()
            ckpt.discard()
        else:
            ckpt = self._checkpoint(path, fingerprint)
            ckpt.discard_others()
            if force:
                ckpt.discard()
            resume = ckpt.load()
            if resume is None:
                ckpt.start()
        with self.store.session() as s, s.begin():
            video = Video(path=str(path), name=path.name, fingerprint=fingerprint, size=path.stat().st_size,
                          duration=info.duration, fps=info.fps, width=info.width, height=info.height,
                          has_audio=info.has_audio, status="indexing", channels=[], decoder="", summary="")
            s.add(video)
            s.flush()
            video_id = video.id
        try:
            if perceived is None:
                perceived = self.perceive(path, info, report, ckpt, resume)
            self.store_perceived(video_id, path.name, perceived, report)
        except BaseException as exc:
            self.store.delete_video(video_id)  # never leave half a video behind
            if isinstance(exc, VdiscError):  # the file is at fault: rerunning would fail the same way
                ckpt.discard()
            raise
        ckpt.discard()
        report.status, report.video_id = "indexed", video_id

    def _checkpoint(self, path: Path, fingerprint: str) -> Checkpoint:
        """The checkpoint of this file, valid only for the models and settings that shape perception."""
        st, reg = self.settings, self.registry
        # format 2: OCR reads are kept with their times (for text tracks)
        key = {"format": 2, "ocr_every": st.ocr_every, "decoder": st.decoder,
               "models": {role: reg.ref(role) if reg.get(role) is not None else "off"
                          for role in ("visual", "ocr", "caption", "asr")},
               "sampling": [st.fps, st.cut_fps, st.max_side, st.clip_seconds, st.min_clip_seconds,
                            st.cut_threshold, st.batch_size, st.ocr_frames_per_clip, st.caption_frames]}
        return Checkpoint(self.store.home, fingerprint, path, key)

    # ---- perception ---------------------------------------------------------
    def perceive(self, path: Path, info: decode.VideoInfo, report: IndexReport, ckpt: Checkpoint,
                 resume: Resume | None) -> "Perceived":
        """Everything the models do for one file, with no store access: it runs here or on a worker.
        A URL is decoded from a local copy, removed afterwards (``remote.local_copy``)."""
        with remote.local_copy(path) as local:
            return self._perceive(local, path.name, info, report, ckpt, resume)

    def _perceive(self, path: Path, name: str, info: decode.VideoInfo, report: IndexReport, ckpt: Checkpoint,
                  resume: Resume | None) -> "Perceived":
        reg = self.registry
        perceiver = Perceiver.from_registry(self.settings, reg)

        # Speech runs in a thread beside the frame pass: both spend their time in native
        # code that releases the GIL (CTranslate2, FFmpeg), so two cores overlap them.
        asr = reg.get("asr") if info.has_audio else None
        words: list[Any] | None = None
        if asr is not None and resume is not None and resume.words is not None:
            words, asr = [_Word(**w) for w in resume.words], None  # transcribed before the crash
        speech = ThreadPoolExecutor(1, thread_name_prefix="vdisc-asr") if asr is not None else None
        words_future = speech.submit(self._speech, asr, path, info, name, ckpt) if speech is not None else None
        try:
            results, decoder, duration = self._frames(path, info, name, perceiver, report, ckpt, resume)
        finally:
            if speech is not None:
                speech.shutdown(wait=True)
        if words_future is not None:
            words = words_future.result()
        channels = ["speech"] * (words is not None) + perceiver.channels
        assign_words(results, words or [])
        return Perceived(results, channels, decoder, duration)

    def store_perceived(self, video_id: int, name: str, perceived: "Perceived", report: IndexReport) -> None:
        """The writer's part: a perceived file becomes the video's rows and vectors."""
        reg, duration, channels = self.registry, perceived.duration, perceived.channels
        # a file is written in one batch: its speech came in only now
        self.progress(Progress(video=name, stage="store", done=0.0, total=duration))
        writer = VideoWriter(self.store, reg, self.settings, video_id)
        writer.add(perceived.results)
        writer.finish(channels, decoder=perceived.decoder)
        report.scenes, report.frames, report.words, report.events = (writer.scenes, writer.frames, writer.words,
                                                                     writer.events)
        report.clips = len(perceived.results)
        report.duration, report.channels = duration, channels
        self.progress(Progress(video=name, stage="store", done=duration, total=duration))

    def _frames(self, path: Path, info: decode.VideoInfo, name: str, perceiver: Perceiver, report: IndexReport,
                ckpt: Checkpoint, resume: Resume | None) -> tuple[list[ClipResult], str, float]:
        """Decode, cut into clips and perceive them in batches; frames are dropped once perceived.

        Each batch is checkpointed with the segmenter's state; with ``resume``
        the saved clips are taken as they are and decoding restarts after the
        last frame they used.
        """
        results: list[ClipResult] = []
        span = FrameRange()
        if resume is not None and resume.clips:
            results = [ClipResult.from_record(c) for c in resume.clips]
            state = resume.state
            report.resumed_from = results[-1].span.end
            self.progress(Progress(video=name, stage="resume", done=report.resumed_from, total=info.duration))
            if state.get("complete"):
                report.clips = len(results)
                return results, state["decoder"], state["end"]
            span = FrameRange(state=state)
        run = self._run_range(path, info, name, perceiver, span, ckpt)
        results.extend(run.clips)
        if not results:
            raise DecodeError(f"{path}: no frames could be decoded")
        report.clips = len(results)
        self.progress(Progress(video=name, stage="frames", done=info.duration, total=info.duration))
        assert run.end is not None  # a range without an end runs to the file's end
        return results, run.decoder, run.end

    def perceive_range(self, path: Path, info: decode.VideoInfo, span: "FrameRange") -> "RangeRun":
        """The frames of one time range of a file (a part of a split file, or the redo at a seam), with
        no store access and no checkpoints: ``index/split.py`` puts the parts together."""
        with remote.local_copy(path) as local:
            perceiver = Perceiver.from_registry(self.settings, self.registry)
            run = self._run_range(local, info, path.name, perceiver, span, NoCheckpoint(path))
        run.channels = perceiver.channels
        return run

    def _run_range(self, path: Path, info: decode.VideoInfo, name: str, perceiver: Perceiver, span: "FrameRange",
                   ckpt: Checkpoint) -> "RangeRun":
        """Decode ``span``'s frames, cut them into clips and perceive those, batch by batch.

        A range starts from the beginning, from ``span.start`` with a fresh
        segmenter, or from a saved ``span.state`` (a checkpoint, or the seam of
        a split file), and it runs to the file's end (clips all handed out) or
        stops before ``span.end`` (the shot still open is left to whoever goes
        on from its state), or at the first of ``span.sync`` cuts it makes too.
        """
        st = self.settings
        segmenter = Segmenter(st.clip_seconds, st.min_clip_seconds, st.cut_threshold)
        pending: list[ClipResult] = []
        run = RangeRun()
        grid_fps = max(st.cut_fps, st.fps)
        after = -math.inf  # frames up to this time belong before the range
        if span.state is not None:
            segmenter.restore(span.state["segmenter"])
            after = segmenter.last_ts
            perceiver.restore_memo(span.state)
            start = math.floor(after * grid_fps + 1e-6) / grid_fps
        elif span.start > 0:
            # a frame shown since the grid time before ``start`` was already taken there by the range before
            start = span.start
            after = start - 1.0 / grid_fps + decode.GRID_EPS
        else:
            start = 0.0
        sync = {mark[0]: mark for mark in span.sync}

        def flush(end: float | None = None) -> None:
            perceiver(pending)
            run.clips.extend(pending)
            if pending or end is not None:
                state: dict[str, Any] = perceiver.memo_state()
                if end is None:
                    state["segmenter"] = segmenter.state()
                else:  # decoding is over: a resumed run goes straight to storing
                    state.update(complete=True, end=end, decoder=reader.name)
                ckpt.save_batch([r.record() for r in pending], state)
            pending.clear()

        keep_step, next_keep = 1.0 / st.fps, 0.0
        next_keep = _advance(next_keep, keep_step, after + 0.5 / st.cut_fps)
        reader = self._open(path)
        with reader:
            run.decoder = reader.name
            frames = reader.frames(fps=grid_fps, max_side=st.max_side, start=start, end=span.end)
            # closing() stops the read-ahead thread before the reader closes under it
            with contextlib.closing(_watched(frames, decode.STALL_TIMEOUT, str(path))) as watched:
                for ts, rgb in watched:
                    if ts <= after:
                        continue
                    run.frames += 1
                    if run.frames == 1 and span.state is None and start > 0:
                        # a fresh segmenter's first frame starts a shot, as a cut there would: a sync point
                        run.marks.append((ts, *segmenter.counters))
                    keep = ts >= next_keep - 0.5 / st.cut_fps
                    next_keep = _advance(next_keep, keep_step, ts + 0.5 / st.cut_fps)
                    frame = SampledFrame(ts=ts, rgb=rgb if keep else None, hist=histogram(rgb))
                    cuts = len(segmenter.cuts)
                    for clip in segmenter.push(frame):
                        pending.append(ClipResult(clip))
                    if len(segmenter.cuts) > cuts:  # a cut at ts: the shot before is handed out whole
                        run.marks.append((ts, *segmenter.counters))
                        if ts in sync:  # from here on the range that made this cut goes on as this one would
                            run.synced = sync[ts]
                            break
                    if sum(len(kept_frames(r.span)) for r in pending) >= perceiver.batch_frames:
                        flush()
                    self.progress(Progress(video=name, stage="frames", done=min(ts, info.duration),
                                           total=info.duration, part=span.part))
            if run.synced is not None or span.end is not None:
                flush()
                if segmenter.has_state:
                    run.state = perceiver.memo_state() | {"segmenter": segmenter.state()}
                return run
            end = max(info.duration, segmenter.last_ts)
            if segmenter.last_ts + max(2.0, 0.01 * info.duration) < info.duration:
                end = segmenter.last_ts + 1.0 / st.cut_fps  # truncated file: it ends where frames end
            for clip in segmenter.finish(end):
                pending.append(ClipResult(clip))
            if pending or run.clips or span.state is not None:
                flush(end)
            run.end = end
        return run

    def _open(self, path: Path) -> decode.VideoReader:
        # on a CUDA device frames stay on the GPU (NVDEC when torchcodec can) for the models there
        return decode.open_video(path, backend=self.settings.decoder,
                                 device=decode.frame_device(self.registry.device))

    def transcribe(self, path: Path, info: decode.VideoInfo) -> list[Any] | None:
        """A whole file's words (None without audio or an ASR model): the speech task of a split file,
        whose frames are perceived in parts (Whisper's windows follow one another, so speech is not split)."""
        asr = self.registry.get("asr") if info.has_audio else None
        if asr is None:
            return None
        with remote.local_copy(path) as local:
            return self._speech(asr, local, info, path.name, NoCheckpoint(path))

    def _speech(self, asr: Any, path: Path, info: decode.VideoInfo, name: str, ckpt: Checkpoint) -> list[Any]:
        self.progress(Progress(video=name, stage="speech", done=0.0, total=info.duration))
        audio = decode.read_audio(path, sample_rate=16000)
        words = asr.transcribe(audio, on_progress=lambda t: self.progress(
            Progress(video=name, stage="speech", done=min(t, info.duration), total=info.duration)))
        ckpt.save_speech([{"start": w.start, "end": w.end, "text": w.text, "prob": w.prob} for w in words])
        self.progress(Progress(video=name, stage="speech", done=info.duration, total=info.duration))
        return words


# ---- helpers ----------------------------------------------------------------
@dataclass
class Admission:
    """A file that passed :meth:`Indexer.admit` and is to be indexed (``old_id``: the stale row it replaces)."""

    path: Path
    info: decode.VideoInfo
    fingerprint: str
    old_id: int | None
    report: IndexReport
    t0: float  # time.monotonic() at admission: the report's seconds count from here


CutMark = tuple[float, int, int]  # (time of a cut, next clip index, the new shot's index) in a range's numbering


@dataclass
class FrameRange:
    """Which frames a run perceives: see :meth:`Indexer._run_range`."""

    start: float = 0.0  # with a fresh segmenter from this time (a part of a split file)
    state: dict[str, Any] | None = None  # or on from this saved state (segmenter and OCR memo)
    end: float | None = None  # stop before this time; None: to the file's end
    sync: list[CutMark] = field(default_factory=list)  # stop at the first of these cuts this run makes too
    part: int | None = None  # which part of a split file (-1: a seam's run); tags its progress events


@dataclass
class RangeRun:
    """What a range's run found: its clips, the cuts it made, and where it stopped."""

    clips: list[ClipResult] = field(default_factory=list)
    marks: list[CutMark] = field(default_factory=list)
    state: dict[str, Any] | None = None  # to go on from, when it stopped early (None: no clip handed out yet)
    synced: CutMark | None = None  # the ``sync`` cut it stopped at (that mark, in the other range's numbering)
    end: float | None = None  # the file's end, when the run got there and handed out every clip
    frames: int = 0  # frames decoded in the range
    decoder: str = ""
    channels: list[str] = field(default_factory=list)  # the picture channels perceived


@dataclass
class Perceived:
    """One whole file's perception, ready for the writer: clips with their words, channels, decoder, end."""

    results: list[ClipResult]
    channels: list[str]
    decoder: str
    duration: float


def failure_reason(exc: Exception, path: Path) -> str:
    """The report's one line for a file that failed (``VDISC_DEBUG`` re-raises what vdisc did not expect)."""
    if isinstance(exc, VdiscError):
        return str(exc)
    if os.environ.get("VDISC_DEBUG"):
        raise exc
    log.debug("indexing %s failed", path, exc_info=exc)
    return f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class _Word:
    """A transcribed word read back from a checkpoint."""

    start: float
    end: float
    text: str
    prob: float = 1.0


def _advance(next_keep: float, step: float, limit: float) -> float:
    """Step the next 1-fps keep time past ``limit``, by the same additions as frame-by-frame."""
    while next_keep <= limit:
        next_keep += step
    return next_keep


_T = TypeVar("_T")


def _watched(items: Iterator[_T], stall: float, what: str) -> Iterator[_T]:
    """``items``, pulled a few ahead in a thread; a source silent for ``stall`` seconds is abandoned.

    The read-ahead overlaps decoding with perception. A decoder stuck inside
    FFmpeg cannot be interrupted, so on a stall the thread is left behind
    (it is a daemon) and the file is given up with a DecodeError.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def offer(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(message, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            offer(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the generator's cleanup (closing its container) runs in its own thread

    thread = threading.Thread(target=pump, name="vdisc-decode", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, item = q.get(timeout=stall)
            except queue.Empty:
                raise DecodeError(f"{what}: the decoder produced nothing for {stall:g} s; "
                                  "giving up on this file") from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=min(stall, 5.0))
