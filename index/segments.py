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
PROBE_SLACK = 2  # a filtered IVF-PQ search probes lists expected to hold this many times the candidates it wants
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
        return widen(self.vecs[pos])

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
        return finish([self.find(q, k, allowed)], q, k)

    def find(self, q: np.ndarray, k: int, allowed: IdRanges | None) -> "Found":
        """This segment's part of a search: its exact best ``k``, or (IVF-PQ) its candidates with estimated
        scores, which ``finish`` re-ranks together with every other segment's."""
        if allowed is not None and not allowed.overlaps(self.min_id, self.max_id):
            return Found(self, *_none())
        if self.kind == "flat" and allowed is None and len(self.dead) <= 4096:
            # plain exhaustive search; fetch past the tombstones, then drop them
            scores, pos = _knn(q, self.vecs, min(k + len(self.dead), len(self.ids)))
            ids = self.ids[pos]
            if len(self.dead):
                keep = ~_member(self.dead, ids)
                scores, ids = scores[keep], ids[keep]
            return Found(self, scores[:k], ids[:k])
        pos = self.selected(allowed)
        if pos is None:
            return self._ann(q, k, None)
        if not len(pos):
            return Found(self, *_none())
        if self.kind == "flat" or len(pos) <= BRUTE_MAX:
            return Found(self, *self._exact_over(q, k, pos))
        return self._ann(q, k, pos)

    def _exact_over(self, q: np.ndarray, k: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the rows at ``pos``, a chunk at a time (bounded memory)."""
        best_s, best_i = [], []
        for a in range(0, len(pos), CHUNK_ROWS):
            chunk = pos[a : a + CHUNK_ROWS]
            rows = widen(self.vecs[chunk])
            scores, at = _knn(q, rows, min(k, len(chunk)))
            best_s.append(scores)
            best_i.append(self.ids[chunk[at]])
        return top_k(np.concatenate(best_s), np.concatenate(best_i), k)

    def _ann(self, q: np.ndarray, k: int, pos: np.ndarray | None) -> "Found":
        """IVF-PQ candidates (row positions) with their estimated scores; ``finish`` re-ranks them exactly.

        Unfiltered, the search probes the segment's ``nprobe`` lists. Filtered (``pos``: the rows kept,
        given to FAISS as a bitmap, since labels are row positions), it probes as many more as it takes
        for the lists probed to hold, on average, PROBE_SLACK times the candidates wanted; and when a
        filter's rows are bunched in other lists (so that fewer than wanted turn up), it probes four
        times as many again, up to all of them.
        """
        import faiss

        params = faiss.SearchParametersIVF()
        ann = self.ann.get()
        nlist = int(ann.nlist)
        want = min(rerank_budget(k), len(self.ids) if pos is None else len(pos))
        nprobe = min(nlist, self.nprobe)
        keep_alive = None
        if pos is not None:
            nprobe = min(nlist, max(nprobe, math.ceil(nlist * PROBE_SLACK * want / len(pos))))
            mask = np.zeros(len(self.ids), bool)
            mask[pos] = True
            keep_alive = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(self.ids), faiss.swig_ptr(keep_alive))
        while True:
            params.nprobe = nprobe
            est, cand = ann.search(q, want, params=params)
            found = int((cand[0] >= 0).sum())
            if pos is None or found >= want or nprobe >= nlist:
                break
            nprobe = min(nlist, nprobe * 4)
        del keep_alive
        keep = cand[0] >= 0
        return Found(self, est[0][keep], cand[0][keep], estimated=True)


@dataclass
class Found:
    """One segment's answer: exact ``scores`` and ids in ``keys``, or (``estimated``) IVF-PQ estimates of
    the scores of the row positions in ``keys``."""

    seg: Segment
    scores: np.ndarray
    keys: np.ndarray
    estimated: bool = False


def rerank_budget(k: int) -> int:
    """IVF-PQ candidates re-ranked with exact inner products for a top-``k`` search."""
    return max(k * RERANK_FACTOR, RERANK_MIN)


def pooled_budget(k: int, segments: int) -> int:
    """Candidates re-ranked when ``segments`` IVF-PQ segments pooled theirs: ``rerank_budget(k)`` times the
    square root of their number. A hit must rank within the budget by its estimate among every
    segment's candidates, which grow with the segments searched; one budget per segment (re-ranking
    each segment's candidates apart) pays for rows that cannot make the top ``k``, a square root keeps
    recall (0.998 at 76 segments, against 0.998 for one budget each and 0.93 for one budget in all)."""
    return int(rerank_budget(k) * math.sqrt(max(1, segments)))


def finish(found: list[Found], q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` (scores, ids) of a search over segments.

    Exact answers are taken as they are. IVF-PQ candidates from all segments are pooled and only the
    ``pooled_budget`` with the best estimates are re-ranked with exact inner products (their float16
    rows read and widened, a segment at a time, in file order): re-ranking grows with the square root
    of the segments searched, not with their number. Estimates from different segments are comparable:
    each is an inner product with the query, within its segment's quantisation error.
    """
    scores = [f.scores for f in found if not f.estimated]
    ids = [f.keys for f in found if not f.estimated]
    approx = [f for f in found if f.estimated and len(f.keys)]
    if approx:
        est = np.concatenate([f.scores for f in approx])
        owner = np.repeat(np.arange(len(approx)), [len(f.keys) for f in approx])
        pos = np.concatenate([f.keys for f in approx])
        budget = pooled_budget(k, len(approx))
        if len(est) > budget:
            take = np.argpartition(-est, budget - 1)[:budget]
            owner, pos = owner[take], pos[take]
        order = np.lexsort((pos, owner))  # by segment, then ascending rows: each file is read in order
        owner, pos = owner[order], pos[order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        for j, at in zip(owner[starts], np.split(pos, starts[1:])):
            seg = approx[int(j)].seg
            scores.append((seg.vectors_at(at) @ q[0]).astype(np.float32))
            ids.append(seg.ids[at])
    if not scores:
        return _none()
    return top_k(np.concatenate(scores), np.concatenate(ids), k)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (score, id) pairs, best first (stable among equal scores)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], ids[order]


_HALF_TO_SINGLE = np.float32(2.0**112)  # 2^(127 - 15): moves a float16 exponent's bias to float32's


def widen(rows: np.ndarray) -> np.ndarray:
    """float16 rows as float32, exactly (zeros and subnormals too); float32 rows unchanged.

    NumPy's own float16 cast converts one element at a time; this moves the bits (sign, then exponent
    and mantissa shifted into float32's places) and rescales the exponent with one exact multiply,
    a few vectorised passes, about twice as fast. Finite values only: stored vectors are unit length.
    """
    if rows.dtype != np.float16:
        return np.ascontiguousarray(rows, dtype=np.float32)
    bits = np.ascontiguousarray(rows).view(np.uint16).astype(np.uint32)
    sign = bits & np.uint32(0x8000)
    bits ^= sign
    bits <<= np.uint32(13)
    sign <<= np.uint32(16)
    bits |= sign
    out = bits.view(np.float32)
    out *= _HALF_TO_SINGLE
    return out


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
