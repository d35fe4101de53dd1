"""Device selection: "auto" means a CUDA GPU that really works, else the CPU."""

from __future__ import annotations

import logging
from functools import lru_cache

from vdisc.errors import ConfigError

log = logging.getLogger("vdisc")


@lru_cache(maxsize=None)
def resolve_device(requested: str = "auto") -> str:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a device string torch accepts.

    ``auto`` runs a tiny op on the GPU before trusting it: a visible but broken
    CUDA setup (driver mismatch, busy device) falls back to the CPU with a
    warning instead of failing half-way through an index run.
    """
    requested = requested.strip().lower()
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            try:
                (torch.ones(2, device="cuda") * 2).sum().item()
                return "cuda"
            except Exception as exc:  # noqa: BLE001 - any CUDA failure means "use the CPU"
                log.warning("CUDA is visible but unusable (%s); using the CPU", str(exc).splitlines()[0])
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested} was requested but torch sees no CUDA GPU; use --device auto or cpu")
        try:
            (torch.ones(2, device=requested) * 2).sum().item()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"--device {requested} does not work: {str(exc).splitlines()[0]}") from None
        return requested
    if requested == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("--device mps was requested but MPS is not available; use --device auto or cpu")
        return "mps"
    raise ConfigError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")


def half_dtype(device: str):  # -> torch.dtype
    """The reduced precision to run models in on ``device`` (float32 on the CPU)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quiet_hf() -> None:
    """Silence transformers' per-load progress bars; vdisc reports its own progress."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
