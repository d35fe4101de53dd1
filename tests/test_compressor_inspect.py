"""The compressor inside inspect, its off switch, and training it on a library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
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
    # on, the evidence is the compressed tokens (4-frame groups, ~1 s each), not the raw frames
    assert on.top_frames == [] and len(on.tokens) == 12 and off.tokens == [] and off.top_frames
    assert on.tokens[0].start == 8.0 and all(abs(a.end - b.start) < 0.1 for a, b in zip(on.tokens, on.tokens[1:]))
    # untrained, a group token is the mean of its frames' CLS: it scores like the mean of their scores
    assert on.best.score >= max(t.score for t in on.tokens) - 1e-6


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


# ---- a trained temporal encoder on an order-sensitive fixture ----------------------------------------------

ORDER_WEIGHTS = Path(__file__).parent / "fixtures" / "order_compressor.safetensors"
APPEARS = "a red square appears on an empty screen"
DISAPPEARS = "a red square disappears, leaving an empty screen"


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """``frames`` (RGB, SIZE x SIZE) as a near-lossless H.264 file at ``fps``."""
    import av

    from vdisc.evaluation.order_bench import SIZE

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _order_video(path: Path, fps: int = 2, seconds: float = 4.0) -> Path:
    """A red square appears on an empty screen (first ``seconds``), then the same frames backwards: it
    disappears. The halves hold the same pictures, only their order differs (at 2 fps every frame is one
    the index and inspect sample)."""
    from vdisc.evaluation.order_bench import _canvas, _draw

    bg = _canvas(np.random.default_rng(3))
    n = int(fps * seconds)
    shown = np.clip(_draw(bg, "square", "red", 30, 34, 8), 0, 255).astype(np.uint8)
    empty = np.clip(bg, 0, 255).astype(np.uint8)
    appear = [empty if i < n // 2 else shown for i in range(n)]
    return _write_video(path, appear + appear[::-1], fps)


@pytest.fixture(scope="module")
def order_library(tmp_path_factory, test_models):
    """The fixture indexed at 2 fps in 4 s clips (8 frames each, the trained window), with the committed
    order-bench weights as the library's trained compressor."""
    home = tmp_path_factory.mktemp("order-lib")
    return _trained_library(home, _order_video(home / "order.mp4"), ORDER_WEIGHTS, test_models)


def _trained_library(home: Path, video: Path, weights: Path, test_models: dict) -> tuple[Path, dict]:
    """``video`` indexed at 2 fps in 4 s clips (8 frames each, the trained window) with ``weights`` as the
    library's trained compressor; no speech or text channels."""
    import shutil

    shutil.copy(weights, home / "compressor.safetensors")
    models = {**test_models, "asr": "none", "ocr": "none"}
    lib = Library(home, device="cpu", models=models, fps=2.0, clip_seconds=4.0, min_clip_seconds=0.5)
    lib.index(video)
    return home, models


def test_trained_weights_ground_inspect_on_the_compressed_tokens(order_library):
    home, models = order_library
    on = Library(home, models=models)
    assert on.info()["compressor"]["state"] == "on"
    there = on.inspect("order.mp4", 0.0, 8.0, APPEARS, fps=2.0)
    back = on.inspect("order.mp4", 0.0, 8.0, DISAPPEARS, fps=2.0)
    assert there.top_frames == [] and [(t.start, t.end) for t in there.tokens] == [(0.0, 4.0), (4.0, 8.0)]
    assert there.tokens_in == 16 and there.tokens_out == 2  # the frame embeddings, one token per window
    assert there.source == back.source == "visual"  # located on the tokens (no words in this video)
    assert there.tokens[0].score > there.tokens[1].score and back.tokens[1].score > back.tokens[0].score
    assert there.best.end <= 4.0 <= back.best.start and there.best_start < 4.0 < back.best_end  # its own half
    # the encoder off: per-frame scores cannot tell the halves apart, so both questions land alike
    off = Library(home, models=models, compressor="off")
    for question in (APPEARS, DISAPPEARS):
        r = off.inspect("order.mp4", 0.0, 8.0, question, fps=2.0, max_frames=16)
        assert r.tokens == [] and len(r.top_frames) == 8
        halves = [max(f.score for f in r.top_frames if (f.ts < 4) == first) for first in (True, False)]
        assert abs(halves[0] - halves[1]) < 0.01  # each frame has its twin in the other half


