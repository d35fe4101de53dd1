"""The offline pass: one video file in, rows and vectors in the library out.

    probe -> speech (Whisper words) -> frames @ cut_fps -> shots -> clips
          -> per batch of clips: visual embeddings, OCR, captions
          -> scenes -> rows (SQLite) -> text + visual vectors (FAISS) -> done

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

import bisect
import contextlib
import hashlib
import json
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

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select

from vdisc.config import Settings
from vdisc.errors import DecodeError, VdiscError

from . import decode
from .checkpoint import Checkpoint, ClipRecord, Resume
from .memory import consolidate
from .models import Registry
from .segment import ClipSpan, SampledFrame, Segmenter, group_scenes, histogram
from .store import Clip, Frame, Scene, Store, TextChunk, Video, Word, now_iso

log = logging.getLogger("vdisc")

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv".split()
)
SUMMARY_CHARS = 2000  # bound on the video-level digest text


class Progress(BaseModel):
    """One progress event: ``done`` of ``total`` media seconds of ``stage``."""

    video: str
    stage: str  # resume | speech | frames | store  (resume: ``done`` seconds were already indexed)
    done: float
    total: float


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
    out: list[Path] = []
    for p in map(Path, paths):
        p = p.expanduser()
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            out.append(p)
    return list(dict.fromkeys(x.resolve() if x.exists() else x for x in out))


@dataclass
class ClipResult:
    """One clip on its way to the library: its span and what perception found in it."""

    span: ClipSpan
    frame_ts: list[float] = field(default_factory=list)
    frame_vecs: np.ndarray | None = None
    ocr_lines: list[str] = field(default_factory=list)
    caption: str = ""
    words: list[Any] = field(default_factory=list)

    def record(self) -> ClipRecord:
        return ClipRecord(idx=self.span.idx, start=self.span.start, end=self.span.end, shot=self.span.shot,
                          hist=self.span.hist, frame_ts=self.frame_ts, frame_vecs=self.frame_vecs,
                          ocr_lines=self.ocr_lines, caption=self.caption)

    @classmethod
    def from_record(cls, c: ClipRecord) -> "ClipResult":
        span = ClipSpan(c.idx, c.start, c.end, c.shot, [], mean_hist=c.hist)
        return cls(span, frame_ts=list(c.frame_ts), frame_vecs=c.frame_vecs, ocr_lines=list(c.ocr_lines),
                   caption=c.caption)


class Indexer:
    """Indexes files into one library with one set of models."""

    def __init__(self, settings: Settings, store: Store, registry: Registry, progress: ProgressFn | None = None):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.progress = progress or (lambda event: None)

    # ---- one file -----------------------------------------------------------
    def index(self, path: str | Path, force: bool = False) -> IndexReport:
        t0 = time.monotonic()
        path = Path(path).expanduser()
        report = IndexReport(path=str(path), status="failed")
        try:
            if not path.exists():
                raise DecodeError(f"{path}: no such file")
            path = path.resolve()
            report.path = str(path)
            info = decode.probe(path)
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
                    if moved is not None and not Path(moved.path).exists() and not force:
                        was = moved.path
                        moved.path, moved.name = str(path), path.name
                        s.commit()
                        return report.model_copy(update=dict(
                            status="unchanged", video_id=moved.id, duration=moved.duration,
                            channels=list(moved.channels), reason=f"moved from {was}; path updated"))
            if old is not None:
                self.store.delete_video(old.id)
            self._index_new(path, info, fingerprint, report, force)
        except VdiscError as exc:
            report.reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a batch
            if os.environ.get("VDISC_DEBUG"):
                raise
            log.debug("indexing %s failed", path, exc_info=True)
            report.reason = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        report.seconds = round(time.monotonic() - t0, 3)
        return report

    def _index_new(self, path: Path, info: decode.VideoInfo, fingerprint: str, report: IndexReport,
                   force: bool) -> None:
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
            self._perceive_and_store(video_id, path, info, report, ckpt, resume)
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
        key = {"format": 1, "decoder": st.decoder,
               "models": {role: reg.ref(role) if reg.get(role) is not None else "off"
                          for role in ("visual", "ocr", "caption", "asr")},
               "sampling": [st.fps, st.cut_fps, st.max_side, st.clip_seconds, st.min_clip_seconds,
                            st.cut_threshold, st.batch_size, st.ocr_frames_per_clip, st.caption_frames]}
        return Checkpoint(self.store.home, fingerprint, path, key)

    # ---- perception ---------------------------------------------------------
    def _perceive_and_store(self, video_id: int, path: Path, info: decode.VideoInfo, report: IndexReport,
                            ckpt: Checkpoint, resume: Resume | None) -> None:
        st, reg, name = self.settings, self.registry, path.name
        channels: list[str] = []

        # Speech runs in a thread beside the frame pass: both spend their time in native
        # code that releases the GIL (CTranslate2, FFmpeg), so two cores overlap them.
        asr = reg.get("asr") if info.has_audio else None
        visual, ocr, captioner = reg.get("visual"), reg.get("ocr"), reg.get("caption")
        words: list[Any] | None = None
        if asr is not None and resume is not None and resume.words is not None:
            words, asr = [_Word(**w) for w in resume.words], None  # transcribed before the crash
        speech = ThreadPoolExecutor(1, thread_name_prefix="vdisc-asr") if asr is not None else None
        words_future = speech.submit(self._speech, asr, path, info, name, ckpt) if speech is not None else None
        try:
            results, decoder, duration = self._frames(path, info, name, visual, ocr, captioner, report, ckpt, resume)
        finally:
            if speech is not None:
                speech.shutdown(wait=True)
        if words_future is not None:
            words = words_future.result()
        if words is not None:
            channels.append("speech")

        if visual is not None:
            channels.append("visual")
        if ocr is not None:
            channels.append("ocr")
        if captioner is not None:
            channels.append("caption")
        starts = [r.span.start for r in results]
        for w in words or []:  # a word belongs to the clip holding its midpoint
            host = max(bisect.bisect_right(starts, 0.5 * (w.start + w.end)) - 1, 0)
            results[host].words.append(w)

        scenes = group_scenes([r.span for r in results], st.scene_similarity, st.scene_max_seconds)
        self._store(video_id, path, duration, results, scenes, channels, decoder, report)

    def _frames(self, path: Path, info: decode.VideoInfo, name: str, visual: Any, ocr: Any, captioner: Any,
                report: IndexReport, ckpt: Checkpoint, resume: Resume | None) -> tuple[list[ClipResult], str, float]:
        """Decode, cut into clips and perceive them in batches; frames are dropped once perceived.

        Each batch is checkpointed with the segmenter's state; with ``resume``
        the saved clips are taken as they are and decoding restarts after the
        last frame they used.
        """
        st = self.settings
        segmenter = Segmenter(st.clip_seconds, st.min_clip_seconds, st.cut_threshold)
        results: list[ClipResult] = []
        pending: list[ClipResult] = []
        ocr_memo: dict[str, Any] = {}
        grid_fps = max(st.cut_fps, st.fps)
        after = -math.inf  # frames up to this time were pushed by an earlier run
        if resume is not None and resume.clips:
            results = [ClipResult.from_record(c) for c in resume.clips]
            state = resume.state
            report.resumed_from = results[-1].span.end
            self.progress(Progress(video=name, stage="resume", done=report.resumed_from, total=info.duration))
            if state.get("complete"):
                report.clips = len(results)
                return results, state["decoder"], state["end"]
            segmenter.restore(state["segmenter"])
            after = segmenter.last_ts
            if "ocr_thumb" in state:
                ocr_memo.update(thumb=state["ocr_thumb"], lines=state["ocr_lines"])

        def flush(end: float | None = None) -> None:
            self.perceive(pending, visual, ocr, captioner, ocr_memo)
            for r in pending:
                r.span.drop_frames()  # frames are done with; keep memory flat
            results.extend(pending)
            if pending or end is not None:
                state: dict[str, Any] = {"ocr_thumb": ocr_memo.get("thumb"), "ocr_lines": ocr_memo.get("lines")}
                if end is None:
                    state["segmenter"] = segmenter.state()
                else:  # decoding is over: a resumed run goes straight to storing
                    state.update(complete=True, end=end, decoder=reader.name)
                ckpt.save_batch([r.record() for r in pending], state)
            pending.clear()

        keep_step, next_keep = 1.0 / st.fps, 0.0
        next_keep = _advance(next_keep, keep_step, after + 0.5 / st.cut_fps)
        start = 0.0 if after < 0 else math.floor(after * grid_fps + 1e-6) / grid_fps
        reader = self._open(path)
        with reader:
            frames = reader.frames(fps=grid_fps, max_side=st.max_side, start=start)
            # closing() stops the read-ahead thread before the reader closes under it
            with contextlib.closing(_watched(frames, decode.STALL_TIMEOUT, str(path))) as watched:
                for ts, rgb in watched:
                    if ts <= after:
                        continue
                    keep = ts >= next_keep - 0.5 / st.cut_fps
                    next_keep = _advance(next_keep, keep_step, ts + 0.5 / st.cut_fps)
                    frame = SampledFrame(ts=ts, rgb=rgb if keep else None, hist=histogram(rgb))
                    for clip in segmenter.push(frame):
                        pending.append(ClipResult(clip))
                    if sum(len(_kept(r.span)) for r in pending) >= st.batch_size:
                        flush()
                    self.progress(Progress(video=name, stage="frames", done=min(ts, info.duration),
                                           total=info.duration))
            end = max(info.duration, segmenter.last_ts)
            if segmenter.last_ts + max(2.0, 0.01 * info.duration) < info.duration:
                end = segmenter.last_ts + 1.0 / st.cut_fps  # truncated file: it ends where frames end
            for clip in segmenter.finish(end):
                pending.append(ClipResult(clip))
            if not results and not pending:
                raise DecodeError(f"{path}: no frames could be decoded")
            flush(end)
        report.clips = len(results)
        self.progress(Progress(video=name, stage="frames", done=info.duration, total=info.duration))
        return results, reader.name, end

    def _open(self, path: Path) -> decode.VideoReader:
        return decode.open_video(path, backend=self.settings.decoder)

    def _speech(self, asr: Any, path: Path, info: decode.VideoInfo, name: str, ckpt: Checkpoint) -> list[Any]:
        self.progress(Progress(video=name, stage="speech", done=0.0, total=info.duration))
        audio = decode.read_audio(path, sample_rate=16000)
        words = asr.transcribe(audio, on_progress=lambda t: self.progress(
            Progress(video=name, stage="speech", done=min(t, info.duration), total=info.duration)))
        ckpt.save_speech([{"start": w.start, "end": w.end, "text": w.text, "prob": w.prob} for w in words])
        self.progress(Progress(video=name, stage="speech", done=info.duration, total=info.duration))
        return words

    def perceive(self, batch: list[ClipResult], visual: Any, ocr: Any, captioner: Any, memo: dict[str, Any]) -> None:
        if not batch:
            return
        kept = [(r, f) for r in batch for f in _kept(r.span)]
        for r, f in kept:
            r.frame_ts.append(f.ts)
        if visual is not None and kept:
            vecs = visual.encode_images([f.rgb for _, f in kept])
            offset = 0
            for r in batch:
                n = len(r.frame_ts)
                r.frame_vecs = vecs[offset : offset + n]
                offset += n
        if ocr is not None and self.settings.ocr_frames_per_clip > 0:
            for r in batch:
                r.ocr_lines = _read_clip_text(ocr, _kept(r.span), self.settings.ocr_frames_per_clip, memo)
        if captioner is not None:
            from PIL import Image

            clips = [[Image.fromarray(f.rgb) for f in _pick(_kept(r.span), self.settings.caption_frames)] for r in batch]
            todo = [i for i, frames in enumerate(clips) if frames]
            captions = captioner.caption([clips[i] for i in todo]) if todo else []
            for i, text in zip(todo, captions):
                batch[i].caption = text.strip()

    # ---- storing ------------------------------------------------------------
    def _store(self, video_id: int, path: Path, duration: float, results: list[ClipResult],
               scene_groups: list[list[int]], channels: list[str], decoder: str, report: IndexReport) -> None:
        name = path.name
        self.progress(Progress(video=name, stage="store", done=0.0, total=duration))
        reg, store = self.registry, self.store
        caption_spec = reg.spec("caption")
        texts: list[TextChunk] = []
        frame_rows: list[Frame] = []
        clip_rows: list[Clip] = []
        with store.session() as s, s.begin():
            caption_model_id = store.model_id(s, caption_spec) if caption_spec else None
            scene_rows = []
            for si, group in enumerate(scene_groups):
                sc = Scene(video_id=video_id, idx=si, start=results[group[0]].span.start, end=results[group[-1]].span.end)
                s.add(sc)
                scene_rows.append(sc)
            s.flush()
            for si, group in enumerate(scene_groups):
                for ci in group:
                    r = results[ci]
                    clip = Clip(video_id=video_id, scene_id=scene_rows[si].id, idx=r.span.idx, start=r.span.start,
                                end=r.span.end, shot=r.span.shot, transcript=join_words(r.words),
                                ocr_text="\n".join(r.ocr_lines), caption=r.caption,
                                caption_model_id=caption_model_id if r.caption else None)
                    s.add(clip)
                    clip_rows.append(clip)
            s.flush()
            for clip, r in zip(clip_rows, results):  # scenes are contiguous runs, so same order
                for ts in r.frame_ts:
                    fr = Frame(video_id=video_id, clip_id=clip.id, ts=ts)
                    s.add(fr)
                    frame_rows.append(fr)
                for w in r.words:
                    s.add(Word(video_id=video_id, clip_id=clip.id, start=w.start, end=w.end, text=w.text, prob=w.prob))
                texts.extend(clip_texts(clip))
            for sc, group in zip(scene_rows, scene_groups):
                texts.extend(scene_texts(sc, [clip_rows[i] for i in group]))
            summary = video_summary(name, clip_rows)
            texts.append(TextChunk(video_id=video_id, level="video", unit_id=video_id, modality="summary",
                                   start=0.0, end=duration, text=summary))
            s.add_all(texts)
            s.flush()
            text_meta = [(t.id, t.level, t.modality, t.text) for t in texts]
            frame_ids = [f.id for f in frame_rows]
            clip_ids = [c.id for c in clip_rows]
            scene_ids = [sc.id for sc in scene_rows]
            video = s.get(Video, video_id)
            video.summary, video.decoder, video.duration = summary, decoder, duration

        touched = self.add_text_vectors(text_meta)
        if "visual" in channels:
            touched |= self._add_visual_vectors(video_id, results, scene_groups, frame_ids, clip_ids, scene_ids)
        for index in touched:
            index.save()
        # hour and day summaries, so a long video still browses in a bounded view
        consolidate(store, reg, video_id, final=True, retention_hours=self.settings.retention_hours)

        with store.session() as s, s.begin():
            video = s.get(Video, video_id)
            video.status, video.channels, video.indexed_at = "done", channels, now_iso()
        self.record_models()
        report.scenes, report.frames, report.duration = len(scene_ids), len(frame_ids), duration
        report.words, report.channels = sum(len(r.words) for r in results), channels
        self.progress(Progress(video=name, stage="store", done=duration, total=duration))

    def record_models(self) -> None:
        """The library remembers its encoders, so reopening it searches with the same ones."""
        self.store.set_meta("models", json.dumps({role: self.registry.ref(role) for role in ("visual", "text")}))

    def add_text_vectors(self, text_meta: list[tuple[int, str, str, str]]) -> set[Any]:
        model = self.registry.get("text")
        if model is None or not text_meta:
            return set()
        vecs = model.encode([t[3][:2000] for t in text_meta])
        touched = set()
        groups: dict[tuple[str, str], list[int]] = {}
        for row, (_, level, modality, _) in enumerate(text_meta):
            groups.setdefault((level, modality), []).append(row)
        for (level, modality), rows in groups.items():
            index = self.store.vectors(level, modality)
            index.add([text_meta[r][0] for r in rows], vecs[rows], model.spec)
            touched.add(index)
        return touched

    def _add_visual_vectors(self, video_id: int, results: list[ClipResult], scene_groups: list[list[int]],
                            frame_ids: list[int], clip_ids: list[int], scene_ids: list[int]) -> set[Any]:
        spec = self.registry.spec("visual")
        frame_vecs = [r.frame_vecs for r in results if r.frame_vecs is not None and len(r.frame_vecs)]
        if not frame_vecs:
            return set()
        clip_vecs = np.stack([mean_unit(r.frame_vecs) if r.frame_vecs is not None and len(r.frame_vecs)
                              else np.zeros(spec.dim, np.float32) for r in results])
        has = [i for i, r in enumerate(results) if r.frame_vecs is not None and len(r.frame_vecs)]
        levels = {
            "frame": (frame_ids, np.concatenate(frame_vecs)),
            "clip": ([clip_ids[i] for i in has], clip_vecs[has]),
            "scene": (scene_ids, np.stack([mean_unit(clip_vecs[group])
                                           for group in scene_groups])),
            "video": ([video_id], mean_unit(clip_vecs[has])[None]),
        }
        touched = set()
        for level, (ids, vecs) in levels.items():
            index = self.store.vectors(level, "visual")
            index.add(ids, vecs, spec)
            touched.add(index)
        return touched


# ---- helpers ----------------------------------------------------------------
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


def _kept(span: ClipSpan) -> list[SampledFrame]:
    return [f for f in span.frames if f.rgb is not None]


def _pick(frames: list[Any], n: int) -> list[Any]:
    """``n`` frames spread evenly (first, middle, last...)."""
    if len(frames) <= n:
        return list(frames)
    return [frames[round(i * (len(frames) - 1) / max(n - 1, 1))] for i in range(n)] if n > 1 else [frames[len(frames) // 2]]


def _read_clip_text(ocr: Any, frames: list[SampledFrame], n: int, memo: dict[str, Any]) -> list[str]:
    """OCR a few frames of a clip, skipping frames that look like the last one read."""
    lines: list[str] = []
    for f in _pick(frames, n):
        thumb = f.rgb[:: max(1, f.rgb.shape[0] // 48), :: max(1, f.rgb.shape[1] // 64)].astype(np.int16)
        prev = memo.get("thumb")
        if prev is not None and prev.shape == thumb.shape and np.abs(prev - thumb).mean() < 2.0:
            found = memo["lines"]  # same picture as before: reuse, don't read again
        else:
            found = [line.text for line in ocr.read(f.rgb)]
            memo["thumb"], memo["lines"] = thumb, found
        lines.extend(found)
    return list(dict.fromkeys(line for line in lines if line))


CHANNELS = (("speech", "transcript"), ("ocr", "ocr_text"), ("caption", "caption"))  # text modality, Clip column


def clip_texts(clip: Clip) -> list[TextChunk]:
    """The searchable text rows of a stored clip, one per channel that has words."""
    return [TextChunk(video_id=clip.video_id, level="clip", unit_id=clip.id, modality=modality, start=clip.start,
                      end=clip.end, text=getattr(clip, attr)) for modality, attr in CHANNELS
            if getattr(clip, attr).strip()]


def scene_texts(scene: Scene, clips: list[Clip]) -> list[TextChunk]:
    """A scene's text rows, one per channel, pooled from its clips' distinct lines."""
    if len(clips) < 2:  # one-clip scenes would only repeat the clip
        return []
    bodies = [(modality, dedupe_join(getattr(c, attr) for c in clips)) for modality, attr in CHANNELS]
    return [TextChunk(video_id=scene.video_id, level="scene", unit_id=scene.id, modality=modality,
                      start=scene.start, end=scene.end, text=body) for modality, body in bodies if body]


def join_words(words: list[Any]) -> str:
    return " ".join(w.text for w in words).strip()


def dedupe_join(parts: Any) -> str:
    return "\n".join(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def mean_unit(vecs: np.ndarray) -> np.ndarray:
    m = np.asarray(vecs, np.float32).mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def video_summary(name: str, clips: list[Clip]) -> str:
    """A bounded digest of the whole video for the video-level text index."""
    parts = [f"Video: {name}."]
    speech = " ".join(c.transcript for c in clips if c.transcript)
    shown = dedupe_join(line for c in clips for line in c.ocr_text.splitlines())
    captions = " ".join(c.caption for c in clips if c.caption)
    if captions:
        parts.append("Seen: " + captions[: SUMMARY_CHARS // 2])
    if speech:
        parts.append("Said: " + speech[: SUMMARY_CHARS // 2])
    if shown:
        parts.append("Shown: " + shown.replace("\n", "; ")[: SUMMARY_CHARS // 4])
    return " ".join(parts)[:SUMMARY_CHARS]
