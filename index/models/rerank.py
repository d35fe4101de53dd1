"""The rerank role: a cross-encoder that reads a question and a candidate's
text together and says how well the text answers it (sentence-transformers
``CrossEncoder``, e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``).

Unlike the bi-encoder of the text role, which embeds question and text apart,
a cross-encoder attends across both, so word order, which thing does what and
polarity (the alarm *starting* vs the same alarm *stopping*) change the score.
It runs at question time only, over the few best hits of the first stage;
nothing in an index depends on it.

Scores: the model's raw relevance logit per (question, text) pair, passed
through a sigmoid here (whatever activation the model's config names), so a
score is in [0, 1] and means the same for every question: about 0.5 and up is
"answers it" for the MS MARCO models, near 0 is "unrelated".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vdisc.errors import ModelUnavailable

from . import hub
from .spec import ModelSpec

SETTING = "VDISC_RERANK_MODEL"
DEFAULT_HUB = "cross-encoder/ms-marco-MiniLM-L-6-v2"
# Registry names -> hub repo.
KNOWN = {"ms-marco-MiniLM-L-6-v2": DEFAULT_HUB, DEFAULT_HUB: DEFAULT_HUB}
# What a known repo needs (it also holds ONNX and OpenVINO exports, which the torch backend never reads).
KNOWN_FILES = ["*.json", "*.txt", "*.safetensors"]
MAX_LENGTH = 256  # tokens per (question, text) pair; search snippets are far shorter


@dataclass
class Reranker:
    spec: ModelSpec
    model: Any  # sentence_transformers.CrossEncoder
    batch_size: int = 32

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        """Relevance of each text to ``query``: sigmoid of the model's logit, float32 in [0, 1], shape (N,)."""
        if not texts:
            return np.zeros(0, np.float32)
        import torch

        logits = self.model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                    activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                                    show_progress_bar=False)
        logits = np.asarray(logits, dtype=np.float64).reshape(len(texts))
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def load(ref: str, device: str, batch_size: int = 32) -> Reranker:
    """``auto`` (the default): the known cross-encoder if it is already in the Hugging Face cache, else off;
    nothing is downloaded and no network is tried, so a machine without one pays nothing per process. A
    hub id named explicitly is downloaded when missing, like the visual model."""
    if ref == "auto":
        path = _cached(DEFAULT_HUB)
        if path is None:
            raise ModelUnavailable(f"no cross-encoder in the Hugging Face cache (auto); to enable: {SETTING}="
                                   f"{DEFAULT_HUB} (downloaded once, about 90 MB) or a local directory")
        return _load_path(ref, path, "hub", path.name, DEFAULT_HUB, device, batch_size)
    kind, target = hub.split_ref(ref)
    if kind == "dir":
        path = hub.local_dir(target, "rerank", SETTING)
        source, revision = "setting", hub.fingerprint(path)
    else:
        repo = KNOWN.get(target, target)
        path = hub.snapshot(repo, "rerank", SETTING, allow_patterns=KNOWN_FILES if target in KNOWN else None)
        source, revision, target = "hub", path.name, repo
    return _load_path(ref, path, source, revision, target, device, batch_size)


def _cached(repo: str) -> "Path | None":
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, local_files_only=True, allow_patterns=KNOWN_FILES))
    except Exception:  # noqa: BLE001 - not cached (any flavour of miss)
        return None


def _load_path(ref: str, path: "Path", source: str, revision: str, target: str, device: str,
               batch_size: int) -> Reranker:
    try:
        from .device import quiet_hf

        quiet_hf()
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(str(path), device=device, local_files_only=True, max_length=MAX_LENGTH)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(f"rerank model {ref} failed to load from {path}: {str(exc).splitlines()[0]}; "
                               f"fix {SETTING} or set it to none") from None
    labels = int(getattr(model, "num_labels", 1))
    if labels != 1:
        raise ModelUnavailable(f"rerank model {ref} gives {labels} labels per pair, not one relevance score; "
                               f"fix {SETTING} or set it to none")
    if device.startswith("cuda"):
        model.half()
    spec = ModelSpec(role="rerank", ref=ref, model_id=target, revision=revision, source=source,
                     preprocessing={"max_length": MAX_LENGTH, "activation": "sigmoid"})
    return Reranker(spec, model, batch_size)
