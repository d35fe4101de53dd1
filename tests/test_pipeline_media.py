"""Indexing paths beyond the main fixture: captions through the registry, and
a real-world WebM (Big Buck Bunny, (c) Blender Foundation, CC BY 3.0)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vdisc import Library
from vdisc.index.store import Clip, ModelRow

from conftest import BUNNY, FIXTURES
from tiny_vlm import build_tiny_vlm


def test_hf_captions_are_stored_per_clip_with_their_model(tmp_path, tiny_clip_dir):
    vlm = build_tiny_vlm(tmp_path / "tiny-vlm")
    lib = Library(tmp_path / "lib", device="cpu", models={
        "visual": f"local-dir:{tiny_clip_dir}", "asr": "none", "ocr": "none", "caption": f"hf:{vlm}"})
    (r,) = lib.index(FIXTURES / "silent.mp4")
    assert r.status == "indexed" and "caption" in r.channels, r.reason
    with lib.store.session() as s:
        clips = s.scalars(select(Clip)).all()
        models = {m.id: m for m in s.scalars(select(ModelRow))}
    assert len(clips) == r.clips >= 1
    for c in clips:  # the text is noise from random weights; the plumbing is what counts
        assert isinstance(c.caption, str) and c.caption_model_id in models
        assert models[c.caption_model_id].role == "caption"
        assert models[c.caption_model_id].spec["ref"] == f"hf:{vlm}"
    assert len(lib.store.vectors("clip", "caption")) == sum(1 for c in clips if c.caption.strip())


@pytest.mark.skipif(not BUNNY.exists(), reason="shared/media is not next to the repo")
def test_real_webm_without_header_duration(tmp_path, tiny_clip_dir):
    lib = Library(tmp_path / "lib", device="cpu", models={
        "visual": f"local-dir:{tiny_clip_dir}", "ocr": "none", "caption": "none"})
    (r,) = lib.index(BUNNY)
    assert r.status == "indexed", r.reason
    assert 29.5 <= r.duration <= 30.5
    with lib.store.session() as s:
        clips = s.scalars(select(Clip).order_by(Clip.start)).all()
    assert clips[0].start == 0.0 and abs(clips[-1].end - r.duration) < 0.5
    assert all(abs(a.end - b.start) < 1e-6 for a, b in zip(clips, clips[1:]))
    assert all(c.end - c.start <= 10.0 + 1e-6 for c in clips)
    # the opening has several hard cuts in its first 30 s (title cards, then the meadow)
    assert len({c.shot for c in clips}) >= 3
    assert r.frames >= 28  # about one kept frame per second
