"""One FAISS index per (level, modality), ids = SQLite row ids.

A sidecar ``.json`` records the model that made the vectors; adding vectors
from another model is refused, because their similarities mean nothing
together. Files are replaced atomically (temp file, fsync, rename), and a
reader reloads when the file on disk changed under it. Searches may run in
many threads at once (FAISS CPU indexes allow concurrent reads, and a reload
happens once, under a lock); writing is for the library's one writer.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vdisc.errors import LibraryError

from .files import atomic_write

GPU_OVERFETCH = 8  # filtered GPU searches fetch this many times k, then keep the allowed ids


class VectorIndex:
    def __init__(self, path: Path, gpu: bool = False) -> None:
        self.path = Path(path)
        self.level, self.modality = self.path.name.split(".")[:2]
        self.meta_path = self.path.with_suffix(".json")
        self.gpu = gpu
        self._index: Any = None
        self._meta: dict[str, Any] = {}
        self._mtime: float | None = None
        self._reload = threading.Lock()  # readers that see a changed file load it once, not once each

    # ---- loading ------------------------------------------------------------
    def _fresh(self) -> Any:
        """The in-memory index, (re)loaded if the file changed since last read."""
        import faiss

        def changed() -> tuple[bool, int | None]:
            mtime = self.path.stat().st_mtime_ns if self.path.exists() else None
            return self._index is None or (mtime is not None and mtime != self._mtime), mtime

        if changed()[0]:
            with self._reload:
                stale, mtime = changed()  # again: another reader may have loaded it while this one waited
                if stale:
                    if mtime is not None:
                        meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
                        self._index, self._meta = faiss.read_index(str(self.path)), meta
                    else:
                        self._index, self._meta = None, {}
                    self._mtime = mtime
        return self._index

    @property
    def model_key(self) -> str | None:
        self._fresh()
        return self._meta.get("model")

    @property
    def spec(self) -> Any:
        """The ModelSpec of the model whose vectors this index holds (None while empty)."""
        from .models.spec import ModelSpec

        self._fresh()
        return ModelSpec(**self._meta["spec"]) if "spec" in self._meta else None

    @property
    def dim(self) -> int | None:
        index = self._fresh()
        return int(index.d) if index is not None else None

    def __len__(self) -> int:
        index = self._fresh()
        return int(index.ntotal) if index is not None else 0

    def ids(self) -> np.ndarray:
        import faiss

        index = self._fresh()
        if index is None:
            return np.zeros(0, np.int64)
        return faiss.vector_to_array(index.id_map).astype(np.int64)

    # ---- writing ------------------------------------------------------------
    def add(self, ids: Sequence[int], vectors: np.ndarray, spec: Any) -> None:
        """Add L2-normalised ``vectors`` under ``ids``; refuses a different model."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if not len(ids):
            return
        index = self._fresh()
        if index is None:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            self._index, self._meta = index, {"model": spec.key, "spec": spec.model_dump()}
        elif self._meta.get("model") != spec.key:
            raise LibraryError(
                f"the {self.level}/{self.modality} index holds vectors of {self._meta.get('model')}, not {spec.key}; "
                "re-index the library with the same model (vdisc index --force) or use another --library"
            )
        if index.d != vectors.shape[1]:
            raise LibraryError(f"{self.path.name}: vector dimension {vectors.shape[1]} != index dimension {index.d}")
        index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> int:
        import faiss

        index = self._fresh()
        if index is None or not len(ids):
            return 0
        return int(index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))))

    def save(self) -> None:
        """Write index then sidecar, each via temp file + fsync + rename."""
        import faiss

        if self._index is None:
            return
        atomic_write(self.path, faiss.serialize_index(self._index).tobytes())
        atomic_write(self.meta_path, json.dumps(self._meta, indent=1).encode())
        self._mtime = self.path.stat().st_mtime_ns

    # ---- reading ------------------------------------------------------------
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors for ``ids`` (rows in the same order)."""
        index = self._fresh()
        if index is None or not len(ids):
            return np.zeros((0, self.dim or 0), np.float32)
        return np.stack([index.reconstruct(int(i)) for i in ids]).astype(np.float32)

    def search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(id, inner product) pairs, best first; ``allowed`` restricts ids."""
        import faiss

        index = self._fresh()
        if index is None or index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        searcher = self._gpu_index(index) if self.gpu else index
        if allowed is None:
            return _pairs(*searcher.search(q, min(k, index.ntotal)))
        allowed = np.asarray(allowed, dtype=np.int64)
        if not len(allowed):
            return []
        if searcher is not index:
            # GPU indexes take a selector but only some builds (cuVS) apply it: over-fetch, keep the allowed
            # ids, and fall back to the exact CPU search below when too few survive
            keep = set(allowed.tolist())
            got = [(i, s) for i, s in _pairs(*searcher.search(q, min(k * GPU_OVERFETCH, index.ntotal)))
                   if i in keep]
            if len(got) >= min(k, len(keep)):
                return got[:k]
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        return _pairs(*index.search(q, min(k, index.ntotal), params=params))

    def _gpu_index(self, index: Any) -> Any:
        """A GPU copy when faiss-gpu is installed and sees a device (else the CPU index)."""
        import faiss

        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            return index
        key = (id(index), self._mtime)
        cached = getattr(self, "_gpu_cache", None)
        if cached is None or cached[0] != key:
            self._gpu_cache = (key, faiss.index_cpu_to_all_gpus(index))
        return self._gpu_cache[1]


def _pairs(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    """(id, score) of one query's FAISS result row, best first, padding (-1) dropped."""
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
