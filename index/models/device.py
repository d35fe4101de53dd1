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


#: Share of the free GPU memory a batch of frames may take: the captioner, OCR and the
#: decoder's frames use the same GPU at the same time (perceive.py runs them together).
GPU_MEMORY_SHARE = 0.5
#: Most frames per batch on a GPU: past this a bigger batch is no faster, only later to checkpoint.
GPU_MAX_BATCH = 256


def gpu_batch_size(free_bytes: int, bytes_per_frame: int, default: int, *, share: float = GPU_MEMORY_SHARE,
                   cap: int = GPU_MAX_BATCH) -> int:
    """Frames per batch that fit in ``share`` of ``free_bytes`` at ``bytes_per_frame`` each.

    A multiple of 8 when it can be (tensor-core friendly), at most ``cap``, at
    least 1; ``default`` when the per-frame cost is unknown (<= 0). It may be
    below ``default`` on a nearly full GPU: a smaller batch is slower, an
    out-of-memory error is fatal.
    """
    if bytes_per_frame <= 0:
        return default
    fit = int(max(0, free_bytes) * share // bytes_per_frame)
    fit = min(cap, fit)
    return max(1, fit - fit % 8 if fit >= 8 else fit)


def cuda_batch_size(device: str, default: int, bytes_per_frame: int) -> int:
    """:func:`gpu_batch_size` from ``torch.cuda.mem_get_info`` on a CUDA device; ``default`` elsewhere."""
    if not device.startswith("cuda"):
        return default
    import torch

    try:
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except Exception as exc:  # noqa: BLE001 - no memory figure: keep the configured batch
        log.debug("torch.cuda.mem_get_info failed (%s); batch size stays %d", exc, default)
        return default
    return gpu_batch_size(int(free), bytes_per_frame, default)


def quiet_hf() -> None:
    """Silence transformers' per-load progress bars; vdisc reports its own progress."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
