"""caption=auto never downloads: on a CUDA machine the default VLM is used only when it is already cached."""

from __future__ import annotations

import json

from vdisc.config import Settings
from vdisc.index.models import DEFAULT_GPU_CAPTIONER, Registry

REPO = DEFAULT_GPU_CAPTIONER.partition(":")[2]


def _cuda_registry(notices: list[str]) -> Registry:
    reg = Registry(Settings.load(device="cpu"), notify=notices.append)
    reg._device = "cuda"  # what resolve_device says on a CUDA machine; nothing here touches the GPU
    return reg


def test_auto_on_cuda_without_the_vlm_cached_is_off_with_one_notice(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    notices: list[str] = []
    reg = _cuda_registry(notices)
    assert reg.ref("caption") == "none" and reg.get("caption") is None and reg.get("caption") is None
    assert len(notices) == 1 and "not in the Hugging Face cache" in notices[0] and "VDISC_CAPTION_MODEL" in notices[0]


def test_auto_on_cuda_uses_the_vlm_when_it_is_cached(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read at import, not from env
    reg = _cuda_registry([])
    assert reg.ref("caption") == DEFAULT_GPU_CAPTIONER  # resolved from the cache; loading it would need CUDA


def test_auto_on_the_cpu_is_off():
    notices: list[str] = []
    reg = Registry(Settings.load(device="cpu"), notify=notices.append)
    assert reg.ref("caption") == "none" and reg.get("caption") is None
    assert len(notices) == 1 and "no CUDA GPU" in notices[0]
