"""The one writer: batches of perceived clips become a video's rows, text units and vectors.

File indexing, live following, resume and settling all write through here:

    VideoWriter.add(batch)   scenes grouped online (the same rule for a whole file
                             or clip by clip), clip / frame / word rows, the events
                             (utterances, text tracks) that ended, text rows, then
                             their text and visual vectors, then the video's
                             duration (the high-water mark) moves past the batch
    VideoWriter.finish()     the open scene's texts and vector, the open events,
                             then finish_video: summary, video vector, hour/day
                             periods, status "done"

Rows are committed before vectors, and the mark moves last, so after a crash
everything before ``videos.duration`` has rows and vectors; ``drop_after``
removes what lies beyond it and ``settle_dead_followers`` finishes such a video.
A file being indexed is written in one batch once its speech is in (status
"indexing" until done; a crash leaves a row the next run removes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import delete, select, update

from vdisc.config import Settings

from .events import EventSpan, TrackBuilder, UtteranceBuilder, utterance_span, utterances
from .memory import consolidate
from .models import Registry
from .perceive import ClipResult
from .segment import ClipSpan, joins_scene
from .store import EVENT_MODALITY, Clip, Event, Frame, Scene, Store, TextChunk, Video, Word, now_iso
from .vectors import VectorIndex

SUMMARY_CHARS = 2000  # bound on the video-level digest text
SUMMARY_CLIPS = 400  # clips read for the summary: plenty to fill SUMMARY_CHARS
CHANNELS = (("speech", "transcript"), ("ocr", "ocr_text"), ("caption", "caption"))  # text modality, Clip column
VECTOR_CHUNK = 4096  # clip vectors read back at a time when pooling a video's
TEMPORAL = "temporal"  # the clip compressor's clip vectors (frame order kept), beside the mean-pooled "visual"


@dataclass
class _OpenScene:
    """The scene the next clip may join: its row, first and last clip, members and their vectors."""

    id: int
    first: ClipSpan
    prev: ClipSpan
    start: float
    end: float
    clips: list[Clip] = field(default_factory=list)
    vecs: list[np.ndarray] = field(default_factory=list)  # held only until the scene closes (bounded)


class VideoWriter:
    """Writes one video's clips, batch by batch, into the library; numbering continues from what is stored."""

    def __init__(self, store: Store, registry: Registry, settings: Settings, video_id: int,
                 start: float = 0.0) -> None:
        self.store, self.registry, self.settings = store, registry, settings
        self.video_id = video_id
        with store.session() as s:
            scene_idx = s.scalar(select(Scene.idx).where(Scene.video_id == video_id)
                                 .order_by(Scene.idx.desc()).limit(1))
        self.n_scenes = 0 if scene_idx is None else scene_idx + 1
        self.scene: _OpenScene | None = None
        self.utterances, self.tracks = UtteranceBuilder(), TrackBuilder(start)  # events still going on
        self.end = start  # where the last batch ended (media time)
        self.scenes = self.frames = self.words = self.events = 0  # written by this writer

    def add(self, batch: list[ClipResult]) -> None:
        """Commit ``batch`` (consecutive clips, in order): rows, then vectors, then the high-water mark."""
        if not batch:
            return
        st, store = self.settings, self.store
        caption_spec = self.registry.spec("caption")
        texts: list[TextChunk] = []
        closed: list[_OpenScene] = []
        scene_of: list[_OpenScene] = []  # the scene of each clip of the batch
        with store.session() as s, s.begin():
            caption_model_id = store.model_id(s, caption_spec) if caption_spec else None
            for r in batch:
                sc = self.scene
                if sc is not None and joins_scene(sc.first, sc.prev, r.span, st.scene_similarity,
                                                  st.scene_max_seconds):
                    sc.prev, sc.end = r.span, r.span.end
                else:
                    if sc is not None:
                        closed.append(sc)
                    row = Scene(video_id=self.video_id, idx=self.n_scenes, start=r.span.start, end=r.span.end)
                    s.add(row)
                    s.flush()
                    self.n_scenes += 1
                    self.scenes += 1
                    sc = self.scene = _OpenScene(row.id, r.span, r.span, r.span.start, r.span.end)
                scene_of.append(sc)
            for sc in {id(sc): sc for sc in scene_of}.values():  # the scenes this batch grew
                s.execute(update(Scene).where(Scene.id == sc.id).values(end=sc.end))
            clips = [Clip(video_id=self.video_id, scene_id=sc.id, idx=r.span.idx, start=r.span.start,
                          end=r.span.end, shot=r.span.shot, transcript=join_words(r.words),
                          ocr_text="\n".join(r.ocr_lines), caption=r.caption,
                          caption_model_id=caption_model_id if r.caption else None)
                     for r, sc in zip(batch, scene_of)]
            s.add_all(clips)
            s.flush()
            frame_rows: list[Frame] = []
            for clip, r, sc in zip(clips, batch, scene_of):
                sc.clips.append(clip)
                frame_rows.extend(Frame(video_id=self.video_id, clip_id=clip.id, ts=ts) for ts in r.frame_ts)
                s.add_all(Word(video_id=self.video_id, clip_id=clip.id, start=w.start, end=w.end, text=w.text,
                               prob=w.prob) for w in r.words)
                texts.extend(clip_texts(clip))
            for sc in closed:
                texts.extend(self._scene_texts(sc))
            words = sorted((w for r in batch for w in r.words), key=lambda w: w.start)
            reads = sorted((read for r in batch for read in r.ocr_reads), key=lambda read: read[0])
            texts.extend(self._write_events(s, self.utterances.feed(words) + self.tracks.feed(reads)))
            s.add_all(frame_rows)
            s.add_all(texts)
            s.flush()
            frame_ids = [f.id for f in frame_rows]
            clip_ids = [c.id for c in clips]
        touched = add_text_vectors(store, self.registry, texts)
        touched |= self._add_visual(batch, scene_of, frame_ids, clip_ids, closed)
        for index in touched:
            index.save()
        self.frames += len(frame_ids)
        self.words += sum(len(r.words) for r in batch)
        # the high-water mark moves last: everything before it has rows and vectors
        self.end = batch[-1].span.end
        with store.session() as s, s.begin():
            s.execute(update(Video).where(Video.id == self.video_id).values(duration=self.end))

    def close_scene(self) -> None:
        """Write the open scene's texts and vector and the events still going on (the media stops here)."""
        sc, self.scene = self.scene, None
        with self.store.session() as s, s.begin():
            texts = self._scene_texts(sc) if sc is not None else []
            s.add_all(texts)
            texts += self._write_events(s, self.utterances.close() + self.tracks.close(self.end))
        touched = add_text_vectors(self.store, self.registry, texts)
        if sc is not None:
            touched |= self._add_visual([], [], [], [], [sc])
        for index in touched:
            index.save()

    def finish(self, channels: list[str] | None = None, **video: Any) -> None:
        """Close the open scene and events, then finish the video (summary, video vector, periods, "done")."""
        self.close_scene()
        finish_video(self.store, self.registry, self.settings, self.video_id, channels, **video)

    def _write_events(self, s: Any, spans: list[EventSpan]) -> list[TextChunk]:
        """Event rows for these spans and their text rows, added to the open session ``s``."""
        self.events += len(spans)
        return write_events(s, self.video_id, spans)

    def _scene_texts(self, sc: _OpenScene) -> list[TextChunk]:
        scene = Scene(id=sc.id, video_id=self.video_id, start=sc.start, end=sc.end)  # as it is now
        return scene_texts(scene, sc.clips)

    def _add_visual(self, batch: list[ClipResult], scene_of: list[_OpenScene], frame_ids: list[int],
                    clip_ids: list[int], closed: list[_OpenScene]) -> set[VectorIndex]:
        has = [i for i, r in enumerate(batch) if r.has_vectors]
        if not has and not any(sc.vecs for sc in closed):
            return set()
        spec = self.registry.spec("visual")
        touched: set[VectorIndex] = set()
        if has:  # with a visual model every kept frame has its vector, so frame rows and vectors align
            frames = np.concatenate([batch[i].frame_vecs for i in has])
            clip_vecs = np.stack([mean_unit(batch[i].frame_vecs) for i in has])
            touched.add(_add(self.store, "frame", frame_ids, frames, spec))
            touched.add(_add(self.store, "clip", [clip_ids[i] for i in has], clip_vecs, spec))
            touched |= add_temporal_vectors(self.store, self.registry, [clip_ids[i] for i in has],
                                            [batch[i] for i in has])
            for i, vec in zip(has, clip_vecs):
                scene_of[i].vecs.append(vec)
        # pooled only now: a scene this batch closed may have had its last clips in it
        scene_vecs = [(sc.id, mean_unit(np.stack(sc.vecs))) for sc in closed if sc.vecs]
        if scene_vecs:
            touched.add(_add(self.store, "scene", [i for i, _ in scene_vecs], np.stack([v for _, v in scene_vecs]),
                             spec))
        return touched


