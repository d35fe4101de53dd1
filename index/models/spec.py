"""What produced a vector: stored beside every FAISS index so vectors from
different models (or preprocessing) never mix."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelSpec(BaseModel):
    role: str
    ref: str  # the reference the user gave (or the default)
    model_id: str  # what was actually loaded
    revision: str | None = None  # snapshot commit or content fingerprint
    dim: int | None = None  # embedding dimension, for embedding roles
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    source: str = "setting"  # setting | bundled | cache | hub

    @property
    def key(self) -> str:
        """Identity used to refuse mixing vectors from different models."""
        return f"{self.model_id}@{self.revision or '-'}/{self.dim}"
