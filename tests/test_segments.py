"""Segmented vector indexes with real FAISS and real files: append, seal, tombstones, compaction,
reopening, a reader searching while the writer seals, migration from the single-file format, and
approximate segments' recall."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from vdisc import LibraryError
from vdisc.index.idranges import IdRanges
from vdisc.index.models.spec import ModelSpec
from vdisc.index.vectors import VectorIndex, index_names

SPEC = ModelSpec(role="visual", ref="t", model_id="t", revision="1", dim=16)
OTHER = ModelSpec(role="visual", ref="u", model_id="u", revision="1", dim=16)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _random(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return _unit(np.random.default_rng(seed).normal(size=(n, dim)))


def _clustered(n: int, dim: int, centres: int, seed: int = 0, noise: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = _unit(rng.normal(size=(centres, dim)))
    return _unit(c[rng.integers(0, centres, n)] + noise / np.sqrt(dim) * rng.normal(size=(n, dim)))


def _brute(ids: np.ndarray, vecs: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None):
    scores = vecs @ q
    if keep is not None:
        ids, scores = ids[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    return ids[order].tolist(), scores[order]


def _same(got, want_ids, want_scores) -> None:
    assert [i for i, _ in got] == want_ids
    assert np.allclose([s for _, s in got], want_scores, atol=1e-5)


def _disk_ids(folder) -> set[int]:
    """Every id any file on disk still holds (sealed segments and the tail)."""
    out: set[int] = set()
    for p in folder.glob("s*.ids.npy"):
        out |= set(np.load(p).tolist())
    for p in folder.glob("t*.ids"):
        out |= set(np.fromfile(p, dtype=np.int64).tolist())
    return out


# ---- id ranges -----------------------------------------------------------------
def test_id_ranges():
    r = IdRanges.from_ids([7, 3, 4, 5, 10, 11, 4])
    assert r.starts.tolist() == [3, 7, 10] and r.ends.tolist() == [6, 8, 12] and len(r) == 6
    assert IdRanges.from_inclusive([(10, 12), (1, 3), (4, 5), (11, 20)]).starts.tolist() == [1, 10]
    assert IdRanges.from_inclusive([(10, 12), (1, 3), (4, 5), (11, 20)]).ends.tolist() == [6, 21]
    ids = np.arange(0, 100, 3)
    assert r.contains(ids).tolist() == [i in {3, 4, 5, 7, 10, 11} for i in ids]
    assert ids[r.positions_in_sorted(ids)].tolist() == [3]
    assert r.positions_in_sorted(np.array([20, 30])).tolist() == [] and r.positions_in_sorted(np.zeros(0, np.int64)).tolist() == []
    assert IdRanges.empty().positions_in_sorted(ids).tolist() == []
    assert r.overlaps(6, 6) is False and r.overlaps(6, 7) is True and r.overlaps(12, 99) is False
    rng = np.random.default_rng(0)
    for _ in range(20):
        sorted_ids = np.unique(rng.integers(0, 500, 200))
        rr = IdRanges.from_ids(rng.integers(0, 500, rng.integers(1, 300)))
        assert rr.positions_in_sorted(sorted_ids).tolist() == np.flatnonzero(rr.contains(sorted_ids)).tolist()


# ---- append, seal, reopen -------------------------------------------------------
def test_append_seals_full_tails_and_never_rewrites_a_sealed_segment(tmp_path):
    path = tmp_path / "clip.visual.faiss"
    ix = VectorIndex(path, seal_size=100, approx_min=10**9)
    vecs, ids = _random(450), np.arange(1, 451)
    for a in range(0, 450, 30):  # one "video" of 30 vectors a save
        ix.add(ids[a : a + 30], vecs[a : a + 30], SPEC)
        ix.save()
    info = ix.segment_info()
    assert [s["kind"] for s in info] == ["flat"] * 4 + ["tail"] and [s["count"] for s in info] == [100] * 4 + [50]
    folder = tmp_path / "clip.visual"
    sealed = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.glob("s*")}
    assert len(sealed) == 8  # ids + vectors of 4 segments
    ix.add(np.arange(451, 461), _random(10, seed=1), SPEC)
    ix.save()
    # the save wrote the new rows (ids + float32 vectors) and the manifest, nothing else
    manifest_bytes = (folder / "manifest.json").stat().st_size
    assert ix.last_save_bytes == 10 * (8 + 16 * 4) + manifest_bytes
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.glob("s*")} == sealed
    all_ids, all_vecs = np.r_[ids, np.arange(451, 461)], np.r_[vecs, _random(10, seed=1)]
    again = VectorIndex(path)  # a fresh reader: everything, and the same answers
    assert len(again) == 460 and sorted(again.ids().tolist()) == all_ids.tolist()
    assert again.model_key == SPEC.key and again.dim == 16 and again.spec.key == SPEC.key
    for q in _random(5, seed=9):
        _same(again.search(q, 10), *_brute(all_ids, all_vecs, q, 10))
    assert np.allclose(again.vectors([5, 455, 120]), all_vecs[[4, 454, 119]])
    assert index_names(tmp_path) == ["clip.visual"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_another_model_is_refused_after_reopen(tmp_path):
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=8)
    ix.add(range(10), _random(10), SPEC)
    ix.save()
    with pytest.raises(LibraryError, match="holds vectors of"):
        VectorIndex(tmp_path / "clip.visual").add([11], _random(1), OTHER)
    with pytest.raises(LibraryError, match="dimension"):
        VectorIndex(tmp_path / "clip.visual").add([11], _random(1, dim=8), SPEC)


# ---- tombstones and compaction --------------------------------------------------
def test_removed_ids_are_never_returned_and_compaction_drops_them_from_disk(tmp_path):
    path = tmp_path / "frame.visual"
    ix = VectorIndex(path, seal_size=64, approx_min=10**9)
    ids, vecs = np.arange(1000, 1300), _random(300, seed=2)
    ix.add(ids, vecs, SPEC)
    ix.save()
    assert len(ix.segment_info()) == 5  # 4 sealed + a tail of 44
    rng = np.random.default_rng(3)
    doomed = np.r_[rng.choice(ids[:256], 40, replace=False), ids[-10:]]  # from sealed segments and the tail
    assert ix.remove(doomed.tolist() + [5, 6]) == 50  # ids never held count for nothing
    assert ix.remove(doomed[:5].tolist()) == 0  # already gone
    ix.save()
    alive = ~np.isin(ids, doomed)
    reader = VectorIndex(path)
    queries = [vecs[i] for i in doomed[:10] - 1000] + list(_random(5, seed=4))  # a removed vector is its own best match
    before = {}
    for n, q in enumerate(queries):
        got = reader.search(q, 300)
        assert not set(i for i, _ in got) & set(doomed.tolist())
        assert len(got) == 250
        _same(got[:10], *_brute(ids, vecs, q, 10, alive))
        before[n] = got
    assert len(reader) == 250 and set(reader.ids().tolist()) == set(ids[alive].tolist())
    assert reader.contains(np.r_[ids, [5]]).tolist() == alive.tolist() + [False]
    with pytest.raises(KeyError):
        reader.vectors([int(doomed[0])])
    assert _disk_ids(tmp_path / "frame.visual") >= set(doomed.tolist())  # tombstoned, still on disk

    report = VectorIndex(path, seal_size=64, approx_min=10**9).compact()
    assert report["tombstones_dropped"] == 50 and report["rewritten"] >= 1
    assert not _disk_ids(tmp_path / "frame.visual") & set(doomed.tolist())
    assert json.loads((tmp_path / "frame.visual" / "manifest.json").read_text())["tombstones"] is None
    for n, q in enumerate(queries):  # results unchanged, for the reader that had the old set open too
        _same(reader.search(q, 300), [i for i, _ in before[n]], [s for _, s in before[n]])
    assert len(reader) == 250


def test_an_id_removed_from_the_tail_can_come_back(tmp_path):
    """SQLite hands out the highest deleted ids again: a re-indexed last video reuses them."""
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=1000)
    ix.add(range(1, 21), _random(20), SPEC)
    ix.save()
    ix.remove(range(11, 21))
    ix.save()
    fresh = _random(10, seed=7)
    ix.add(range(11, 21), fresh, SPEC)
    ix.save()
    reader = VectorIndex(tmp_path / "clip.visual")
    assert len(reader) == 20
    assert np.allclose(reader.vectors(range(11, 21)), fresh)
    assert reader.search(fresh[3], 1)[0][0] == 14


def test_unsaved_rows_are_searchable_and_removable_by_the_writer(tmp_path):
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=1000)
    ix.add([1, 2, 3], _random(3), SPEC)
    assert len(ix) == 3 and ix.search(_random(3)[1], 1)[0][0] == 2
    assert ix.remove([2]) == 1 and len(ix) == 2
    ix.save()
    assert sorted(VectorIndex(tmp_path / "clip.visual").ids().tolist()) == [1, 3]


# ---- filters ---------------------------------------------------------------------
def test_filtered_search_equals_brute_force(tmp_path):
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=128, approx_min=10**9)
    ids, vecs = np.arange(1, 701), _random(700, seed=5)
    ix.add(ids[:600], vecs[:600], SPEC)
    ix.save()
    ix.add(ids[600:], vecs[600:], SPEC)  # unsaved rows take part too
    dead = np.arange(100, 140)
    ix.remove(dead)
    rng = np.random.default_rng(6)
    for trial in range(40):
        if trial % 2:
            lo = int(rng.integers(1, 700))
            flt = IdRanges.from_inclusive([(lo, lo + int(rng.integers(0, 120))),
                                           (int(rng.integers(1, 700)), int(rng.integers(1, 700)))])
            flt = IdRanges.from_inclusive([(s, e - 1) for s, e in zip(flt.starts, flt.ends) if e > s])
            allowed = flt
            keep = flt.contains(ids)
        else:
            chosen = rng.choice(ids, int(rng.integers(1, 300)), replace=False)
            allowed, keep = chosen.tolist(), np.isin(ids, chosen)
        keep &= ~np.isin(ids, dead)
        q = _random(1, seed=100 + trial)[0]
        _same(ix.search(q, 10, allowed=allowed), *_brute(ids, vecs, q, 10, keep))
    assert ix.search(_random(1)[0], 10, allowed=[]) == []
    assert ix.search(_random(1)[0], 10, allowed=IdRanges.from_ids([5000, 5001])) == []


# ---- approximate segments ----------------------------------------------------------
@pytest.fixture
def one_faiss_thread():
    """k-means training with OpenMP threads crawls on a busy shared CPU; one thread is steady."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def test_approximate_segments_recall_with_reranking(tmp_path, one_faiss_thread):
    dim, n = 64, 12000
    vecs = _clustered(n + 100, dim, centres=200, seed=11)
    base, queries = vecs[:n], vecs[n:]
    ids = np.arange(1, n + 1)
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=4000, approx_min=2000)
    spec = ModelSpec(role="visual", ref="t", model_id="t", revision="1", dim=dim)
    for a in range(0, n, 2000):
        ix.add(ids[a : a + 2000], base[a : a + 2000], spec)
        ix.save()
    kinds = [s["kind"] for s in ix.segment_info()]
    assert kinds == ["ivfpq"] * 3
    assert len(list((tmp_path / "clip.visual").glob("s*.ivf.faiss"))) == 3
    reader = VectorIndex(tmp_path / "clip.visual")
    hits = 0
    for q in queries:
        want, _ = _brute(ids, base, q, 10)
        got = reader.search(q, 10)
        hits += len(set(want) & {i for i, _ in got})
        assert np.allclose([s for _, s in got], base[np.array([i for i, _ in got]) - 1] @ q, atol=2e-3)  # exact re-rank
    assert hits / (10 * len(queries)) >= 0.95
    # a one-video filter (a range of 1500 rows in one segment) is searched exactly over its rows
    # (the segment's float16 copy of them)
    flt = IdRanges.from_inclusive([(4501, 6000)])
    for q in queries[:10]:
        want, _ = _brute(ids, base.astype(np.float16).astype(np.float32), q, 10, flt.contains(ids))
        assert [i for i, _ in reader.search(q, 10, allowed=flt)] == want
    # compaction merges the three into one larger approximate segment with the same answers
    VectorIndex(tmp_path / "clip.visual", seal_size=4000, approx_min=2000).compact(merge_size=n)
    assert [s["kind"] for s in reader.segment_info()] == ["ivfpq"] and reader.segment_info()[0]["count"] == n
    hits = sum(len(set(_brute(ids, base, q, 10)[0]) & {i for i, _ in reader.search(q, 10)}) for q in queries)
    assert hits / (10 * len(queries)) >= 0.95


