"""Decode the frame-number code burned into ``tests/fixtures/frames.mp4``.

Frame ``n`` of that video shows ``n`` as a 12-bit binary code: 12 blocks in a
row, block ``i`` (``i = 0`` is the most significant bit) covering
``x in [10 + 25*i, 10 + 25*i + 20)``, ``y in [10, 60)`` of the 320x240 frame;
white means 1, black means 0, on a mid-grey background.  See
``tests/fixtures/frames.json`` and ``scripts/make_fixtures.py``.
"""

from __future__ import annotations

import numpy as np

REF_W, REF_H = 320, 240
BITS, X0, PITCH, BLOCK_W, Y0, Y1 = 12, 10, 25, 20, 10, 60


def read_frame_number(rgb: np.ndarray) -> int:
    """Return the frame number encoded in an HxWx3 uint8 RGB frame.

    Works on frames resized from 320x240 (block geometry is scaled by
    ``W/320`` and ``H/240``).  Each bit is the mean brightness of a small
    patch at the centre of its block, thresholded at 128.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {a.shape}")
    h, w = a.shape[:2]
    sx, sy = w / REF_W, h / REF_H
    # half-size of the sampled patch: a quarter of the block, at least 0 px
    rx = max(0, int(BLOCK_W * sx / 4))
    ry = max(0, int((Y1 - Y0) * sy / 4))
    yc = int((Y0 + Y1) / 2 * sy)
    n = 0
    for i in range(BITS):
        xc = int((X0 + PITCH * i + BLOCK_W / 2) * sx)
        patch = a[max(0, yc - ry): yc + ry + 1, max(0, xc - rx): xc + rx + 1, :3]
        n = (n << 1) | int(float(patch.mean()) >= 128.0)
    return n
