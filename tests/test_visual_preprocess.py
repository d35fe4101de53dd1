"""Batch preprocessing on tensors (the GPU path) gives what the model's own PIL transform gives."""

from __future__ import annotations

import numpy as np
import pytest

from vdisc.config import Settings
from vdisc.index.models import Registry

from conftest import FIXTURES


@pytest.fixture(scope="module")
def visual(tiny_clip_dir):
    return Registry(Settings.load(device="cpu", models={"visual": f"local-dir:{tiny_clip_dir}"})).require("visual")


def _frames() -> list[np.ndarray]:
    from vdisc.index import decode

    with decode.open_video(FIXTURES / "talk.mp4") as reader:  # real decoded frames, 480x270 and smaller
        full = [rgb for _, rgb in reader.frames(fps=0.5, end=30.0)]
        small = [rgb for _, rgb in reader.frames(fps=0.5, max_side=200, start=30.0)]
    return full + small


def test_tensor_batch_matches_the_pil_transform(visual):
    import torch
    from PIL import Image

    frames = _frames()
    want = torch.stack([visual.preprocess(Image.fromarray(f)) for f in frames])
    got = visual.pixels(frames)
    assert got.shape == want.shape
    diff = (got - want).abs()
    # resizing antialiased bicubic in uint8 on both sides: a few grey levels at most (1 level = 1/255/std)
    assert float(diff.mean()) < 0.002 and float(diff.max()) < 0.05, (float(diff.mean()), float(diff.max()))


def test_embeddings_from_the_batch_path_equal_the_pil_path(visual):
    import torch
    from PIL import Image

    frames = _frames()
    ours = visual.encode_images(frames)
    with torch.inference_mode():
        ref = visual.model.encode_image(torch.stack([visual.preprocess(Image.fromarray(f)) for f in frames]))
    ref = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    cos = (ours * ref).sum(axis=1)
    assert cos.min() > 0.999, cos.min()
    mixed = visual.pixels([frames[0], frames[-1]])  # two sizes in one batch
    assert mixed.shape[0] == 2
