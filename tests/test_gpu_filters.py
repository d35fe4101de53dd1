"""Filtered dense search holds on a GPU index that ignores the id selector (only cuVS builds apply it).

faiss-gpu's flat indexes accept ``SearchParameters(sel=...)`` and return hits from
anywhere; a real GPU is not here, so a wrapper that behaves like one stands in for
it, and every filtered result must equal the CPU index's.
"""

from __future__ import annotations

import numpy as np
import pytest

from vdisc import Library
from vdisc.index.models.spec import ModelSpec
from vdisc.index.vectors import VectorIndex


class SelectorIgnoringIndex:
    """Searches like a GPU flat index without cuVS: any ``params`` (and so the selector) is dropped."""

    def __init__(self, index):
        self.index, self.calls = index, 0

    def search(self, q, k, params=None):
        self.calls += 1
        return self.index.search(q, k)


@pytest.fixture
def fake_gpu(monkeypatch):
    made: list[SelectorIgnoringIndex] = []

    def gpu_index(self, index):
        made.append(SelectorIgnoringIndex(index))
        return made[-1]

    monkeypatch.setattr(VectorIndex, "_gpu_index", gpu_index)
    return made


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_filtered_results_equal_the_cpu_index(tmp_path, fake_gpu):
    vecs = _clustered(600, 16)
    ids = np.arange(1000, 1600)
    cpu = VectorIndex(tmp_path / "clip.visual.faiss")
    cpu.add(ids.tolist(), vecs, ModelSpec(role="visual", ref="t", model_id="t"))
    cpu.save()
    gpu = VectorIndex(tmp_path / "clip.visual.faiss", gpu=True)
    rng = np.random.default_rng(1)
    for size in (1, 3, 20, 150, 590):  # from a needle (the CPU fallback) to almost everything (over-fetch wins)
        allowed = rng.choice(ids, size=size, replace=False).tolist()
        for q in _clustered(5, 16, seed=size):
            want = cpu.search(q, 10, allowed=allowed)
            got = gpu.search(q, 10, allowed=allowed)
            assert [i for i, _ in got] == [i for i, _ in want], size
            assert set(i for i, _ in got) <= set(allowed)
            assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert fake_gpu and all(f.calls for f in fake_gpu)  # the GPU path really ran


def test_search_filters_hold_through_the_tool(talk_library, fake_gpu):
    home, _ = talk_library
    cpu, gpu = Library(home, device="cpu"), Library(home)  # device auto: vectors searched through the "GPU"
    for args in ({"within": (40.0, 50.0)}, {"video": "talk.mp4", "after": 20.0}, {"last": 15.0},
                 {"level": "frame", "before": 10.0}):
        for query in ("heavy rain tomorrow", "colour bars", "a purple gradient"):
            want = [(h.level, h.start, h.end) for h in cpu.search(query, **args).hits]
            got = [(h.level, h.start, h.end) for h in gpu.search(query, **args).hits]
            assert got == want, (query, args)
    assert fake_gpu