def test_trained_weights_index_and_search_the_temporal_clip_vectors(order_library):
    home, models = order_library
    lib = Library(home, models=models)
    temporal = lib.store.vectors("clip", "temporal")
    assert len(temporal) == 2 and temporal.spec.role == "compressor"
    assert temporal.spec.preprocessing["text_model"] == lib.registry.require("text").spec.key
    assert len(lib.store.vectors("clip", "visual")) == 2  # the mean-pooled vectors stay beside them

    def first(library: Library, query: str) -> tuple[float, float]:
        hit = next(h for h in library.search(query, level="clip").hits)
        return hit.start, hit.end

    assert first(lib, APPEARS)[1] <= 4.01 and first(lib, DISAPPEARS)[0] >= 3.99
    # mean pooling gives the two halves one vector: only the temporal list can order them
    visual = lib.store.vectors("clip", "visual")
    a, b = visual.vectors(sorted(int(i) for i in visual.ids()))
    assert float(a @ b) > 0.99
    # without the trained encoder the temporal index goes unsearched (auto with no weights: off, no cost)
    off = Library(home, models=models, compressor="off")
    assert off.registry.trained_compressor() is None and off.registry.compressor() is None


# ---- a temporal encoder trained on frame embeddings + 2x2 pooled patch cells ------------------------------

CELLS_WEIGHTS = Path(__file__).parent / "fixtures" / "order_compressor_cells.safetensors"
RIGHTWARDS = "a red square moves from left to right"
LEFTWARDS = "a red square moves from right to left"


def _motion_video(path: Path, fps: int = 2, seconds: float = 4.0) -> Path:
    """A red square crosses the screen left to right (first ``seconds``), then the same frames backwards:
    right to left. Every frame of one half has its twin in the other; only the order says which is which."""
    from vdisc.evaluation.order_bench import _canvas, _draw

    bg = _canvas(np.random.default_rng(4))
    n = int(fps * seconds)
    there = [np.clip(_draw(bg, "square", "red", x, 30, 9), 0, 255).astype(np.uint8) for x in np.linspace(14, 50, n)]
    return _write_video(path, there + there[::-1], fps)


@pytest.fixture(scope="module")
def motion_library(tmp_path_factory, test_models):
    """The motion fixture indexed at 2 fps in 4 s clips, the cells-trained weights as the library's compressor."""
    home = tmp_path_factory.mktemp("motion-lib")
    return _trained_library(home, _motion_video(home / "motion.mp4"), CELLS_WEIGHTS, test_models)


def test_cells_trained_weights_ground_inspect_on_motion_direction(motion_library):
    """inspect feeds a cells-trained compressor each frame's embedding and its pooled cells (one forward
    pass), and its tokens then tell the left-to-right half from the right-to-left one."""
    home, models = motion_library
    on = Library(home, models=models)
    assert on.registry.compressor().needs_cells == 2
    there = on.inspect("motion.mp4", 0.0, 8.0, RIGHTWARDS, fps=2.0)
    back = on.inspect("motion.mp4", 0.0, 8.0, LEFTWARDS, fps=2.0)
    assert [(t.start, t.end) for t in there.tokens] == [(0.0, 4.0), (4.0, 8.0)]
    assert there.tokens_in == 16 * 5 and there.tokens_out == 2  # frame embedding + 4 cells per frame
    assert there.tokens[0].score > there.tokens[1].score and back.tokens[1].score > back.tokens[0].score
    assert there.best.end <= 4.0 <= back.best.start
    # the encoder off: per-frame scores cannot tell the halves apart
    off = Library(home, models=models, compressor="off")
    r = off.inspect("motion.mp4", 0.0, 8.0, RIGHTWARDS, fps=2.0, max_frames=16)
    halves = [max(f.score for f in r.top_frames if (f.ts < 4) == first) for first in (True, False)]
    assert abs(halves[0] - halves[1]) < 0.01


