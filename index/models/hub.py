"""Finding model files: local directories, the Hugging Face cache, the hub.

Every role resolves through here, so offline mode and "the hub is out of
reach" behave the same for all of them: a missing model fails in seconds with
one line that names the setting to change, never after minutes of retries.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from vdisc.errors import ModelUnavailable


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=None)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens quickly."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_ref(ref: str) -> tuple[str, str]:
    """``"hf-hub:org/x"`` -> ("hub", "org/x"); a directory -> ("dir", path); else ("name", ref)."""
    if ref.startswith("hf-hub:"):
        return "hub", ref[len("hf-hub:"):].strip("/")
    if ref.startswith("local-dir:"):
        return "dir", str(Path(ref[len("local-dir:"):]).expanduser())
    p = Path(ref).expanduser()
    if ref.startswith((".", "/", "~")) or p.is_dir():
        return "dir", str(p)
    return "name", ref


def cached(repo_id: str) -> bool:
    """Whether a snapshot of ``repo_id`` is in the Hugging Face cache (nothing is fetched)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (any flavour of miss)
        return False
    return True


def local_dir(path: str, role: str, setting: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelUnavailable(f"{role} model directory {p} does not exist; fix {setting}")
    return p


def snapshot(repo_id: str, role: str, setting: str, allow_patterns: list[str] | None = None) -> Path:
    """A local snapshot of ``repo_id``: from the cache, else downloaded if allowed."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=allow_patterns))
    except Exception:  # noqa: BLE001 - not cached (any flavour of miss)
        pass
    hint = f"set {setting} to a local directory, or 'none' to skip this role"
    if offline():
        raise ModelUnavailable(f"{role} model {repo_id} is not in the Hugging Face cache and offline mode is on; {hint}")
    if not hub_reachable():
        raise ModelUnavailable(f"{role} model {repo_id} is not cached and the Hugging Face hub is unreachable; {hint}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns))
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(f"{role} model {repo_id} could not be downloaded ({type(exc).__name__}); {hint}") from None


def fingerprint(path: str | Path) -> str:
    """A cheap content id for a weights file or directory: sizes + head bytes."""
    import hashlib

    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha1()
    for f in files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
        if f.suffix in (".bin", ".safetensors", ".pt", ".pth", ".onnx", ".json"):
            with f.open("rb") as fh:
                h.update(fh.read(1 << 16))
    return h.hexdigest()[:12]
