"""Search filters become id ranges in SQL (no Python id lists): the ranges must hold exactly the rows
the old id list held, however other levels, channels and videos interleave with them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vdisc.index.idranges import IdRanges
from vdisc.index.store import Clip, Store, TextChunk, Video
from vdisc.tools.search import _allowed_ids


def _video(s, vid: int, duration: float) -> None:
    s.add(Video(id=vid, path=f"/v{vid}.mp4", name=f"v{vid}.mp4", fingerprint=str(vid), size=1, duration=duration,
                fps=25.0, width=1, height=1, has_audio=True, status="done"))
    s.flush()


@pytest.fixture
def store(tmp_path):
    """Two videos whose clips and texts interleave in id order (as if written turn about), plus channels
    and levels that share the texts table."""
    store = Store(tmp_path / "lib")
    rng = np.random.default_rng(0)
    with store.session() as s, s.begin():
        _video(s, 1, 600.0)
        _video(s, 2, 300.0)
        t = {1: 0.0, 2: 0.0}
        for n in range(400):
            vid = 1 if rng.random() < 0.6 or t[2] >= 300 else 2
            if t[vid] >= {1: 600, 2: 300}[vid]:
                vid = 3 - vid
            start, end = t[vid], t[vid] + 5.0
            t[vid] = end
            clip = Clip(video_id=vid, scene_id=None, idx=n, start=start, end=end, shot=0)
            s.add(clip)
            s.flush()
            for modality in rng.permutation(["speech", "ocr", "caption"])[: rng.integers(1, 4)]:
                s.add(TextChunk(video_id=vid, level="clip", unit_id=clip.id, modality=str(modality),
                                start=start, end=end, text="x"))
            if rng.random() < 0.3:
                s.add(TextChunk(video_id=vid, level="event", unit_id=n, modality="speech", start=start + 1,
                                end=end + 2, text="y"))
    return store


def _truth(store, level: str, modality: str, video, lo, hi, last) -> set[int]:
    with store.session() as s:
        durations = dict(s.query(Video.id, Video.duration).all())
        if modality == "visual":
            rows = [(c.id, c.video_id, c.start, c.end) for c in s.query(Clip).all()]
        else:
            rows = [(c.id, c.video_id, c.start, c.end) for c in s.query(TextChunk).filter_by(level=level,
                                                                                            modality=modality)]
    return {i for i, v, a, b in rows if (video is None or v == video) and (lo is None or b > lo)
            and (hi is None or a < hi) and (last is None or b > durations[v] - last)}


def _population(store, level: str, modality: str) -> np.ndarray:
    with store.session() as s:
        if modality == "visual":
            return np.array(sorted(s.scalars(Clip.__table__.select().with_only_columns(Clip.id))))
        return np.array(sorted(s.scalars(TextChunk.__table__.select().with_only_columns(TextChunk.id)
                                         .where(TextChunk.level == level, TextChunk.modality == modality))))


@pytest.mark.parametrize("level,modality", [("clip", "visual"), ("clip", "speech"), ("clip", "ocr"),
                                            ("event", "speech")])
def test_filters_as_ranges_hold_exactly_the_filtered_rows(store, level, modality):
    index = SimpleNamespace(level=level, modality=modality)
    population = _population(store, level, modality)
    cases = [(1, None, None, None), (2, None, None, None), (1, 100.0, 200.0, None), (2, 250.0, None, None),
             (None, 40.0, 50.0, None), (None, None, None, 30.0), (1, None, None, 60.0), (None, None, 12.0, None)]
    with store.session() as s:
        for video, lo, hi, last in cases:
            got = _allowed_ids(s, index, video, lo, hi, last)
            assert isinstance(got, IdRanges)
            want = _truth(store, level, modality, video, lo, hi, last)
            assert set(population[got.contains(population)].tolist()) == want, (video, lo, hi, last)


def test_a_video_written_in_one_go_is_one_range(tmp_path):
    store = Store(tmp_path / "lib")
    with store.session() as s, s.begin():
        for vid in (1, 2):
            _video(s, vid, 100.0)
            for n in range(20):
                clip = Clip(video_id=vid, scene_id=None, idx=n, start=5.0 * n, end=5.0 * n + 5, shot=0)
                s.add(clip)
                s.flush()
                for modality in ("speech", "ocr"):  # other channels' rows sit between this channel's rows
                    s.add(TextChunk(video_id=vid, level="clip", unit_id=clip.id, modality=modality,
                                    start=clip.start, end=clip.end, text="x"))
                s.flush()
    with store.session() as s:
        speech = SimpleNamespace(level="clip", modality="speech")
        assert _allowed_ids(s, speech, 2, None, None, None).n_ranges == 1
        assert _allowed_ids(s, speech, 1, 20.0, 40.0, None).n_ranges == 1
        assert _allowed_ids(s, SimpleNamespace(level="clip", modality="visual"), None, None, None, 10.0).n_ranges == 2
        assert len(_allowed_ids(s, SimpleNamespace(level="video", modality="visual"), None, None, None, 10.0)) == 0
        assert len(_allowed_ids(s, speech, 3, None, None, None)) == 0
