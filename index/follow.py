"""Following a live or growing source: clips are indexed as soon as they are complete.

    source (URL, growing file, capture device) -> one demux pass, video + audio
      -> frames @ cut_fps -> eager segmenter (a clip is out once clip_seconds long)
      -> per clip: visual embeddings, OCR, captions, speech of its audio
      -> rows + vectors committed -> scenes grouped online -> consolidate()

A live source can be read once only, so everything comes from one pass over
its packets, unlike a file (decoded and transcribed separately). The source
is one video in the library, with status "live" while followed and "done"
after; following it again continues its timeline.

Crash safety: each batch is written rows first, vectors second, and only
then does ``videos.duration`` (the high-water mark) move past it. A follower
that dies leaves rows past the mark; the next follow of the source drops
them (and any of their vectors) before continuing.
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
from sqlalchemy import delete, select, update

from vdisc.config import Settings
from vdisc.errors import ConfigError, DecodeError, VdiscError

from . import decode
from .memory import consolidate
from .models import Registry
from .pipeline import (ClipResult, Indexer, Progress, ProgressFn, clip_texts, join_words, mean_unit, scene_texts,
                       video_summary)
from .segment import SampledFrame, Segmenter, histogram, joins_scene
from .store import Clip, Frame, Scene, Store, TextChunk, Video, Word, now_iso

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
        self._indexer = Indexer(settings, store, registry)

    # ---- the run ------------------------------------------------------------
    def run(self) -> FollowReport:
        t0 = time.monotonic()
        writer: _LiveWriter | None = None
        try:
            container, path, fmt = _open_source(self.source, self.stop, self.idle)
            with contextlib.closing(container):
                vs = next((s for s in container.streams.video), None)
                if vs is None:
                    raise DecodeError(f"{self.source}: no video stream")
                aus = next((s for s in container.streams.audio), None)
                writer = _LiveWriter(self, path, vs, aus, fmt)
                self.report.video_id, self.report.continued_from = writer.video_id, writer.end_at_start
                ended = self._loop(container, vs, aus, writer)
            self.report.status = "ended" if ended else "stopped"
        except Exception as exc:  # noqa: BLE001 - report it; what was committed stays
            self._failed(exc)
        finally:
            if writer is not None:
                try:
                    writer.finish()
                except Exception as exc:  # noqa: BLE001
                    self._failed(exc)
                self.report.duration = writer.end
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

    def _loop(self, container: Any, vs: Any, aus: Any, writer: "_LiveWriter") -> bool:
        """Read until the source ends (True) or we are told to stop (False)."""
        st = self.settings
        seg = Segmenter(st.clip_seconds, st.min_clip_seconds, st.cut_threshold, eager=True)
        seg.continue_from(writer.next_clip_idx, writer.next_shot_idx, writer.end)
        audio = _AudioBuffer() if aus is not None and self.registry.get("asr") is not None else None
        size = decode._target_size(vs.codec_context.width or 0, vs.codec_context.height or 0, st.max_side)
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
        origin: float | None = None  # source time of the first video frame = media time ``writer.offset``
        if writer.skip_before > 0:  # a growing file followed again: its clock is the file's, jump ahead
            origin = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
            with contextlib.suppress(Exception):  # not seekable: frames before skip_before are skipped instead
                container.seek(int((origin + writer.skip_before - 1.0) / vs.time_base), stream=vs, backward=True)
        next_grid = next_keep = writer.end  # media times of the next sampled / kept frame
        grid_step, keep_step = 1.0 / st.cut_fps, 1.0 / st.fps
        pending: list[ClipResult] = []
        ocr_memo: dict[str, Any] = {}
        last_ts, pushed = writer.end, False
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
                                                   + writer.offset >= writer.skip_before - 1.0):
                            audio.add(af)
                else:
                    for frame in frames:
                        if frame.pts is None:
                            continue
                        t = float(frame.pts * frame.time_base)
                        origin = t if origin is None else origin
                        ts = t - origin + writer.offset  # media time on the video's timeline
                        if ts < writer.skip_before or ts + 1e-3 < next_grid:
                            continue
                        if self.duration is not None and ts - writer.end_at_start >= self.duration:
                            self.stop.set()
                            break
                        while next_grid <= ts + 1e-3:
                            next_grid += grid_step
                        keep = ts >= next_keep - 0.5 * grid_step
                        while next_keep <= ts + 0.5 * grid_step:
                            next_keep += keep_step
                        rgb = self._rgb(frame, size, reformatter)
                        last_ts, pushed = ts, True
                        for clip in seg.push(SampledFrame(ts=ts, rgb=rgb if keep else None, hist=histogram(rgb))):
                            pending.append(ClipResult(clip))
                heard = None if audio is None or origin is None else audio.until - origin + writer.offset
                ready = []  # clips whose audio is in (or late beyond waiting for), in order
                for r in pending:
                    if heard is not None and heard < r.span.end and last_ts - r.span.end < AUDIO_LAG:
                        break
                    ready.append(r)
                if ready:
                    pending = pending[len(ready):]
                    self._commit(ready, writer, audio, origin, ocr_memo)
                if self.stop.is_set():
                    return False
            return True
        finally:
            # what is complete is kept: the shot in progress becomes the last clip
            if pushed:
                end = last_ts + grid_step
                pending.extend(ClipResult(c) for c in seg.finish(end))
                if pending:
                    self._commit(pending, writer, audio, origin, ocr_memo)

    def _rgb(self, frame: Any, size: tuple[int, int] | None, reformatter: Any) -> np.ndarray:
        w, h = size if size is not None else (None, None)
        return np.ascontiguousarray(reformatter.reformat(frame, width=w, height=h, format="rgb24").to_ndarray())

    def _commit(self, batch: list[ClipResult], writer: "_LiveWriter", audio: "_AudioBuffer | None",
                origin: float | None, memo: dict[str, Any]) -> None:
        reg = self.registry
        self._indexer.perceive(batch, reg.get("visual"), reg.get("ocr"), reg.get("caption"), memo)
        if audio is not None and origin is not None:
            lo, hi = batch[0].span.start, batch[-1].span.end
            samples = audio.take(origin + lo - writer.offset, origin + hi - writer.offset)
            if len(samples) >= ASR_RATE // 2:
                for w in reg.get("asr").transcribe(samples):
                    w.start, w.end = w.start + lo, w.end + lo
                    mid = 0.5 * (w.start + w.end)
                    host = next((r for r in batch if r.span.start <= mid < r.span.end), batch[-1])
                    host.words.append(w)
        for r in batch:
            r.span.drop_frames()
        writer.add(batch)
        self.report.clips += len(batch)
        self.report.media_seconds = round(writer.end - writer.end_at_start, 3)
        self.progress(Progress(video=writer.name, stage="follow", done=writer.end, total=writer.end))


class _LiveWriter:
    """Commits clips of one followed video as they come, grouping scenes online."""

    def __init__(self, follower: Follower, path: str, vs: Any, aus: Any, fmt: str | None) -> None:
        self.f = follower
        self.store, self.registry, self.settings = follower.store, follower.registry, follower.settings
        self.path = path
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
        follower._indexer.record_models()  # readers open the library with these encoders while it grows
        if fmt == "file":  # a growing file is its own timeline: skip what is indexed
            self.offset, self.skip_before = 0.0, high_water
        else:  # a stream's clock restarts; place this session at its wall-clock time since media second 0
            self.offset, self.skip_before = max(high_water, time.time() - started), 0.0
        with self.store.session() as s:  # numbering goes on from an earlier session
            last = s.execute(select(Clip.idx, Clip.shot).where(Clip.video_id == self.video_id)
                             .order_by(Clip.idx.desc()).limit(1)).first()
            self.next_clip_idx, self.next_shot_idx = (0, 0) if last is None else (last[0] + 1, last[1] + 1)
            scene_idx = s.scalar(select(Scene.idx).where(Scene.video_id == self.video_id)
                                 .order_by(Scene.idx.desc()).limit(1))
            self.n_scenes = 0 if scene_idx is None else scene_idx + 1
        self.had_clips = last is not None
        self.end = self.end_at_start = max(self.offset, self.skip_before)
        # the open scene: its row id, first clip, last clip, member clip ids / texts / vectors
        self.scene: dict[str, Any] | None = None

    # ---- per batch ----------------------------------------------------------
    def add(self, batch: list[ClipResult]) -> None:
        st, reg, store = self.settings, self.registry, self.store
        caption_spec = reg.spec("caption")
        texts: list[TextChunk] = []
        closed: list[dict[str, Any]] = []
        scene_of: list[dict[str, Any]] = []  # the scene of each clip of the batch
        clip_rows, frame_rows = [], []
        with store.session() as s, s.begin():
            caption_model_id = store.model_id(s, caption_spec) if caption_spec else None
            for r in batch:
                sc = self.scene
                if sc is None or not joins_scene(sc["first"], sc["prev"], r.span, st.scene_similarity,
                                                 st.scene_max_seconds):
                    if sc is not None:
                        closed.append(sc)
                        texts.extend(self._scene_texts(sc))
                    row = Scene(video_id=self.video_id, idx=self.n_scenes, start=r.span.start, end=r.span.end)
                    s.add(row)
                    s.flush()
                    self.n_scenes += 1
                    sc = self.scene = {"id": row.id, "first": r.span, "prev": r.span, "start": r.span.start,
                                       "end": r.span.end, "clips": [], "vecs": []}
                else:
                    sc["prev"], sc["end"] = r.span, r.span.end
                    s.execute(update(Scene).where(Scene.id == sc["id"]).values(end=r.span.end))
                scene_of.append(sc)
                clip = Clip(video_id=self.video_id, scene_id=sc["id"], idx=r.span.idx, start=r.span.start,
                            end=r.span.end, shot=r.span.shot, transcript=join_words(r.words),
                            ocr_text="\n".join(r.ocr_lines), caption=r.caption,
                            caption_model_id=caption_model_id if r.caption else None)
                s.add(clip)
                s.flush()
                clip_rows.append(clip)
                sc["clips"].append(clip)
                for ts in r.frame_ts:
                    fr = Frame(video_id=self.video_id, clip_id=clip.id, ts=ts)
                    s.add(fr)
                    frame_rows.append(fr)
                for w in r.words:
                    s.add(Word(video_id=self.video_id, clip_id=clip.id, start=w.start, end=w.end, text=w.text,
                               prob=w.prob))
                texts.extend(clip_texts(clip))
            s.add_all(texts)
            s.flush()
            text_meta = [(t.id, t.level, t.modality, t.text) for t in texts]
            frame_ids = [f.id for f in frame_rows]
            clip_ids = [c.id for c in clip_rows]
        touched = self.f._indexer.add_text_vectors(text_meta)
        touched |= self._add_visual(batch, scene_of, frame_ids, clip_ids, closed)
        for index in touched:
            index.save()
        # the high-water mark moves last: everything before it has rows and vectors
        self.end = batch[-1].span.end
        with store.session() as s, s.begin():
            s.execute(update(Video).where(Video.id == self.video_id).values(duration=self.end))
        self._consolidate(final=False)

    def _add_visual(self, batch: list[ClipResult], scene_of: list[dict[str, Any]], frame_ids: list[int],
                    clip_ids: list[int], closed: list[dict[str, Any]]) -> set[Any]:
        spec = self.registry.spec("visual")
        if spec is None or self.registry.get("visual") is None:
            return set()
        touched: set[Any] = set()
        has = [i for i, r in enumerate(batch) if r.frame_vecs is not None and len(r.frame_vecs)]
        if has:
            frames = np.concatenate([batch[i].frame_vecs for i in has])
            clip_vecs = np.stack([mean_unit(batch[i].frame_vecs) for i in has])
            for level, ids, vecs in (("frame", frame_ids, frames), ("clip", [clip_ids[i] for i in has], clip_vecs)):
                index = self.store.vectors(level, "visual")
                index.add(ids, vecs, spec)
                touched.add(index)
            for i, vec in zip(has, clip_vecs):  # held only until their scene closes (bounded)
                scene_of[i]["vecs"].append(vec)
        scene_vecs = [(sc["id"], mean_unit(np.stack(sc["vecs"]))) for sc in closed if sc["vecs"]]
        if scene_vecs:
            index = self.store.vectors("scene", "visual")
            index.add([i for i, _ in scene_vecs], np.stack([v for _, v in scene_vecs]), spec)
            touched.add(index)
        return touched

    def _scene_texts(self, sc: dict[str, Any]) -> list[TextChunk]:
        scene = Scene(id=sc["id"], video_id=self.video_id, start=sc["start"], end=sc["end"])  # as it is now
        return scene_texts(scene, sc["clips"])

    # ---- the end ------------------------------------------------------------
    def finish(self) -> None:
        """Close the open scene, then finish the video (summary, video vector, done)."""
        store = self.store
        if not self.had_clips and self.end <= self.offset and self.scene is None:
            store.delete_video(self.video_id)  # nothing came through: no empty video left behind
            return
        if self.scene is not None:
            with store.session() as s, s.begin():
                texts = self._scene_texts(self.scene)
                s.add_all(texts)
                s.flush()
                text_meta = [(t.id, t.level, t.modality, t.text) for t in texts]
            touched = self.f._indexer.add_text_vectors(text_meta) | self._add_visual([], [], [], [], [self.scene])
            for index in touched:
                index.save()
            self.scene = None
        finish_video(self.store, self.registry, self.settings, self.video_id, self.channels)

    def _consolidate(self, final: bool) -> None:
        consolidate(self.store, self.registry, self.video_id, final=final,
                    retention_hours=self.settings.retention_hours)


def drop_after(store: Store, video_id: int, t: float) -> None:
    """Remove rows (and their vectors) a dead follower committed past the high-water mark ``t``."""
    with store.session() as s:
        clips = s.scalars(select(Clip.id).where(Clip.video_id == video_id, Clip.end > t + 1e-6)).all()
        if not clips:
            return
        frames = s.scalars(select(Frame.id).where(Frame.clip_id.in_(clips))).all()
        scenes = s.scalars(select(Scene.id).where(Scene.video_id == video_id, Scene.start >= t - 1e-6)).all()
        texts = s.scalars(select(TextChunk.id).where(
            TextChunk.video_id == video_id, TextChunk.level.in_(("clip", "scene")), TextChunk.end > t + 1e-6)).all()
    store.remove_vectors({"frame": frames, "clip": clips, "scene": scenes}, texts)
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(texts)))
        s.execute(delete(Word).where(Word.clip_id.in_(clips)))
        s.execute(delete(Frame).where(Frame.id.in_(frames)))
        s.execute(delete(Clip).where(Clip.id.in_(clips)))
        s.execute(delete(Scene).where(Scene.id.in_(scenes)))
        s.execute(update(Scene).where(Scene.video_id == video_id, Scene.end > t).values(end=t))


def finish_video(store: Store, registry: Registry, settings: Settings, video_id: int,
                 channels: list[str] | None = None) -> None:
    """Write a followed video's video-level summary and vector, mark it done, consolidate.

    The vector is the mean of all its clip vectors, read in chunks, so a
    continued or settled video gets the same as one followed in one go.
    """
    with store.session() as s:
        video = s.get(Video, video_id)
        name, end = video.name, float(video.duration)
        old_texts = s.scalars(select(TextChunk.id).where(TextChunk.video_id == video_id,
                                                        TextChunk.level == "video")).all()
        sample = s.scalars(select(Clip).where(Clip.video_id == video_id).order_by(Clip.start)
                           .limit(400)).all()  # plenty for a summary of SUMMARY_CHARS
        clip_ids = s.scalars(select(Clip.id).where(Clip.video_id == video_id)).all()
    store.remove_vectors({"video": [video_id]}, old_texts)
    summary = video_summary(name, sample) if sample else ""
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(old_texts)))
        texts = [TextChunk(video_id=video_id, level="video", unit_id=video_id, modality="summary", start=0.0,
                           end=end, text=summary)] if summary else []
        s.add_all(texts)
        s.flush()
        text_meta = [(t.id, t.level, t.modality, t.text) for t in texts]
    touched = Indexer(settings, store, registry).add_text_vectors(text_meta)
    clips = store.vectors("clip", "visual")
    have = sorted(set(clips.ids().tolist()) & set(clip_ids)) if len(clips) else []
    if have:
        total = sum(clips.vectors(have[i : i + 4096]).astype(np.float64).sum(axis=0)
                    for i in range(0, len(have), 4096))
        index = store.vectors("video", "visual")
        index.add([video_id], mean_unit(np.asarray(total, np.float32)[None])[None], clips.spec)
        touched.add(index)
    for index in touched:
        index.save()
    with store.session() as s, s.begin():
        video = s.get(Video, video_id)
        video.status, video.indexed_at, video.summary = "done", now_iso(), summary
        if channels is not None:
            video.channels = channels
    consolidate(store, registry, video_id, final=True, retention_hours=settings.retention_hours)


def settle_dead_followers(store: Store, registry: Registry, settings: Settings) -> list[str]:
    """Videos left "live" by a follower that died: trimmed to their last complete commit and
    finished. Call with the writer lock held (so no follower is running). Returns their names."""
    with store.session() as s:
        stale = s.execute(select(Video.id, Video.name, Video.duration).where(Video.status == "live")).all()
    for vid, _, duration in stale:
        drop_after(store, vid, float(duration))
        _rebuild_last_scene(store, registry, settings, vid)
        finish_video(store, registry, settings, vid)
    return [name for _, name, _ in stale]


def _rebuild_last_scene(store: Store, registry: Registry, settings: Settings, video_id: int) -> None:
    """Rebuild the texts and vector of a dead follower's last scene from its clips.

    That scene was open when the follower died, or was closed by the batch
    that never finished (its rows in, its vectors not): either way what it has
    is dropped and made again, so it ends like any closed scene.
    """
    with store.session() as s:
        scene = s.scalars(select(Scene).where(Scene.video_id == video_id).order_by(Scene.idx.desc()).limit(1)).first()
        if scene is None:
            return
        clips = s.scalars(select(Clip).where(Clip.scene_id == scene.id).order_by(Clip.start)).all()
        old = s.scalars(select(TextChunk.id).where(TextChunk.level == "scene", TextChunk.unit_id == scene.id)).all()
    store.remove_vectors({"scene": [scene.id]}, old)
    texts = scene_texts(scene, clips)
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(old)))
        s.add_all(texts)
        s.flush()
        text_meta = [(t.id, t.level, t.modality, t.text) for t in texts]
    touched = Indexer(settings, store, registry).add_text_vectors(text_meta)
    clip_index, scene_index = store.vectors("clip", "visual"), store.vectors("scene", "visual")
    have = sorted(set(clip_index.ids().tolist()) & {c.id for c in clips}) if len(clip_index) else []
    if have:
        scene_index.add([scene.id], mean_unit(clip_index.vectors(have))[None], clip_index.spec)
        touched.add(scene_index)
    for index in touched:
        index.save()


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
            return av.open(target, format=fmt, timeout=(decode.OPEN_TIMEOUT, READ_TIMEOUT)), source, "device"
        if "://" in source:
            options = {"live_start_index": "0"} if ".m3u8" in source.lower() else {}
            return av.open(source, options=options, timeout=(decode.OPEN_TIMEOUT, READ_TIMEOUT)), source, "url"
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
