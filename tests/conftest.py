"""Shared fixtures: an isolated VDISC_HOME per test, offline hub, a tiny
random open_clip model built from a config, and one indexed fixture library
per session (indexing is the slow part; most tests only read it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Before anything imports huggingface_hub: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
BUNNY = SHARED_MEDIA / "big_buck_bunny_0_30.webm"  # (c) Blender Foundation, CC BY 3.0

# A 4-wide toy CLIP: fast to build, same code path as ViT-B-32.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "vdisc-home"
    monkeypatch.setenv("VDISC_HOME", str(home))
    for var in [k for k in os.environ if k.startswith("VDISC_") and k != "VDISC_HOME"]:
        monkeypatch.delenv(var)
    return home


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An open_clip ``local-dir:`` with a random tiny model and saved weights."""
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("tiny-clip")
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{d}", pretrained=None)
    torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    return d


@pytest.fixture(scope="session")
def test_models(tiny_clip_dir: Path) -> dict[str, str]:
    """The model settings tests index with: real bundled models + tiny CLIP."""
    return {"visual": f"local-dir:{tiny_clip_dir}", "text": "all-MiniLM-L6-v2", "asr": "tiny.en",
            "ocr": "rapidocr", "caption": "none"}


@pytest.fixture(scope="session")
def talk_truth() -> dict:
    return json.loads((FIXTURES / "talk.json").read_text())


@pytest.fixture(scope="session")
def talk_library(tmp_path_factory: pytest.TempPathFactory, test_models: dict[str, str]):
    """A library with talk.mp4 indexed once for the session: (path, reports)."""
    from vdisc import Library

    home = tmp_path_factory.mktemp("talk-lib")
    lib = Library(home, device="cpu", models=test_models)
    reports = lib.index(FIXTURES / "talk.mp4")
    return home, reports
