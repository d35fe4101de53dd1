"""The compressor inside inspect, its off switch, and training it on a library."""

from __future__ import annotations

import json

import numpy as np
import torch

from vdisc import Library
from vdisc.index.models.compressor import ClipCompressor
from vdisc.training import collect_pairs, train

from test_cli import vdisc


def test_inspect_reports_token_reduction(talk_library):
    home, _ = talk_library
    on = Library(home, compressor="untrained").inspect("talk.mp4", 8.0, 21.0, "pineapple", fps=4.0)
    assert on.frames == 48 and on.tokens_in == 48 * 17  # tiny CLIP: 4x4 patches + CLS
    assert on.tokens_out * 8 <= on.tokens_in  # at least 8x fewer tokens
    assert on.best is not None and 8.0 <= on.best.start < on.best.end <= 21.5
    off = Library(home, compressor="off").inspect("talk.mp4", 8.0, 21.0, "pineapple", fps=4.0)
    assert off.tokens_in == off.tokens_out == 48
    # untrained, the compressor is a no-op on embeddings: same per-frame scores, same best frame ranking
    assert [f.ts for f in on.top_frames] == [f.ts for f in off.top_frames]
    assert np.allclose([f.score for f in on.top_frames], [f.score for f in off.top_frames], atol=1e-4)


def test_inspect_json_fields(talk_library):
    home, _ = talk_library
    r = vdisc("inspect", "talk.mp4", "8-21", "pineapple", "--library", str(home), "--json", "--compressor",
              "untrained")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert isinstance(data["frames"], int) and isinstance(data["tokens_in"], int)
    assert data["tokens_in"] >= 8 * data["tokens_out"] > 0
    assert set(data["best"]) == {"start", "end", "score"}


def test_training_lowers_the_loss_and_weights_reload(talk_library, tmp_path):
    home, _ = talk_library
    lib = Library(home)
    pairs = collect_pairs(lib.store, lib.registry, frames_per_clip=4)
    assert len(pairs) >= 6
    visual = lib.registry.require("visual")
    comp = ClipCompressor.for_visual(visual, n_layers=1)
    report = train(pairs, comp, visual.grid, tmp_path / "c.safetensors", steps=40, batch_size=6, lr=3e-3)
    first, last = np.mean(report.losses[:5]), np.mean(report.losses[-5:])
    assert last < first, report.losses
    again = ClipCompressor.load(report.path)
    a = comp.compress(pairs[0].tokens, pairs[0].times, grid=visual.grid)
    b = again.compress(pairs[0].tokens, pairs[0].times, grid=visual.grid)
    assert torch.equal(a.embedding, b.embedding) and torch.equal(a.tokens, b.tokens)
    # trained weights are no longer a no-op, and the registry loads them for inspect
    res = Library(home, compressor=report.path).inspect("talk.mp4", 8.0, 21.0, "pineapple")
    assert res.tokens_out * 8 <= res.tokens_in


def test_training_command(talk_library, tmp_path):
    home, _ = talk_library
    out = tmp_path / "w.safetensors"
    r = vdisc("train-compressor", "--library", str(home), "--out", str(out), "--steps", "3", "--layers", "1",
              "--frames-per-clip", "2")
    assert r.returncode == 0, r.stderr
    assert out.exists() and "saved" in r.stdout and "step 3/3" in r.stderr
    r = vdisc("train-compressor", "--library", str(tmp_path / "none"), "--steps", "1")
    assert r.returncode == 1 and r.stderr.startswith("vdisc: ") and len(r.stderr.strip().splitlines()) == 1


def test_untrained_compressor_ranks_fixture_clips_like_the_baseline(talk_library):
    """Clip vectors through the untrained compressor rank the fixture's clips exactly as mean-pooled CLIP does."""
    from sqlalchemy import select

    from vdisc.index import decode
    from vdisc.index.store import Clip

    home, _ = talk_library
    lib = Library(home, compressor="untrained")
    visual = lib.registry.require("visual")
    comp = lib.registry.compressor()
    with lib.store.session() as s:
        clips = s.scalars(select(Clip).order_by(Clip.start)).all()
    base, compressed = [], []
    with decode.open_video(lib.videos()[0].path) as reader:
        for c in clips:
            frames = list(reader.frames(fps=1.0, max_side=448, start=c.start, end=c.end))
            imgs, times = [rgb for _, rgb in frames], [ts for ts, _ in frames]
            v = visual.encode_images(imgs).mean(0)
            base.append(v / np.linalg.norm(v))
            compressed.append(comp.compress(visual.encode_image_tokens(imgs), times, grid=visual.grid)
                              .embedding.numpy())
    queries = visual.encode_texts(["a blue sky", "colour bars", "a fractal", "a purple gradient", "green plasma"])
    rank_base = np.argsort(-(queries @ np.stack(base).T), axis=1)
    rank_comp = np.argsort(-(queries @ np.stack(compressed).T), axis=1)
    assert np.array_equal(rank_base, rank_comp)
    assert np.allclose(np.stack(base), np.stack(compressed), atol=1e-5)


def test_without_trained_weights_the_default_is_off_and_says_so(talk_library, tmp_path):
    """auto: the untrained encoder would change nothing a user sees, so it does not run (no cost); trained
    weights in the library turn it on, and info / doctor say which."""
    import shutil

    from vdisc.doctor import run_checks

    home, _ = talk_library
    copy = tmp_path / "lib"
    shutil.copytree(home, copy)
    lib = Library(copy)
    assert lib.registry.compressor() is None
    res = lib.inspect("talk.mp4", 8.0, 21.0, "pineapple", fps=4.0)
    assert res.tokens_in == res.tokens_out == res.frames  # plain frame embeddings: no token grids at all
    assert lib.info()["compressor"]["state"] == "off" and "no trained weights" in lib.info()["compressor"]["detail"]
    (check,) = [c for c in run_checks(lib)["checks"] if c["name"] == "compressor"]
    assert check["state"] == "off" and check["ok"]

    visual = lib.registry.require("visual")
    ClipCompressor.for_visual(visual, n_layers=1).save(copy / "compressor.safetensors")
    trained = Library(copy)
    assert trained.registry.compressor() is not None
    assert trained.info()["compressor"]["state"] == "on"
    on = trained.inspect("talk.mp4", 8.0, 21.0, "pineapple", fps=4.0)
    assert on.tokens_out * 8 <= on.tokens_in