def test_widen_is_numpys_float16_cast_bit_for_bit():
    from vdisc.index.segments import widen

    half = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    half = half[np.isfinite(half)].reshape(-1, 8)  # zeros, subnormals, normals, both signs
    assert np.array_equal(widen(half).view(np.uint32), half.astype(np.float32).view(np.uint32))
    rows = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    assert widen(rows) is rows or np.array_equal(widen(rows), rows)


def test_many_range_and_bunched_filters_over_approximate_segments(tmp_path, one_faiss_thread, monkeypatch):
    """A range per video (the last tenth of each) and a filter whose rows sit in a few clusters (three
    videos), searched through IVF-PQ with a bitmap: recall against exact search over the kept rows."""
    from vdisc.index import segments as seg_mod

    monkeypatch.setattr(seg_mod, "BRUTE_MAX", 200)  # small segments: make filters take the IVF-PQ path
    dim, video, n = 64, 400, 12000
    rng = np.random.default_rng(5)
    centres = _unit(rng.normal(size=(120, dim)))
    parts = []
    for _ in range(n // video):  # each video draws from two clusters: its rows are bunched in a few lists
        mine = centres[rng.choice(len(centres), 2, replace=False)]
        parts.append(_unit(mine[rng.integers(0, 2, video)] + 0.35 / np.sqrt(dim) * rng.normal(size=(video, dim))))
    base, ids = np.concatenate(parts), np.arange(1, n + 1)
    queries = _unit(centres[rng.integers(0, len(centres), 40)] + 0.5 / np.sqrt(dim) * rng.normal(size=(40, dim)))
    ix = VectorIndex(tmp_path / "clip.visual", seal_size=4000, approx_min=2000)
    spec = ModelSpec(role="visual", ref="t", model_id="t", revision="1", dim=dim)
    ix.add(ids, base, spec)
    ix.save()
    assert [s["kind"] for s in ix.segment_info()] == ["ivfpq"] * 3
    reader = VectorIndex(tmp_path / "clip.visual")
    half = base.astype(np.float16).astype(np.float32)  # what approximate segments re-rank with
    last = IdRanges.from_inclusive([(a + video - video // 10, a + video - 1) for a in range(1, n + 1, video)])
    bunched = IdRanges.from_inclusive([(1 + v * video, (v + 1) * video) for v in (1, 12, 25)])
    for flt in (last, bunched):
        hits = 0
        for q in queries:
            want, _ = _brute(ids, half, q, 10, flt.contains(ids))
            got = reader.search(q, 10, allowed=flt)
            assert flt.contains(np.array([i for i, _ in got])).all()
            assert np.allclose([s for _, s in got], half[np.array([i for i, _ in got]) - 1] @ q, atol=1e-5)
            hits += len(set(want) & {i for i, _ in got})
        assert hits / (10 * len(queries)) >= 0.95, (flt, hits)


# ---- concurrency --------------------------------------------------------------------
def test_a_reader_thread_never_sees_a_partial_set_while_the_writer_seals(tmp_path):
    path = tmp_path / "clip.visual"
    batch, batches = 37, 40
    vecs = _random(batch * batches, seed=8)
    totals = {batch * b for b in range(1, batches + 1)}
    writer = VectorIndex(path, seal_size=100, approx_min=10**9)
    writer.add(np.arange(batch), vecs[:batch], SPEC)
    writer.save()
    reader = VectorIndex(path)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        q = vecs[0]
        try:
            while not done.is_set():
                n = len(reader)
                got = reader.search(q, 5)
                assert n in totals, n
                assert got and got[0][0] == 0  # its own vector is always there, best
                seen.append(n)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for b in range(1, batches):
        writer.add(np.arange(b * batch, (b + 1) * batch), vecs[b * batch : (b + 1) * batch], SPEC)
        writer.save()
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(set(seen)) > 1  # the readers did see the index grow
    assert len(reader) == batch * batches and len(writer.segment_info()) == 15


# ---- migration from the single-file format ------------------------------------------
def _legacy(tmp_path, n: int = 300):
    import faiss

    vecs, ids = _random(n, seed=12), np.arange(50, 50 + n)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    index.add_with_ids(vecs, ids)
    faiss.write_index(index, str(tmp_path / "clip.visual.faiss"))
    (tmp_path / "clip.visual.json").write_text(json.dumps({"model": SPEC.key, "spec": SPEC.model_dump()}))
    return ids, vecs


def test_an_old_single_file_index_is_read_then_migrated_by_the_writer(tmp_path):
    ids, vecs = _legacy(tmp_path)
    qs = _random(5, seed=13)
    reader = VectorIndex(tmp_path / "clip.visual.faiss")
    assert index_names(tmp_path) == ["clip.visual"]
    assert len(reader) == 300 and reader.model_key == SPEC.key
    for q in qs:
        want = _brute(ids, vecs, q, 10, (ids >= 100) & (ids < 200))
        _same(reader.search(q, 10, allowed=list(range(100, 200))), *want)
    writer = VectorIndex(tmp_path / "clip.visual.faiss")
    with pytest.raises(LibraryError, match="holds vectors of"):
        writer.add([1], _random(1), OTHER)  # the sidecar's model survives the migration
    assert (tmp_path / "clip.visual" / "manifest.json").exists()
    assert not (tmp_path / "clip.visual.faiss").exists() and not (tmp_path / "clip.visual.json").exists()
    writer.add([400, 401], _random(2, seed=14), SPEC)
    writer.save()
    all_ids, all_vecs = np.r_[ids, [400, 401]], np.r_[vecs, _random(2, seed=14)]
    assert index_names(tmp_path) == ["clip.visual"]
    for q in qs:  # the reader that had the old file open follows the manifest now
        _same(reader.search(q, 10), *_brute(all_ids, all_vecs, q, 10))
    assert len(reader) == 302 and reader.segment_info()[0]["kind"] == "flat"