def add_temporal_vectors(store: Store, registry: Registry, clip_ids: Sequence[int],
                         clips: Sequence[ClipResult]) -> set[VectorIndex]:
    """With a trained clip compressor: each clip's temporal vector (its encoding of the frame vectors in
    order) into the clip/temporal index, whose spec names the compressor file hash, backbone and pooling.

    A compressor trained with pooled patch cells (``cells``) gets each frame's cells as well
    (``ClipResult.frame_cells``, which the perceiver fills only for such a compressor); a clip that has
    none (perceived without them, e.g. before the weights were there) gets no temporal vector rather than
    one from an input the weights were not trained on."""
    comp = registry.trained_compressor()
    if comp is None or not clip_ids:
        return set()
    from .models.spec import ModelSpec

    k = comp.needs_cells
    ids, vecs = [], []
    for cid, c in zip(clip_ids, clips):
        ts = c.frame_ts or list(range(len(c.frame_vecs)))
        cells = getattr(c, "frame_cells", None) if k else None
        if k and (cells is None or len(cells) != len(c.frame_vecs)):
            continue
        ids.append(cid)
        vecs.append(comp.encode_frames(c.frame_vecs, ts, cells))
    if not ids:
        return set()
    index = store.vectors("clip", TEMPORAL)
    index.add(ids, np.stack(vecs).astype(np.float32), ModelSpec(**comp.spec_dict(registry.compressor_source())))
    return {index}


