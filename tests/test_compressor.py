"""The STORM-style clip compressor: CLIP token grids, the no-op start,
token reduction metadata, the CLS-only path and persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vdisc.index.models.compressor import ClipCompressor, CompressorConfig


@pytest.fixture(scope="module")
def visual(tiny_clip_dir):
    import vdisc
    from vdisc.index.models import Registry

    return Registry(vdisc.Settings.load(device="cpu", models={"visual": f"local-dir:{tiny_clip_dir}"})).require("visual")


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def _randomise(model: ClipCompressor, seed: int = 0) -> ClipCompressor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.blocks:
            block.out_proj.weight.copy_(torch.randn(block.out_proj.weight.shape, generator=g) * 0.1)
            block.out_proj.bias.copy_(torch.randn(block.out_proj.bias.shape, generator=g) * 0.1)
    return model


def test_token_grids_match_encode_images(visual) -> None:
    frames = _frames(3)
    toks = visual.encode_image_tokens(frames)
    assert visual.grid == (4, 4)
    assert toks.shape == (3, 1 + 16, visual.spec.dim) == (3, 17, 32)
    assert toks.dtype == torch.float32 and torch.isfinite(toks).all()
    cls = torch.nn.functional.normalize(toks[:, 0], dim=-1).numpy()
    np.testing.assert_allclose(cls, visual.encode_images(frames), atol=1e-5)
    # patches are projected into the joint space too, and differ from CLS
    assert not torch.allclose(toks[:, 1], toks[:, 0])
    assert visual.encode_image_tokens([]).shape == (0, 17, 32)


def test_noop_start_equals_mean_pooled_baseline(visual) -> None:
    torch.manual_seed(0)
    comp = ClipCompressor.for_visual(visual)
    clips = [_frames(5, seed=s) for s in range(4)]
    times = np.arange(5) * 0.5
    queries = visual.encode_texts(["a cat", "a red car", "people talking", "the sea"])
    ours, base = [], []
    for frames in clips:
        toks = visual.encode_image_tokens(frames)
        seq = toks.reshape(1, -1, toks.shape[-1])
        assert torch.equal(comp.encode(seq), seq)  # exact residual no-op
        out = comp.compress(toks, times, grid=visual.grid)
        m = visual.encode_images(frames).mean(0)
        base.append(m / np.linalg.norm(m))
        ours.append(out.embedding.numpy())
        np.testing.assert_allclose(ours[-1], base[-1], atol=1e-5)
        assert abs(float(out.embedding.norm()) - 1) < 1e-5
        # the CLS-only path gives the same embedding
        np.testing.assert_allclose(comp.compress(toks, times, cls_only=True).embedding.numpy(), base[-1], atol=1e-5)
    rank_ours = np.argsort(-queries @ np.stack(ours).T, axis=1)
    rank_base = np.argsort(-queries @ np.stack(base).T, axis=1)
    assert (rank_ours == rank_base).all()


def test_token_reduction_vit_b32_shape() -> None:
    torch.manual_seed(0)
    comp = ClipCompressor(CompressorConfig(dim=64, n_layers=1))
    toks = torch.randn(100, 50, 64)
    times = np.arange(100) / 10
    out = comp.compress(toks, times)  # 100 frames -> 64 sampled -> 16 groups x (1 + 4*4 cells)
    assert out.tokens_in == 100 * 50 and out.tokens_out == 16 * 17 == 272
    assert out.tokens.shape == (272, 64)
    assert out.ratio >= 8
    kept = comp.sample_indices(100)
    assert len(kept) == 64 and kept[0] == 0 and kept[-1] == 99
    assert out.cells[:3] == [None, (0, 0), (0, 1)] and out.cells[16] == (3, 3)
    assert out.spans[0] == (0.0, times[kept[3]]) and out.spans[-1] == (times[kept[60]], 9.9)
    out64 = comp.compress(toks[:64], times[:64])
    assert out64.tokens_in == 3200 and out64.tokens_out == 272 and 3200 / 272 > 11.7


def test_token_reduction_tiny_grid_and_metadata(visual) -> None:
    torch.manual_seed(0)
    comp = ClipCompressor.for_visual(visual, temporal_pool=4, spatial_pool=2)
    frames = _frames(10)
    times = np.linspace(0, 4.5, 10)
    toks = visual.encode_image_tokens(frames)
    out = comp.compress(toks, times, grid=visual.grid)
    groups = math.ceil(10 / 4)  # 4 + 4 + 2 frames
    assert out.tokens_in == 10 * 17 and out.tokens_out == groups * (1 + 4) == 15
    assert len(out.spans) == len(out.cells) == 15
    assert out.cells[:5] == [None, (0, 0), (0, 1), (1, 0), (1, 1)]
    assert out.spans[0] == (0.0, times[3]) and out.spans[5] == (times[4], times[7]) and out.spans[-1] == (times[8], 4.5)
    # untrained: the pooled tokens are plain averages of the inputs
    grid = toks[0:4].mean(0)[1:].reshape(4, 4, -1)
    torch.testing.assert_close(out.tokens[0], toks[0:4, 0].mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.tokens[2], grid[0:2, 2:4].mean((0, 1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.tokens[-1], toks[8:10, 1:].reshape(2, 4, 4, -1)[:, 2:, 2:].mean((0, 1, 2)),
                               atol=1e-5, rtol=0)
    # odd grid (3x3) with spatial_pool 2 -> ceil -> 2x2 cells, edge cells smaller
    odd = comp.compress(torch.randn(4, 10, 32), np.arange(4.0))
    assert odd.tokens_out == 1 + 4 and odd.cells[-1] == (1, 1)
    # max_frames sampling before the encoder + a token budget
    small = ClipCompressor.for_visual(visual, max_frames=6, tokens_per_clip=8)
    cut = small.compress(toks, times)
    assert cut.tokens_in == 170 and cut.tokens_out <= 8 and cut.spans[0][0] == 0.0 and cut.spans[-1][1] == 4.5


def test_cls_only_path(visual) -> None:
    torch.manual_seed(0)
    comp = _randomise(ClipCompressor.for_visual(visual))
    toks = visual.encode_image_tokens(_frames(9))
    times = np.arange(9.0)
    out = comp.compress(toks, times, cls_only=True)
    assert out.tokens_out == 3 and out.cells == [None] * 3
    assert out.spans == [(0.0, 3.0), (4.0, 7.0), (8.0, 8.0)]
    assert out.tokens_in == 9 * 17
    # CLS-only mixes only the CLS sequence: same result from (T, dim) input
    torch.testing.assert_close(comp.compress(toks[:, 0], times).tokens, out.tokens)
    via = comp.compress_images(visual, _frames(9), times, cls_only=True)
    torch.testing.assert_close(via.embedding, out.embedding, atol=1e-5, rtol=0)


def test_trained_layers_change_output_and_stay_finite(visual) -> None:
    torch.manual_seed(0)
    comp = _randomise(ClipCompressor.for_visual(visual))
    toks = visual.encode_image_tokens(_frames(6))
    seq = toks.reshape(1, -1, 32)
    with torch.inference_mode():
        enc = comp.encode(seq)
    assert torch.isfinite(enc).all()
    assert (enc - seq).abs().max() > 1e-3
    out = comp.compress(toks, np.arange(6.0))
    base = torch.nn.functional.normalize(torch.nn.functional.normalize(toks[:, 0], dim=-1).mean(0), dim=0)
    assert torch.isfinite(out.tokens).all() and not torch.allclose(out.embedding, base, atol=1e-4)
    # bidirectional: the first token's output depends on later frames
    seq2 = seq.clone()
    seq2[:, -1] += torch.randn(32)  # (a constant shift would vanish in LayerNorm)
    with torch.inference_mode():
        assert (comp.encode(seq2)[:, 0] - enc[:, 0]).abs().max() > 0
    # and gradients flow in training mode
    comp.train()
    loss = comp(toks, np.arange(6.0)).embedding.sum()
    loss.backward()
    assert comp.blocks[0].fwd.A_log.grad is not None and comp.blocks[0].in_proj.weight.grad.abs().sum() > 0


def test_save_load_identical(visual, tmp_path) -> None:
    torch.manual_seed(0)
    comp = _randomise(ClipCompressor.for_visual(visual, n_layers=1, temporal_pool=2))
    toks = visual.encode_image_tokens(_frames(5))
    a = comp.compress(toks, np.arange(5.0))
    path = comp.save(tmp_path / "c" / "compressor.safetensors")
    back = ClipCompressor.load(path, map_location="cpu")
    assert back.config == comp.config
    b = back.compress(toks, np.arange(5.0))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.embedding, b.embedding)
    assert a.spans == b.spans and a.cells == b.cells


def test_parameter_count_vit_b32_scale() -> None:
    comp = ClipCompressor(CompressorConfig(dim=512, n_layers=2))
    n = comp.num_parameters()
    print(f"ClipCompressor dim=512 n_layers=2 expand=2 d_state=16: {n:,} parameters")
    assert 2_000_000 <= n <= 8_000_000


# ---- frame embeddings + pooled patch cells (``cells``) -------------------------------------------------


def test_encode_images_cells_is_encode_images_plus_pooled_cells(visual) -> None:
    from vdisc.index.models.compressor import pool_cells

    frames = _frames(5, seed=3)
    vecs, cells = visual.encode_images_cells(frames, 2)
    assert np.array_equal(vecs, visual.encode_images(frames))  # the frame index does not change
    assert cells.shape == (5, 4, 32) and cells.dtype == np.float32
    toks = visual.encode_image_tokens(frames)
    want = torch.nn.functional.normalize(pool_cells(toks[:, 1:], visual.grid, 2), dim=-1).numpy()
    np.testing.assert_allclose(cells, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cells, axis=-1), 1.0, atol=1e-5)
    # a 3x3 split of the 4x4 grid: adaptive regions
    assert visual.encode_images_cells(frames[:2], 3)[1].shape == (2, 9, 32)
    empty = visual.encode_images_cells([], 2)
    assert empty[0].shape == (0, 32) and empty[1].shape == (0, 4, 32)


def _cells_compressor(standardize: bool = True) -> ClipCompressor:
    torch.manual_seed(0)
    return ClipCompressor(CompressorConfig(dim=32, n_layers=1, cls_only=True, window=4, temporal_pool=4, text_dim=8,
                                           cells=2, standardize=standardize))


def test_cells_compressor_inputs_agree_and_stay_a_no_op_untrained(visual, tmp_path) -> None:
    frames, times = _frames(8, seed=4), np.arange(8) / 2
    vecs, cells = visual.encode_images_cells(frames, 2)
    comp = _cells_compressor()
    comp.fit_inputs(torch.from_numpy(np.concatenate([vecs[:, None], cells], 1))[None])
    # untrained: the clip embedding is still mean pooling of the frame embeddings
    base = vecs.mean(0) / np.linalg.norm(vecs.mean(0))
    np.testing.assert_allclose(comp.compress(comp.frame_inputs(vecs, cells), times).embedding.numpy(), base, atol=1e-5)
    _randomise(comp)
    a = comp.compress(comp.frame_inputs(vecs, cells), times)
    b = comp.compress_images(visual, frames, times)  # one forward pass: encode_images_cells
    c = comp.compress(visual.encode_image_tokens(frames), times, grid=visual.grid)  # pooled here from full grids
    for other in (b, c):
        torch.testing.assert_close(other.vector, a.vector, atol=1e-5, rtol=0)
    assert b.tokens_in == 8 * 5 and b.tokens_out == 2 and b.cells == [None, None]  # group tokens only
    np.testing.assert_allclose(comp.encode_frames(vecs, times, cells), a.vector.numpy(), atol=1e-6)
    _, batched = comp.embed_sequences(comp.frame_inputs(vecs, cells)[None])
    torch.testing.assert_close(batched[0], a.vector, atol=1e-5, rtol=0)
    # the cells carry the order too: the reversed clip gets another vector
    rev = comp.encode_frames(vecs[::-1].copy(), times, cells[::-1].copy())
    assert np.abs(rev - a.vector.numpy()).max() > 1e-3
    with pytest.raises(ValueError, match="cells"):
        comp.encode_frames(vecs, times)  # trained on cells: the frame embeddings alone are not its input
    # saved and loaded: the config says what it takes, the standardisation travels with the weights
    back = ClipCompressor.load(comp.save(tmp_path / "cells.safetensors"))
    assert back.config.cells == 2 and back.needs_cells == 2 and torch.equal(back.in_std, comp.in_std)
    np.testing.assert_array_equal(back.encode_frames(vecs, times, cells), comp.encode_frames(vecs, times, cells))
    assert "2x2 cells" in back.spec_dict("x")["preprocessing"]["pooling"]


def test_a_cls_only_checkpoint_from_before_cells_loads_and_takes_frame_embeddings() -> None:
    from pathlib import Path

    old = ClipCompressor.load(Path(__file__).parent / "fixtures" / "order_compressor.safetensors")
    assert old.config.cells == 0 and old.needs_cells == 0 and not old.config.standardize
    vecs = torch.nn.functional.normalize(torch.randn(8, 32), dim=-1).numpy()
    assert old.encode_frames(vecs, np.arange(8) / 2).shape == (old.config.text_dim,)
