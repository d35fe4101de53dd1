"""One segmented vector index per (level, modality), ids = SQLite row ids.

On disk, ``vectors/<level>.<modality>/`` holds the segments (``segments.py``)
and ``manifest.json``, which names the sealed segments, the tail and how many
of its rows are committed, the tombstone file, and the model that made the
vectors (adding vectors of another model is refused: their similarities mean
nothing together). The writer appends to the tail and swaps the manifest
atomically; a full tail is sealed into a segment that is written once and
never rewritten, so a save writes what is new, not the library. Deletions are
tombstones until ``compact``.

Readers see one manifest at a time: a reader reloads when the manifest
changed (once, under a lock, however many threads search), keeping the
sealed segments it already has open and mapping the tail up to its committed rows.
Files a manifest no longer names are deleted at once; a reader that read the
previous manifest but had not opened its files yet reads the new one. Searches may run in many threads
at once; writing is for the library's one writer.

A library made before segments (``<level>.<modality>.faiss`` + ``.json``) is
read as one exact segment, and migrated in place by the first write.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vdisc.errors import LibraryError

from . import segments as seg_mod
from .files import atomic_write
from .idranges import IdRanges
from .segments import Found, Segment, finish

GPU_OVERFETCH = 8  # filtered GPU searches fetch this many times k, then keep the allowed ids
PARALLEL_MIN = 100_000  # rows across segments from which a search fans out to threads
MANIFEST = "manifest.json"
FORMAT = 1

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """A small shared pool: FAISS and BLAS release the GIL, so segments search side by side.

    Its threads run FAISS with one OpenMP thread each: the parallelism is across segments, and a
    one-query search gains nothing from OpenMP, whose idle threads would spin on the cores the
    other segments' searches need (OpenMP's thread count is per calling thread, so this touches
    no one else's FAISS calls).
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="vdisc-seg",
                                       initializer=_one_omp_thread)
        return _pool


def _one_omp_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


@dataclass
class _Snapshot:
    """What one manifest says, opened; never mutated once published (writers publish a new one)."""

    stamp: Any  # the manifest's (mtime, inode, size), or the legacy file's, or None
    manifest: dict[str, Any]
    segments: list[Segment]  # sealed ones in manifest order, then the tail
    pending: Segment | None = None  # the writer's rows not yet saved
    meta: dict[str, Any] = field(default_factory=dict)  # {"model": key, "spec": {...}}

    @property
    def parts(self) -> list[Segment]:
        return self.segments + ([self.pending] if self.pending is not None and self.pending.count else [])