def _add(store: Store, level: str, ids: Sequence[int], vecs: np.ndarray, spec: Any) -> VectorIndex:
    index = store.vectors(level, "visual")
    index.add(list(ids), vecs, spec)
    return index


# ---- text rows ----------------------------------------------------------------
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


def join_words(words: list[Any]) -> str:
    return " ".join(w.text for w in words).strip()


def dedupe_join(parts: Iterable[str]) -> str:
    return "\n".join(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def mean_unit(vecs: np.ndarray) -> np.ndarray:
    m = np.asarray(vecs, np.float32).mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def write_events(s: Any, video_id: int, spans: list[EventSpan]) -> list[TextChunk]:
    """Add event rows for ``spans`` and their text rows (one each) to session ``s``; returns the text rows."""
    rows = [Event(video_id=video_id, kind=e.kind, start=e.start, end=e.end, text=e.text, bounds=list(e.bounds))
            for e in spans if e.text]
    s.add_all(rows)
    s.flush()
    texts = [TextChunk(video_id=video_id, level="event", unit_id=e.id, modality=EVENT_MODALITY[e.kind],
                       start=e.start, end=e.end, text=e.text) for e in rows]
    s.add_all(texts)
    return texts


# ---- vectors ------------------------------------------------------------------
def add_text_vectors(store: Store, registry: Registry, texts: list[TextChunk]) -> set[VectorIndex]:
    """Embed committed text rows into their (level, modality) indexes; returns the indexes to save."""
    model = registry.get("text")
    if model is None or not texts:
        return set()
    vecs = model.encode([t.text[:2000] for t in texts])
    groups: dict[tuple[str, str], list[int]] = {}
    for row, t in enumerate(texts):
        groups.setdefault((t.level, t.modality), []).append(row)
    touched = set()
    for (level, modality), rows in groups.items():
        index = store.vectors(level, modality)
        index.add([texts[r].id for r in rows], vecs[rows], model.spec)
        touched.add(index)
    return touched


def pooled_clip_vector(store: Store, clip_ids: Iterable[int]) -> np.ndarray | None:
    """The unit mean of these clips' visual vectors (read in chunks), or None if none has one."""
    index = store.vectors("clip", "visual")
    want = np.array(sorted(set(clip_ids)), dtype=np.int64)
    have = want[index.contains(want)].tolist() if len(index) and len(want) else []  # not the whole index's ids
    if not have:
        return None
    total = sum(index.vectors(have[i : i + VECTOR_CHUNK]).astype(np.float64).sum(axis=0)
                for i in range(0, len(have), VECTOR_CHUNK))
    return mean_unit(np.asarray(total, np.float32)[None])


def record_models(store: Store, registry: Registry) -> None:
    """The library remembers its encoders, so reopening it searches with the same ones."""
    store.set_meta("models", json.dumps({role: registry.ref(role) for role in ("visual", "text")}))


# ---- finishing, and what a dead writer left ------------------------------------
def finish_video(store: Store, registry: Registry, settings: Settings, video_id: int,
                 channels: list[str] | None = None, **video: Any) -> None:
    """Write a video's summary text and vector, its hour/day periods, then mark it done.

    Everything is read back from the library, so a video written in one
    batch, followed clip by clip, continued or settled ends the same way.
    ``video``: further columns to set on the row (the decoder, say).
    """
    with store.session() as s:
        row = s.get(Video, video_id)
        name, end = row.name, float(row.duration)
        old_texts = s.scalars(select(TextChunk.id).where(TextChunk.video_id == video_id,
                                                        TextChunk.level == "video")).all()
        sample = s.scalars(select(Clip).where(Clip.video_id == video_id).order_by(Clip.start)
                           .limit(SUMMARY_CLIPS)).all()
        clip_ids = s.scalars(select(Clip.id).where(Clip.video_id == video_id)).all()
    store.remove_vectors({"video": [video_id]}, old_texts)
    summary = video_summary(name, sample) if sample else ""
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(old_texts)))
        texts = [TextChunk(video_id=video_id, level="video", unit_id=video_id, modality="summary", start=0.0,
                           end=end, text=summary)] if summary else []
        s.add_all(texts)
    touched = add_text_vectors(store, registry, texts)
    pooled = pooled_clip_vector(store, clip_ids)
    if pooled is not None:
        touched.add(_add(store, "video", [video_id], pooled[None], store.vectors("clip", "visual").spec))
    for index in touched:
        index.save()
    # periods before "done": a crash in between leaves a video the next writer finishes again
    consolidate(store, registry, video_id, final=True, retention_hours=settings.retention_hours)
    with store.session() as s, s.begin():
        row = s.get(Video, video_id)
        row.status, row.indexed_at, row.summary = "done", now_iso(), summary
        if channels is not None:
            row.channels = channels
        for column, value in video.items():
            setattr(row, column, value)
    record_models(store, registry)


