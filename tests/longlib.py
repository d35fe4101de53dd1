"""Long videos without hours of media: rows written through the Store as the indexer writes them,
with real vectors (the tiny CLIP for pictures, MiniLM for texts).

A synthetic video has one topic per hour (what is said and shown changes on
the hour) and one colour per hour (so pooled pictures differ by hour). Clips
are ``clip_seconds`` long, ``scene_clips`` to a scene, ``frames`` sampled
frames each. ``needles`` put one extra sentence into the clip at a time.
"""

from __future__ import annotations

import numpy as np

from vdisc.index.store import Clip, Frame, Scene, Store, TextChunk, Video

TOPICS = ["sunflower fields", "volcano eruption", "submarine voyage", "chess tournament", "jazz concert",
          "glacier hiking", "robot assembly", "desert caravan", "coral reef", "mountain railway", "bee keeping",
          "city marathon"]
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40), (200, 40, 200), (40, 210, 210)]


def topic(t: float) -> str:
    return TOPICS[int(t // 3600) % len(TOPICS)]


def new_video(store: Store, name: str, status: str = "live") -> int:
    with store.session() as s, s.begin():
        v = Video(path=f"/synthetic/{name}", name=name, fingerprint=f"synthetic-{name}", size=0, duration=0.0,
                  fps=1.0, width=64, height=36, has_audio=False, status=status, channels=["speech", "ocr", "visual"],
                  decoder="synthetic", summary="")
        s.add(v)
        s.flush()
        return v.id


class _Pictures:
    """Real tiny-CLIP vectors of one flat colour per hour, encoded once."""

    def __init__(self, registry) -> None:
        self.model = registry.get("visual")
        self.cache: dict[int, np.ndarray] = {}

    def vec(self, t: float) -> np.ndarray:
        k = int(t // 3600) % len(COLOURS)
        if k not in self.cache:
            img = np.zeros((36, 64, 3), np.uint8)
            img[:] = COLOURS[k]
            img[: 12 + 4 * k, : 20 + 6 * k] = 255 - np.array(COLOURS[k], np.uint8)  # shapes differ too
            self.cache[k] = self.model.encode_images([img])[0]
        return self.cache[k]


def add_media(store: Store, registry, video_id: int, start: float, end: float, *, clip_seconds: float = 60.0,
              scene_clips: int = 3, frames: int = 2, text_vectors: bool = True,
              needles: dict[float, str] | None = None) -> None:
    """Append clips covering [start, end) to the video, then move its duration (the high-water mark) to end."""
    needles = needles or {}
    pics = _Pictures(registry)
    spec = registry.spec("visual")
    text_model = registry.get("text") if text_vectors else None
    with store.session() as s, s.begin():
        first_idx = s.query(Clip).filter(Clip.video_id == video_id).count()
        first_scene = s.query(Scene).filter(Scene.video_id == video_id).count()
        scene_rows: list[Scene] = []
        clips: list[Clip] = []
        t, i = start, first_idx
        while t < end - 1e-6:
            b = min(t + clip_seconds, end)
            if (i - first_idx) % scene_clips == 0:
                sc = Scene(video_id=video_id, idx=first_scene + len(scene_rows), start=t, end=b)
                s.add(sc)
                s.flush()
                scene_rows.append(sc)
            scene_rows[-1].end = b
            said = f"Now the host talks about the {topic(t)} at minute {int(t // 60)}."
            needle = next((text for at, text in needles.items() if t <= at < b), "")
            clip = Clip(video_id=video_id, scene_id=scene_rows[-1].id, idx=i, start=t, end=b, shot=i,
                        transcript=f"{said} {needle}".strip(), ocr_text=topic(t).upper(), caption="")
            s.add(clip)
            clips.append(clip)
            t, i = b, i + 1
        s.flush()
        frame_rows, texts = [], []
        for c in clips:
            for k in range(frames):
                fr = Frame(video_id=video_id, clip_id=c.id, ts=c.start + k * (c.end - c.start) / frames)
                s.add(fr)
                frame_rows.append(fr)
            for modality, body in (("speech", c.transcript), ("ocr", c.ocr_text)):
                texts.append(TextChunk(video_id=video_id, level="clip", unit_id=c.id, modality=modality,
                                       start=c.start, end=c.end, text=body))
        s.add_all(texts)
        s.flush()
        clip_meta = [(c.id, c.start) for c in clips]
        frame_meta = [(f.id, f.ts) for f in frame_rows]
        text_meta = [(x.id, x.modality, x.text) for x in texts]
    # vectors after rows, as the indexer does; the duration moves last
    store.vectors("clip", "visual").add([i for i, _ in clip_meta], np.stack([pics.vec(a) for _, a in clip_meta]),
                                        spec)
    store.vectors("frame", "visual").add([i for i, _ in frame_meta],
                                         np.stack([pics.vec(ts) for _, ts in frame_meta]), spec)
    touched = {store.vectors("clip", "visual"), store.vectors("frame", "visual")}
    if text_model is not None:
        vecs = text_model.encode([x[2] for x in text_meta])
        for modality in ("speech", "ocr"):
            rows = [k for k, x in enumerate(text_meta) if x[1] == modality]
            index = store.vectors("clip", modality)
            index.add([text_meta[k][0] for k in rows], vecs[rows], text_model.spec)
            touched.add(index)
    for index in touched:
        index.save()
    with store.session() as s, s.begin():
        s.get(Video, video_id).duration = end
