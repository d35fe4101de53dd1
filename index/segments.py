"""Segments of a vector index: the pieces one (level, modality) index is made of.

A segment holds ids (int64) and their vectors, row-aligned:

- the **tail**: the one mutable segment, two raw files (``t<no>.ids``,
  ``t<no>.vec``) that the writer only appends to; the manifest says how many
  rows are committed, and readers map only those, so bytes past them (a writer
  killed mid-append, or one appending now) are never read;
- **sealed** segments, written once and never rewritten: ``s<no>.ids.npy``
  sorted ids, ``s<no>.vec.npy`` their vectors, and for a large segment
  ``s<no>.ivf.faiss``, an IVF-PQ index trained on the segment's own vectors
  whose labels are row positions. Exact (``flat``) segments keep float32 and
  are searched exhaustively; approximate (``ivfpq``) ones keep a float16 copy
  that re-ranks the IVF-PQ candidates with true inner products. Vectors are
  memory-mapped and IVF-PQ codes read on first use, so opening a large
  library reads no vectors.

Deleted rows are tombstones (ids per segment) applied at query time until
``compact`` rewrites the segments that have them.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_file, atomic_write
from .idranges import IdRanges

SEAL_SIZE = 65536  # tail rows at which the tail is sealed into a segment
APPROX_MIN = 32768  # a sealed segment this large gets an IVF-PQ index; smaller ones stay exact
NPROBE_FRACTION = 8  # an IVF-PQ search probes nlist / this many lists (at least NPROBE_MIN)
NPROBE_MIN = 16
RERANK_FACTOR = 40  # IVF-PQ candidates per wanted hit, re-ranked with exact inner products (PQ ranks coarsely)
RERANK_MIN = 400
BRUTE_MAX = 4096  # a filter leaving at most this many rows of an IVF-PQ segment is searched exactly over them;
# more go through IVF-PQ with a bitmap selector (gathering and widening float16 rows costs more than that)
TRAIN_MAX = 16384  # vectors an IVF-PQ segment trains on (a sample of its own)
TRAIN_ITERATIONS = 10  # k-means rounds; more buys no recall once candidates are re-ranked exactly
CHUNK_ROWS = 32768  # rows gathered at a time by an exact search over selected rows


@dataclass
class Segment:
    """One searchable piece: ids and vectors row-aligned, maybe an IVF-PQ index, and its tombstones."""

    no: int
    kind: str  # flat | ivfpq
    ids: np.ndarray  # int64; ascending in sealed segments, insertion order in the tail
    vecs: np.ndarray  # float32 (flat) or float16 (ivfpq's exact copy), one row per id
    sealed: bool = True
    ann: "LazyIndex | None" = None  # the IVF-PQ index over row positions (ivfpq only), read on first use
    nprobe: int = 0
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted tombstoned ids
    _order: np.ndarray | None = None  # argsort of ids, for lookups in an unsorted tail
    _flat: Any = None  # a faiss IndexIDMap2(IndexFlatIP) copy, made only for the GPU path

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def live(self) -> int:
        return len(self.ids) - len(self.dead)

    @property
    def min_id(self) -> int:
        return int(self.ids[0] if self.sealed else self.ids.min())

    @property
    def max_id(self) -> int:
        return int(self.ids[-1] if self.sealed else self.ids.max())

    def with_dead(self, dead: np.ndarray) -> "Segment":
        """The same rows with another tombstone set (segments are shared between snapshots, never mutated)."""
        return Segment(self.no, self.kind, self.ids, self.vecs, self.sealed, self.ann, self.nprobe,
                       np.unique(np.asarray(dead, np.int64)), self._order, None)

    # ---- lookups --------------------------------------------------------------
    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row position of each id, -1 where absent or tombstoned (the last row wins for a duplicate)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.sealed:
            order, keys = None, self.ids
        else:
            if self._order is None or len(self._order) != len(self.ids):
                self._order = np.argsort(self.ids, kind="stable")
            order, keys = self._order, self.ids[self._order]
        if not len(keys):
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(keys, ids, side="right") - 1
        ok = (at >= 0) & (keys[np.clip(at, 0, None)] == ids)
        if len(self.dead):
            ok &= ~_member(self.dead, ids)
        pos = np.where(ok, at, -1)
        return pos if order is None else np.where(ok, order[np.clip(pos, 0, None)], -1)

    def live_ids(self) -> np.ndarray:
        return self.ids if not len(self.dead) else self.ids[~_member(self.dead, self.ids)]

    def vectors_at(self, pos: np.ndarray) -> np.ndarray:
        return np.asarray(self.vecs[pos], dtype=np.float32)

    def selected(self, allowed: IdRanges | None) -> np.ndarray | None:
        """Row positions that ``allowed`` keeps and no tombstone removed; None means every row."""
        if allowed is None and not len(self.dead):
            return None
        if allowed is None:
            pos = np.arange(len(self.ids), dtype=np.int64)
        elif self.sealed:
            pos = allowed.positions_in_sorted(self.ids)
        else:
            pos = np.flatnonzero(allowed.contains(self.ids))
        if len(self.dead) and len(pos):
            pos = pos[~_member(self.dead, self.ids[pos])]
        return pos

    def flat_index(self) -> Any:
        """A FAISS flat copy with the real ids (for backends that need an index object, e.g. a GPU)."""
        import faiss

        if self._flat is None:
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(self.vecs.shape[1]))
            flat.add_with_ids(np.ascontiguousarray(self.vecs, dtype=np.float32), self.ids)
            self._flat = flat
        return self._flat

    # ---- search ---------------------------------------------------------------
    def search(self, q: np.ndarray, k: int, allowed: IdRanges | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the best ``k`` live rows that ``allowed`` keeps, best first."""
        if allowed is not None and not allowed.overlaps(self.min_id, self.max_id):
            return _none()
        if self.kind == "flat" and allowed is None and len(self.dead) <= 4096:
            # plain exhaustive search; fetch past the tombstones, then drop them
            scores, pos = _knn(q, self.vecs, min(k + len(self.dead), len(self.ids)))
            ids = self.ids[pos]
            if len(self.dead):
                keep = ~_member(self.dead, ids)
                scores, ids = scores[keep], ids[keep]
            return scores[:k], ids[:k]
        pos = self.selected(allowed)
        if pos is None:
            return self._ann(q, k, None, 1.0)
        if not len(pos):
            return _none()
        if self.kind == "flat" or len(pos) <= BRUTE_MAX:
            return self._exact_over(q, k, pos)
        return self._ann(q, k, pos, len(pos) / len(self.ids))

    def _exact_over(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the rows at ``pos``, a chunk at a time (bounded memory)."""
        best_s, best_i = [], []
        for a in range(0, len(pos), CHUNK_ROWS):
            chunk = pos[a : a + CHUNK_ROWS]
            rows = np.ascontiguousarray(self.vecs[chunk], dtype=np.float32)
            scores, at = _knn(q, rows, min(k, len(chunk)))
            best_s.append(scores)
            best_i.append(self.ids[chunk[at]])
        return top_k(np.concatenate(best_s), np.concatenate(best_i), k)

    def _ann(self, q: np.ndarray, k: int, pos: np.ndarray | None, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """IVF-PQ candidates (probing more lists when a filter keeps fewer rows), re-ranked exactly."""
        import faiss

        params = faiss.SearchParametersIVF()
        ann = self.ann.get()
        nlist = int(ann.nlist)
        params.nprobe = min(nlist, int(math.ceil(self.nprobe / max(fraction, 1e-9))))
        keep_alive = None
        if pos is not None:  # labels are row positions: the selector is a bitmap over rows
            mask = np.zeros(len(self.ids), bool)
            mask[pos] = True
            keep_alive = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(self.ids), faiss.swig_ptr(keep_alive))
        want = min(max(k * RERANK_FACTOR, RERANK_MIN), len(self.ids))
        _, cand = ann.search(q, want, params=params)
        del keep_alive
        cand = cand[0][cand[0] >= 0]
        if not len(cand):
            return _none()
        cand = np.sort(cand)  # ascending positions read the memory-mapped vectors in file order
        exact = self.vectors_at(cand) @ q[0]
        return top_k(exact.astype(np.float32), self.ids[cand], k)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (score, id) pairs, best first (stable among equal scores)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]


def _knn(q: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of one query: FAISS's flat kernel (what IndexFlatIP runs), positions."""
    import faiss

    if k <= 0 or not len(xb):
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores, pos = faiss.knn(q, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    keep = pos[0] >= 0
    return scores[0][keep], pos[0][keep]


def _member(sorted_set: np.ndarray, ids: np.ndarray) -> np.ndarray:
    at = np.searchsorted(sorted_set, ids)
    return (at < len(sorted_set)) & (sorted_set[np.clip(at, 0, len(sorted_set) - 1)] == ids)


def _none() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.float32), np.zeros(0, np.int64)


# ---- files ---------------------------------------------------------------------
def seal_files(no: int, kind: str) -> list[str]:
    base = [f"s{no:06d}.ids.npy", f"s{no:06d}.vec.npy"]
    return base + [f"s{no:06d}.ivf.faiss"] if kind == "ivfpq" else base


def tail_files(no: int) -> list[str]:
    return [f"t{no:06d}.ids", f"t{no:06d}.vec"]


def write_sealed(folder: Path, no: int, ids: np.ndarray, vecs: np.ndarray, approx_min: int) -> dict[str, Any]:
    """Write rows (any order) as sealed segment ``no``; returns its manifest entry. Exact below ``approx_min``."""
    import faiss

    order = np.argsort(ids, kind="stable")
    ids = np.ascontiguousarray(ids[order], dtype=np.int64)
    vecs = np.ascontiguousarray(vecs[order], dtype=np.float32)
    n, d = vecs.shape
    kind = "ivfpq" if n >= approx_min else "flat"
    entry: dict[str, Any] = {"no": no, "kind": kind, "count": int(n), "min_id": int(ids[0]), "max_id": int(ids[-1])}
    if kind == "ivfpq":
        nlist = max(16, int(round(math.sqrt(n))))
        m = _pq_m(d)
        nbits = 8 if n >= 256 * 39 else max(4, int(math.log2(max(n // 39, 16))))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(no)
        sample = vecs[np.sort(rng.choice(n, size=min(n, TRAIN_MAX), replace=False))]
        for cp in (index.cp, index.pq.cp):
            cp.niter = TRAIN_ITERATIONS
            cp.min_points_per_centroid = 1  # a small segment trains without complaint
        index.train(sample)
        index.add_with_ids(vecs, np.arange(n, dtype=np.int64))
        atomic_write(folder / f"s{no:06d}.ivf.faiss", faiss.serialize_index(index).tobytes())
        entry.update(nlist=nlist, nprobe=max(NPROBE_MIN, nlist // NPROBE_FRACTION), m=m, nbits=nbits)
        stored = vecs.astype(np.float16)
    else:
        stored = vecs
    _save_npy(folder / f"s{no:06d}.ids.npy", ids)
    _save_npy(folder / f"s{no:06d}.vec.npy", stored)
    return entry


def open_sealed(folder: Path, entry: dict[str, Any]) -> Segment:
    """A sealed segment, memory-mapped (nothing is read until searched)."""
    no = int(entry["no"])
    ids = np.load(folder / f"s{no:06d}.ids.npy", mmap_mode="r")
    vecs = np.load(folder / f"s{no:06d}.vec.npy", mmap_mode="r")
    ann = LazyIndex(folder / f"s{no:06d}.ivf.faiss") if entry["kind"] == "ivfpq" else None
    return Segment(no, entry["kind"], ids, vecs, True, ann, int(entry.get("nprobe", 0)))


class LazyIndex:
    """A segment's IVF-PQ index, read whole into memory by the first search that needs it.

    Opening a library reads none (so it takes milliseconds however many segments); the codes are
    small (~72 bytes a vector) and searching them in memory is several times faster than through
    FAISS's memory-mapped inverted lists. A file compacted away before its first read raises
    FileNotFoundError, and the index reloads its manifest and searches again.
    """

    def __init__(self, path: Path) -> None:
        self.path, self._index, self._lock = path, None, threading.Lock()

    def get(self) -> Any:
        import faiss

        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = faiss.read_index(str(self.path))
        return self._index


def read_tail(folder: Path, no: int, count: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The tail's first ``count`` (committed) rows, memory-mapped: ids and float32 vectors."""
    if count <= 0:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    ids_path, vec_path = (folder / name for name in tail_files(no))
    if ids_path.stat().st_size < count * 8 or vec_path.stat().st_size < count * 4 * dim:
        raise FileNotFoundError(f"tail {no} is shorter than its manifest says")  # mapping past the end would crash
    return (np.memmap(ids_path, dtype=np.int64, mode="r", shape=(count,)),
            np.memmap(vec_path, dtype=np.float32, mode="r", shape=(count, dim)))


def append_tail(folder: Path, no: int, committed: int, ids: np.ndarray, vecs: np.ndarray) -> int:
    """Append rows after the ``committed`` ones (cutting off what a killed writer left past them); bytes written."""
    written = 0
    for name, data, width in zip(tail_files(no), (ids.astype(np.int64), vecs.astype(np.float32)),
                                 (8, 4 * vecs.shape[1])):
        path = folder / name
        with open(path, "r+b" if path.exists() else "w+b") as fh:
            fh.truncate(committed * width)
            fh.seek(committed * width)
            fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        written += data.nbytes
    return written


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """np.save streamed through ``atomic_file`` (a large segment is never copied in memory)."""
    with atomic_file(path) as fh:
        np.save(fh, arr, allow_pickle=False)


def _pq_m(d: int) -> int:
    """PQ sub-quantizers: one per 8 dimensions (64 bytes a vector at 512 dims), a divisor of ``d``."""
    m = max(1, d // 8)
    while d % m:
        m -= 1
    return m