def test_the_writer_feeds_a_cells_compressor_the_clips_cells(motion_library, tmp_path):
    """add_temporal_vectors gives a cells-trained compressor each frame's cells; a clip perceived without
    them gets no temporal vector (rather than one from an input the weights were not trained on)."""
    from types import SimpleNamespace

    from vdisc.index.writer import add_temporal_vectors

    import shutil

    from vdisc.index import decode

    home, models = motion_library
    shutil.copytree(home, tmp_path / "lib")
    home = tmp_path / "lib"
    lib = Library(home, models=models)
    visual, comp = lib.registry.require("visual"), lib.registry.trained_compressor()

    with decode.open_video(home / "motion.mp4") as reader:
        frames = list(reader.frames(fps=2.0, max_side=448, start=0.0, end=4.0))
    vecs, cells = visual.encode_images_cells([rgb for _, rgb in frames], 2)
    ts = [t for t, _ in frames]
    with_cells = SimpleNamespace(frame_vecs=vecs, frame_ts=ts, frame_cells=cells)
    without = SimpleNamespace(frame_vecs=vecs, frame_ts=ts)
    (index,) = add_temporal_vectors(lib.store, lib.registry, [9001, 9002], [with_cells, without])
    assert 9001 in set(int(i) for i in index.ids()) and 9002 not in set(int(i) for i in index.ids())
    np.testing.assert_allclose(index.vectors([9001])[0], comp.encode_frames(vecs, ts, cells), atol=1e-6)
    assert "2x2 cells" in index.spec.preprocessing["pooling"]


def test_indexing_keeps_cells_for_a_cells_compressor_and_search_orders_motion(motion_library):
    """End to end: the perceiver keeps each frame's cells for such a compressor (ClipResult.frame_cells), the
    writer indexes the clips' temporal vectors from them, and search tells the two directions apart."""
    home, models = motion_library
    lib = Library(home, models=models)
    temporal = lib.store.vectors("clip", "temporal")
    assert len(temporal) == 2 and "2x2 cells" in temporal.spec.preprocessing["pooling"]

    def first(query: str) -> tuple[float, float]:
        hit = next(h for h in lib.search(query, level="clip").hits)
        return hit.start, hit.end

    assert first(RIGHTWARDS)[1] <= 4.01 and first(LEFTWARDS)[0] >= 3.99


def test_a_checkpoint_keeps_the_cells_so_a_resumed_clip_still_gets_its_temporal_vector(tmp_path):
    from vdisc.index.checkpoint import Checkpoint, ClipRecord

    rng = np.random.default_rng(0)
    with_cells = ClipRecord(0, 0.0, 4.0, 0, np.ones(8, np.float32), frame_ts=[0.5, 1.5],
                            frame_vecs=rng.standard_normal((2, 32), dtype=np.float32),
                            frame_cells=rng.standard_normal((2, 4, 32), dtype=np.float32))
    without = ClipRecord(1, 4.0, 8.0, 0, np.ones(8, np.float32), frame_ts=[4.5],
                         frame_vecs=rng.standard_normal((1, 32), dtype=np.float32))
    ckpt = Checkpoint(tmp_path, "f" * 16, tmp_path / "v.mp4", {"format": 2})
    ckpt.start()
    ckpt.save_batch([with_cells, without], {"complete": False})
    (a, b) = Checkpoint(tmp_path, "f" * 16, tmp_path / "v.mp4", {"format": 2}).load().clips
    np.testing.assert_array_equal(a.frame_cells, with_cells.frame_cells)
    np.testing.assert_array_equal(a.frame_vecs, with_cells.frame_vecs)
    assert b.frame_cells is None and b.frame_vecs.shape == (1, 32)