def drop_after(store: Store, video_id: int, t: float) -> None:
    """Remove rows (and their vectors) a dead writer committed past the high-water mark ``t``."""
    with store.session() as s:
        clips = s.scalars(select(Clip.id).where(Clip.video_id == video_id, Clip.end > t + 1e-6)).all()
        if not clips:
            return
        frames = s.scalars(select(Frame.id).where(Frame.clip_id.in_(clips))).all()
        scenes = s.scalars(select(Scene.id).where(Scene.video_id == video_id, Scene.start >= t - 1e-6)).all()
        texts = s.scalars(select(TextChunk.id).where(
            TextChunk.video_id == video_id, TextChunk.level.in_(("event", "clip", "scene")),
            TextChunk.end > t + 1e-6)).all()
    store.remove_vectors({"frame": frames, "clip": clips, "scene": scenes}, texts)
    with store.session() as s, s.begin():
        s.execute(delete(TextChunk).where(TextChunk.id.in_(texts)))
        s.execute(delete(Event).where(Event.video_id == video_id, Event.end > t + 1e-6))
        s.execute(delete(Word).where(Word.clip_id.in_(clips)))
        s.execute(delete(Frame).where(Frame.id.in_(frames)))
        s.execute(delete(Clip).where(Clip.id.in_(clips)))
        s.execute(delete(Scene).where(Scene.id.in_(scenes)))
        s.execute(update(Scene).where(Scene.video_id == video_id, Scene.end > t).values(end=t))


def settle_dead_followers(store: Store, registry: Registry, settings: Settings) -> list[str]:
    """Videos left "live" by a follower that died: trimmed to their last complete commit and
    finished. Call with the writer lock held (so no follower is running). Returns their names."""
    with store.session() as s:
        stale = s.execute(select(Video.id, Video.name, Video.duration).where(Video.status == "live")).all()
    for vid, _, duration in stale:
        drop_after(store, vid, float(duration))
        _rebuild_last_scene(store, registry, vid)
        _rebuild_open_utterances(store, registry, vid)
        finish_video(store, registry, settings, vid)
    return [name for _, name, _ in stale]


def _rebuild_open_utterances(store: Store, registry: Registry, video_id: int) -> None:
    """Utterances a dead follower had not closed, made again from its stored words.

    (Text tracks still open then are not rebuilt: the times of OCR reads are not
    stored. Their lines stay searchable in their clips.)
    """
    with store.session() as s:
        after = s.scalar(select(Event.end).where(Event.video_id == video_id, Event.kind == "utterance")
                         .order_by(Event.end.desc()).limit(1))
        words = s.scalars(select(Word).where(Word.video_id == video_id, Word.start >= (after or 0.0) - 1e-6)
                          .order_by(Word.start)).all()
    if not words:
        return
    with store.session() as s, s.begin():
        texts = write_events(s, video_id, [utterance_span(u) for u in utterances(words)])
    for index in add_text_vectors(store, registry, texts):
        index.save()


def _rebuild_last_scene(store: Store, registry: Registry, video_id: int) -> None:
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
    touched = add_text_vectors(store, registry, texts)
    pooled = pooled_clip_vector(store, [c.id for c in clips])
    if pooled is not None:
        touched.add(_add(store, "scene", [scene.id], pooled[None], store.vectors("clip", "visual").spec))
    for index in touched:
        index.save()