class VectorIndex:
    """The vectors of one (level, modality): add, remove, save, search, compact."""

    def __init__(self, path: Path, gpu: bool = False, seal_size: int | None = None,
                 approx_min: int | None = None) -> None:
        path = Path(path)
        # callers name an index by its old file (``clip.visual.faiss``) or by its folder (``clip.visual``)
        self.path = path.with_suffix("") if path.suffix == ".faiss" else path
        self.level, self.modality = self.path.name.split(".")[:2]
        self.legacy_path = self.path.with_name(self.path.name + ".faiss")
        self.legacy_meta = self.path.with_name(self.path.name + ".json")
        self.manifest_path = self.path / MANIFEST
        self.gpu = gpu
        self.seal_size = seal_size
        self.approx_min = approx_min
        self.last_save_bytes = 0  # bytes the last save() wrote (for benchmarks)
        self._snap: _Snapshot | None = None
        self._sealed_cache: dict[int, Segment] = {}
        self._dead_dirty = False
        self._reload = threading.Lock()  # readers that see a changed manifest load it once, not once each
        self._gpu_cache: dict[int, tuple[Any, Any]] = {}

    # ---- loading ------------------------------------------------------------
    def _stamp(self) -> Any:
        for kind, p in (("manifest", self.manifest_path), ("legacy", self.legacy_path)):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            return (kind, st.st_mtime_ns, st.st_ino, st.st_size)
        return None

    def _fresh(self) -> _Snapshot:
        """The current snapshot, reloaded if the manifest changed since it was read."""
        snap = self._snap
        if snap is not None and snap.stamp == self._stamp():
            return snap
        with self._reload:
            for attempt in range(20):
                stamp = self._stamp()  # again: another reader may have loaded it while this one waited
                if self._snap is not None and self._snap.stamp == stamp:
                    return self._snap
                try:
                    self._snap = self._load(stamp)
                    return self._snap
                except FileNotFoundError:
                    # a writer replaced the manifest and retired files between our reads: read the new one
                    if attempt == 19:
                        raise
                    time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def _load(self, stamp: Any) -> _Snapshot:
        pending = self._snap.pending if self._snap is not None else None
        if stamp is None:
            return _Snapshot(None, {}, [], pending, self._snap.meta if pending is not None and self._snap else {})
        if stamp[0] == "legacy":
            return self._load_legacy(stamp, pending)
        m = json.loads(self.manifest_path.read_text())
        if m.get("format", FORMAT) > FORMAT:
            raise LibraryError(f"{self.path} was written by a newer vdisc (vector format {m['format']}); upgrade vdisc")
        dead = self._read_dead(m)
        segments: list[Segment] = []
        cache: dict[int, Segment] = {}
        for entry in m["segments"]:
            no = int(entry["no"])
            seg = self._sealed_cache.get(no) or seg_mod.open_sealed(self.path, entry)
            cache[no] = seg
            segments.append(seg.with_dead(dead[no]) if no in dead else seg)
        self._sealed_cache = cache
        tail = m.get("tail")
        if tail is not None:  # memory-mapped up to the committed count: what a writer appends later stays unseen
            no = int(tail["no"])
            segments.append(self._tail_segment(no, int(tail["count"]), int(m["dim"]), dead.get(no)))
        return _Snapshot(stamp, m, segments, pending, {"model": m.get("model"), "spec": m.get("spec")})

    def _tail_segment(self, no: int, count: int, dim: int, dead: np.ndarray | None) -> Segment:
        ids, vecs = seg_mod.read_tail(self.path, no, count, dim)
        return Segment(no, "flat", ids, vecs, sealed=False,
                       dead=np.zeros(0, np.int64) if dead is None else np.unique(dead))

    def _read_dead(self, m: dict[str, Any]) -> dict[int, np.ndarray]:
        name = m.get("tombstones")
        if not name:
            return {}
        pairs = np.load(self.path / name).reshape(-1, 2)
        return {int(no): np.sort(pairs[pairs[:, 0] == no, 1]) for no in np.unique(pairs[:, 0])}

    def _load_legacy(self, stamp: Any, pending: Segment | None) -> _Snapshot:
        """Today's single flat file, read as one exact segment (sorted by id, in memory)."""
        import faiss

        index = faiss.read_index(str(self.legacy_path))
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        vecs = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal) if index.ntotal else \
            np.zeros((0, index.d), np.float32)
        order = np.argsort(ids, kind="stable")
        meta = json.loads(self.legacy_meta.read_text()) if self.legacy_meta.exists() else {}
        segs = [Segment(0, "flat", ids[order], np.ascontiguousarray(vecs[order]))] if len(ids) else []
        manifest = {"format": FORMAT, "dim": int(index.d), "segments": [], "tail": None, "legacy": True}
        return _Snapshot(stamp, manifest, segs, pending, meta)

    # ---- what it holds --------------------------------------------------------
    @property
    def model_key(self) -> str | None:
        return self._fresh().meta.get("model")

    @property
    def spec(self) -> Any:
        """The ModelSpec of the model whose vectors this index holds (None while empty)."""
        from .models.spec import ModelSpec

        meta = self._fresh().meta
        return ModelSpec(**meta["spec"]) if meta.get("spec") else None

    @property
    def dim(self) -> int | None:
        snap = self._fresh()
        if snap.manifest.get("dim"):
            return int(snap.manifest["dim"])
        return int(snap.pending.vecs.shape[1]) if snap.pending is not None else None

    def __len__(self) -> int:
        return sum(p.live for p in self._fresh().parts)

    def ids(self) -> np.ndarray:
        parts = self._fresh().parts
        return np.concatenate([p.live_ids() for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)

    def contains(self, ids: Sequence[int]) -> np.ndarray:
        """Which of ``ids`` have a live vector (a mask), without listing the whole index."""
        want = np.asarray(ids, dtype=np.int64).reshape(-1)
        found = np.zeros(len(want), bool)
        for part in self._fresh().parts:
            if len(want) and part.count:
                found |= part.positions(want) >= 0
        return found

    def segment_info(self) -> list[dict[str, Any]]:
        """One line per segment: number, kind, rows, tombstones, id span (for doctor and benchmarks)."""
        return [{"no": p.no, "kind": "tail" if not p.sealed else p.kind, "count": p.count, "dead": len(p.dead),
                 "min_id": p.min_id if p.count else None, "max_id": p.max_id if p.count else None}
                for p in self._fresh().segments]

    def check(self) -> list[str]:
        """Problems with the files on disk: a segment the manifest names that is missing or short."""
        try:
            snap = self._fresh()
        except (FileNotFoundError, ValueError, OSError) as e:
            return [f"unreadable ({e})"]
        m, problems = snap.manifest, []
        for e in m.get("segments") or []:
            missing = [f for f in seg_mod.seal_files(int(e["no"]), e["kind"]) if not (self.path / f).exists()]
            if missing:
                problems.append(f"segment {e['no']} lacks {', '.join(missing)}")
        if m.get("tail"):
            no, count, dim = int(m["tail"]["no"]), int(m["tail"]["count"]), int(m["dim"])
            for f, width in zip(seg_mod.tail_files(no), (8, 4 * dim)):
                p = self.path / f
                if not p.exists() or p.stat().st_size < count * width:
                    problems.append(f"tail {f} is shorter than its {count} rows")
        return problems

    # ---- writing ------------------------------------------------------------
    def add(self, ids: Sequence[int], vectors: np.ndarray, spec: Any) -> None:
        """Add L2-normalised ``vectors`` under ``ids`` (held until save); refuses a different model."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids_arr) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if not len(ids_arr):
            return
        snap = self._writable()
        meta = snap.meta
        if not meta.get("model"):
            meta = {"model": spec.key, "spec": spec.model_dump()}
        elif meta.get("model") != spec.key:
            raise LibraryError(
                f"the {self.level}/{self.modality} index holds vectors of {meta.get('model')}, not {spec.key}; "
                "re-index the library with the same model (vdisc index --force) or use another --library"
            )
        dim = self.dim
        if dim is not None and dim != vectors.shape[1]:
            raise LibraryError(f"{self.path.name}: vector dimension {vectors.shape[1]} != index dimension {dim}")
        old = snap.pending
        new_ids = ids_arr if old is None else np.concatenate([old.ids, ids_arr])
        new_vecs = vectors if old is None else np.concatenate([old.vecs, vectors])
        pending = Segment(-1, "flat", new_ids, new_vecs, sealed=False)
        self._snap = _Snapshot(snap.stamp, snap.manifest, snap.segments, pending, meta)

    def remove(self, ids: Sequence[int]) -> int:
        """Tombstone these ids (and drop unsaved ones); how many rows went."""
        doomed = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(doomed):
            return 0
        snap = self._writable()
        gone, segments = 0, []
        for seg in snap.segments:
            spans = seg.count and doomed[-1] >= seg.min_id and doomed[0] <= seg.max_id
            hit = doomed[seg.positions(doomed) >= 0] if spans else doomed[:0]
            if len(hit):
                gone += len(hit)
                self._dead_dirty = True
                seg = seg.with_dead(np.concatenate([seg.dead, hit]))
            segments.append(seg)
        pending = snap.pending
        if pending is not None and pending.count:
            keep = ~np.isin(pending.ids, doomed)
            gone += int((~keep).sum())
            pending = Segment(-1, "flat", pending.ids[keep], pending.vecs[keep], sealed=False)
        self._snap = _Snapshot(snap.stamp, snap.manifest, segments, pending, snap.meta)
        return gone

    def save(self) -> None:
        """Persist what changed: append new rows to the tail, seal it when full, write tombstones and manifest.

        Writes O(new rows) (plus a segment when one is sealed), never the whole index.
        """
        with self._reload:
            snap = self._snap
            if snap is None or (snap.pending is None or not snap.pending.count) and not self._dead_dirty:
                return
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            m = dict(snap.manifest) if snap.manifest and not snap.manifest.get("legacy") else self._new_manifest()
            m.update(model=snap.meta.get("model"), spec=snap.meta.get("spec"))
            written = 0
            sealed = [s for s in snap.segments if s.sealed]
            tail = next((s for s in snap.segments if not s.sealed), None)
            pending = snap.pending if snap.pending is not None and snap.pending.count else None
            if pending is not None:
                m["dim"] = int(pending.vecs.shape[1])
                if tail is not None and len(tail.dead) and np.isin(pending.ids, tail.dead).any():
                    # an id tombstoned in the tail comes back (SQLite reuses the highest ids): the tail's
                    # tombstones would hide the new row, so the tail is rewritten without its dead rows
                    tail, written = self._rewrite_tail(m, tail, pending)
                elif tail is None:
                    tail, written = self._rewrite_tail(m, None, pending)
                else:
                    committed = int(m["tail"]["count"])
                    written = seg_mod.append_tail(self.path, tail.no, committed, pending.ids, pending.vecs)
                    count = committed + pending.count
                    m["tail"] = {"no": tail.no, "count": count}
                    tail = self._tail_segment(tail.no, count, m["dim"], tail.dead)
            seal_size = self.seal_size or seg_mod.SEAL_SIZE
            if tail is not None and tail.count >= seal_size:
                new_sealed, tail, w = self._seal(m, tail, seal_size)
                sealed += new_sealed
                written += w
            segments = sealed + ([tail] if tail is not None else [])
            m["segments"] = [self._entry(m, s) for s in sealed]
            written += self._write_dead(m, segments)
            written += self._publish(m)
            self._dead_dirty = False
            self.last_save_bytes = written
            self._snap = _Snapshot(self._stamp(), m, segments, None, snap.meta)

    def _new_manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "level": self.level, "modality": self.modality, "dim": None, "next_no": 1,
                "segments": [], "tail": None, "tombstones": None}

    def _entry(self, m: dict[str, Any], seg: Segment) -> dict[str, Any]:
        old = {int(e["no"]): e for e in (self._snap.manifest.get("segments") or [])} if self._snap else {}
        return m.get("_new", {}).get(seg.no) or old.get(seg.no) or {
            "no": seg.no, "kind": seg.kind, "count": seg.count, "min_id": seg.min_id, "max_id": seg.max_id}

    def _take_no(self, m: dict[str, Any]) -> int:
        no = int(m.get("next_no") or 1)
        m["next_no"] = no + 1
        return no

    def _rewrite_tail(self, m: dict[str, Any], tail: Segment | None,
                      extra: Segment | None) -> tuple[Segment | None, int]:
        """A new tail file holding the live rows of ``tail`` and then ``extra``."""
        parts = [p for p in (tail, extra) if p is not None]
        keep = [p.selected(None) for p in parts]
        ids = np.concatenate([p.ids if k is None else p.ids[k] for p, k in zip(parts, keep)]) if parts else None
        if ids is None or not len(ids):
            m["tail"] = None
            return None, 0
        vecs = np.concatenate([np.asarray(p.vecs if k is None else p.vecs[k], np.float32) for p, k in zip(parts, keep)])
        no = self._take_no(m)
        written = seg_mod.append_tail(self.path, no, 0, ids, vecs)
        m["tail"] = {"no": no, "count": len(ids)}
        return self._tail_segment(no, len(ids), vecs.shape[1], None), written

    def _seal(self, m: dict[str, Any], tail: Segment, seal_size: int) -> tuple[list[Segment], Segment | None, int]:
        """Cut the full tail's live rows (in id order) into sealed segments; the rest starts a new tail."""
        keep = tail.selected(None)
        ids = tail.ids if keep is None else tail.ids[keep]
        vecs = tail.vecs if keep is None else tail.vecs[keep]
        order = np.argsort(ids, kind="stable")
        ids, vecs = ids[order], vecs[order]
        full = len(ids) // seal_size * seal_size
        sealed, written = self._write_segments(m, ids[:full], vecs[:full], seal_size)
        rest = Segment(-1, "flat", ids[full:], vecs[full:], sealed=False)
        new_tail, w = self._rewrite_tail(m, None, rest)
        return sealed, new_tail, written + w

    def _write_segments(self, m: dict[str, Any], ids: np.ndarray, vecs: np.ndarray,
                        size: int) -> tuple[list[Segment], int]:
        approx_min = self.approx_min or seg_mod.APPROX_MIN
        out, written = [], 0
        for a in range(0, len(ids), size):
            no = self._take_no(m)
            entry = seg_mod.write_sealed(self.path, no, ids[a : a + size], vecs[a : a + size], approx_min)
            m.setdefault("_new", {})[no] = entry
            written += sum((self.path / f).stat().st_size for f in seg_mod.seal_files(no, entry["kind"]))
            seg = seg_mod.open_sealed(self.path, entry)
            self._sealed_cache[no] = seg
            out.append(seg)
        return out, written

    def _write_dead(self, m: dict[str, Any], segments: list[Segment]) -> int:
        pairs = [np.stack([np.full(len(s.dead), s.no, np.int64), s.dead], axis=1) for s in segments if len(s.dead)]
        if not pairs:
            m["tombstones"] = None
            return 0
        if not self._dead_dirty and m.get("tombstones"):
            return 0
        name = f"d{self._take_no(m):06d}.npy"
        seg_mod._save_npy(self.path / name, np.concatenate(pairs))
        m["tombstones"] = name
        return (self.path / name).stat().st_size

    def _publish(self, m: dict[str, Any]) -> int:
        """Swap in the manifest, then delete the files it no longer names.

        A reader that has them open (memory-mapped) keeps reading them; one that read the old manifest
        but had not opened them yet gets FileNotFoundError and reads the new manifest (``_fresh``).
        """
        m.pop("_new", None)
        data = json.dumps(m, indent=1).encode()
        atomic_write(self.manifest_path, data)
        keep = _files(m) | {MANIFEST}
        for p in self.path.iterdir():
            if p.name not in keep and not p.name.startswith("."):
                try:
                    p.unlink(missing_ok=True)
                except OSError:  # Windows will not delete a mapped file: the next manifest write tries again
                    pass
        if self.legacy_path.exists():  # migrated: the manifest now holds everything the old file did
            self.legacy_path.unlink()
            self.legacy_meta.unlink(missing_ok=True)
        return len(data)

    def _writable(self) -> _Snapshot:
        """The snapshot to write on; an old single-file index is first migrated into segments."""
        snap = self._fresh()
        if snap.manifest.get("legacy"):
            self._migrate(snap)
            snap = self._fresh()
        return snap

    def _migrate(self, snap: _Snapshot) -> None:
        """Rewrite the old single file as one exact sealed segment (once), under the same model spec."""
        with self._reload:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            m = self._new_manifest()
            m.update(model=snap.meta.get("model"), spec=snap.meta.get("spec"), dim=snap.manifest.get("dim"))
            segs: list[Segment] = []
            if snap.segments:
                old = snap.segments[0]
                no = self._take_no(m)
                entry = seg_mod.write_sealed(self.path, no, np.asarray(old.ids), np.asarray(old.vecs), 1 << 62)
                m["segments"] = [entry]
                segs = [seg_mod.open_sealed(self.path, entry)]
                self._sealed_cache = {no: segs[0]}
            self._publish(m)
            self._snap = _Snapshot(self._stamp(), m, segs, snap.pending, snap.meta)

    # ---- compaction ---------------------------------------------------------
    def compact(self, merge_size: int | None = None) -> dict[str, Any]:
        """Rewrite only what needs it: segments with tombstones, runs of small sealed segments (merged up to
        ``merge_size`` rows, default the seal size), and exact segments grown past the approximate threshold.
        Returns what it did."""
        self.save()
        snap = self._writable()
        seal_size = self.seal_size or seg_mod.SEAL_SIZE
        approx_min = self.approx_min or seg_mod.APPROX_MIN
        merge_size = merge_size or seal_size
        before = len(snap.segments)
        dropped = sum(len(s.dead) for s in snap.segments)
        with self._reload:
            m = dict(snap.manifest)
            sealed = [s for s in snap.segments if s.sealed]
            tail = next((s for s in snap.segments if not s.sealed), None)
            groups: list[list[Segment]] = []
            for s in sealed:  # runs of neighbours whose live rows fit in merge_size
                if groups and sum(x.live for x in groups[-1]) + s.live <= merge_size:
                    groups[-1].append(s)
                else:
                    groups.append([s])
            out: list[Segment] = []
            written = rewritten = 0
            for g in groups:
                oversized_exact = len(g) == 1 and g[0].kind == "flat" and g[0].count >= approx_min
                if len(g) == 1 and not len(g[0].dead) and not oversized_exact:
                    out.append(g[0])
                    continue
                keeps = [s.selected(None) for s in g]
                ids = np.concatenate([np.asarray(s.ids if k is None else s.ids[k]) for s, k in zip(g, keeps)])
                rewritten += len(g)
                if not len(ids):
                    continue
                vecs = np.concatenate([np.asarray(s.vecs if k is None else s.vecs[k], np.float32)
                                       for s, k in zip(g, keeps)])
                segs, w = self._write_segments(m, ids, vecs, max(merge_size, seal_size) if not oversized_exact
                                               else seal_size)
                out += segs
                written += w
            if tail is not None and len(tail.dead):
                tail, w = self._rewrite_tail(m, tail, None)
                written += w
                rewritten += 1
            segments = out + ([tail] if tail is not None else [])
            m["segments"] = [self._entry(m, s) for s in out]
            self._dead_dirty = True
            written += self._write_dead(m, segments)
            if rewritten:
                written += self._publish(m)
                self._snap = _Snapshot(self._stamp(), m, segments, None, snap.meta)
            self._dead_dirty = False
        return {"index": f"{self.level}.{self.modality}", "segments_before": before,
                "segments_after": len(self._fresh().segments), "tombstones_dropped": dropped if rewritten else 0,
                "rewritten": rewritten, "bytes_written": written}

    # ---- reading ------------------------------------------------------------
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors for ``ids`` (rows in the same order); KeyError for an id not held."""
        want = np.asarray(ids, dtype=np.int64).reshape(-1)
        dim = self.dim or 0
        if not len(want):
            return np.zeros((0, dim), np.float32)
        out = np.zeros((len(want), dim), np.float32)
        found = np.zeros(len(want), bool)
        for part in reversed(self._fresh().parts):  # newest first: a re-added id answers with its new vector
            todo = np.flatnonzero(~found)
            if not len(todo):
                break
            pos = part.positions(want[todo])
            hit = pos >= 0
            out[todo[hit]] = part.vectors_at(pos[hit])
            found[todo[hit]] = True
        if not found.all():
            raise KeyError(f"{self.path.name}: no vector for id {int(want[~found][0])}")
        return out

    def search(self, query: np.ndarray, k: int,
               allowed: IdRanges | Sequence[int] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """(id, inner product) pairs, best first; ``allowed`` (id ranges, or ids) restricts ids."""
        try:
            return self._search(query, k, allowed)
        except FileNotFoundError:
            # a segment's IVF-PQ file was compacted away before this reader first read it: the manifest
            # changed too, so the next snapshot has its replacement
            return self._search(query, k, allowed)

    def _search(self, query: np.ndarray, k: int,
                allowed: IdRanges | Sequence[int] | np.ndarray | None) -> list[tuple[int, float]]:
        parts = [p for p in self._fresh().parts if p.live]
        if not parts or k <= 0:
            return []
        flt = None if allowed is None else allowed if isinstance(allowed, IdRanges) else IdRanges.from_ids(allowed)
        if flt is not None:
            if not len(flt):
                return []
            parts = [p for p in parts if flt.overlaps(p.min_id, p.max_id)]  # whole segments skipped by id span
        q = np.ascontiguousarray(np.asarray(query, np.float32).reshape(1, -1))

        def one(part: Segment) -> Found:
            if self.gpu and part.kind == "flat":
                return Found(part, *self._gpu_search(part, q, k, flt))
            return part.find(q, k, flt)

        if len(parts) > 1 and sum(p.count for p in parts) >= PARALLEL_MIN and not self.gpu:
            found = list(_threads().map(one, parts))
        else:
            found = [one(p) for p in parts]
        scores, ids = finish(found, q, k)  # IVF-PQ candidates re-ranked together, the best few only
        return [(int(i), float(s)) for i, s in zip(ids, scores)]

    def _gpu_search(self, part: Segment, q: np.ndarray, k: int,
                    flt: IdRanges | None) -> tuple[np.ndarray, np.ndarray]:
        """GPU indexes take a selector but only some builds (cuVS) apply it: over-fetch, keep the allowed
        live ids, and fall back to the exact CPU search when too few survive."""
        allowed_pos = part.selected(flt)
        n_allowed = part.count if allowed_pos is None else len(allowed_pos)
        if not n_allowed:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        cpu = part.flat_index()
        searcher = self._gpu_index(cpu)
        if searcher is cpu:
            return part.search(q, k, flt)
        if allowed_pos is None:
            scores, ids = searcher.search(q, min(k, part.count))
            keep = ids[0] >= 0
            return scores[0][keep], ids[0][keep]
        scores, ids = searcher.search(q, min(k * GPU_OVERFETCH, part.count))
        scores, ids = scores[0], ids[0]
        keep = ids >= 0
        if flt is not None:
            keep &= flt.contains(ids)
        if len(part.dead):
            keep &= ~np.isin(ids, part.dead)
        if keep.sum() >= min(k, n_allowed):
            return scores[keep][:k], ids[keep][:k]
        return part.search(q, k, flt)

    def _gpu_index(self, index: Any) -> Any:
        """A GPU copy when faiss-gpu is installed and sees a device (else the CPU index)."""
        import faiss

        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            return index
        cached = self._gpu_cache.get(id(index))
        if cached is None or cached[0] is not index:
            if len(self._gpu_cache) > 64:
                self._gpu_cache.clear()
            cached = (index, faiss.index_cpu_to_all_gpus(index))
            self._gpu_cache[id(index)] = cached
        return cached[1]


def _files(m: dict[str, Any]) -> set[str]:
    """The files a manifest names."""
    names: set[str] = set()
    for e in m.get("segments") or []:
        names.update(seg_mod.seal_files(int(e["no"]), e["kind"]))
    if m.get("tail"):
        names.update(seg_mod.tail_files(int(m["tail"]["no"])))
    if m.get("tombstones"):
        names.add(m["tombstones"])
    return names


def index_names(folder: Path) -> list[str]:
    """``level.modality`` of every vector index in a library's ``vectors`` folder, old single files included."""
    names = {p.parent.name for p in folder.glob(f"*/{MANIFEST}")}
    names |= {p.name[: -len(".faiss")] for p in folder.glob("*.faiss")}
    return sorted(n for n in names if n.count(".") == 1)

