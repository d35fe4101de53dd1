"""What does the clip compressor cost inside inspect, decode included?

A generated 224 px video (4 fps, 64 s) is inspected over windows of 16 / 64 /
256 frames with ViT-B-32 (the default visual architecture; random weights,
same compute) and the visual encoder in three settings, each in a fresh
process so peak RSS is its own:

- off: per-frame embeddings only (``--compressor off``, the default without trained weights)
- untrained: token grids + the 2-layer bidirectional Mamba over every token + token
  reduction (``--compressor untrained``; a grid-trained file costs the same)
- trained: a compressor as ``train-compressor --order-bench`` makes it (frame embeddings and their
  2x2 pooled patch cells from the same forward pass, 8-frame windows, a head into MiniLM's space;
  random weights, same compute)

"inspect" is decoding the window and inspect's visual pass (``tools.zoom._look``:
encode, compress, score); words, OCR and captions are left out (the same in all three).

Usage: python benchmarks/compressor.py   (GPU numbers too when CUDA is present)
Scan scaling in sequence length: benchmarks/scan_speed.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from types import SimpleNamespace
import torch
from vdisc.config import Settings
from vdisc.index import decode
from vdisc.index.models import Registry
from vdisc.tools import zoom
mode, n, device, video, weights = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
torch.manual_seed(0)
setting = {"off": "off", "untrained": "untrained", "trained": weights}[mode]
reg = Registry(Settings.load(device=device, compressor=setting, models={"visual": "ViT-B-32"}), notify=lambda m: None)
ctx = SimpleNamespace(registry=reg)
def window(k):
    with decode.open_video(video) as reader:
        return list(reader.frames(fps=4.0, max_side=zoom.MAX_SIDE, start=0.0, end=k / 4.0))
zoom._look(ctx, window(2), "a red square moves from left to right", 0.25)  # warm-up: loads every model
t = time.perf_counter()
frames = window(n)
t_dec = time.perf_counter()
_, best, tokens_in, tokens_out, _ = zoom._look(ctx, frames, "a red square moves from left to right", 0.25)
out = {"mode": mode, "frames": len(frames), "decode_s": t_dec - t, "seconds": time.perf_counter() - t,
       "tokens_in": tokens_in, "tokens_out": tokens_out,
       "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
print(json.dumps(out))
"""


def make_video(path: Path, seconds: int = 64, fps: int = 4, size: int = 224) -> Path:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            img = np.full((size, size, 3), 30, np.uint8)
            x = int((i % 32) / 31 * (size - 40))
            img[90:130, x : x + 40] = (220, 30, 30)
            img += rng.integers(0, 8, img.shape, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_trained_like(path: Path) -> Path:
    """A ViT-B-32-sized compressor with the order bench's configuration (random, nonzero weights)."""
    import torch

    from vdisc.evaluation.order_bench import CELLS, FRAMES, SHORT_CLIP
    from vdisc.index.models.compressor import ClipCompressor, CompressorConfig

    torch.manual_seed(0)
    comp = ClipCompressor(CompressorConfig(dim=512, cls_only=True, window=FRAMES, temporal_pool=FRAMES,
                                           text_dim=384, text_model=None, cells=CELLS, standardize=True,
                                           **SHORT_CLIP))
    with torch.no_grad():
        for block in comp.blocks:
            block.out_proj.weight.normal_(0, 0.02)
    return comp.save(path)


def run(mode: str, n: int, device: str, video: Path, weights: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), device, str(video), str(weights)],
                       capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="vdisc-compressor-bench-"))
    video, weights = make_video(tmp / "bench.mp4"), make_trained_like(tmp / "trained.safetensors")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        print(f"device: {device}; ViT-B-32 (random weights); inspect = decode + visual pass, 224 px at 4 fps")
        print("| frames | encoder | inspect (s) | of which decode (s) | tokens in | tokens out | reduction | "
              "peak RSS (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        for n in (16, 64, 256):
            for mode in ("off", "untrained", "trained"):
                r = run(mode, n, device, video, weights)
                print(f"| {r['frames']} | {mode} | {r['seconds']:.2f} | {r['decode_s']:.2f} | {r['tokens_in']} | "
                      f"{r['tokens_out']} | {r['tokens_in'] / max(r['tokens_out'], 1):.1f}x | {r['rss_mib']:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
