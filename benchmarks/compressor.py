"""What does the clip compressor cost and save inside inspect?

For 16 / 64 / 256 frames of ViT-B-32 token grids (the default visual
architecture, random weights: same compute; 224 px frames) it measures, each
in a fresh process so peak RSS is its own:

- baseline: per-frame embeddings only (``encode_images``), as with --compressor off
- compressed: token grids (``encode_image_tokens``) + the untrained 2-layer
  bidirectional Mamba compressor + token reduction (``--compressor untrained``;
  trained weights cost the same)
- the compressor's own share, and a CLS-only pass for 32 frames

Usage: python benchmarks/compressor.py   (GPU numbers too when CUDA is present)
Scan scaling in sequence length: benchmarks/scan_speed.py.
Targets on 2 CPU cores: compressor adds < 1.5 s for 64 frames; CLS-only < 50 ms for 32 frames.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from vdisc.config import Settings
from vdisc.index.models import Registry
from vdisc.index.models.compressor import ClipCompressor
mode, n, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
reg = Registry(Settings.load(device=device, models={"visual": "ViT-B-32"}), notify=lambda m: None)
visual = reg.require("visual")
comp = ClipCompressor.for_visual(visual).eval()
rng = np.random.default_rng(0)
frames = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(n)]
times = [i / 4 for i in range(n)]
visual.encode_images(frames[:2]); comp.compress(visual.encode_image_tokens(frames[:2]), times[:2])  # warm-up
out = {"mode": mode, "frames": n}
t = time.perf_counter()
if mode == "baseline":
    visual.encode_images(frames)
    out["tokens_in"] = out["tokens_out"] = n
else:
    tokens = visual.encode_image_tokens(frames)
    t_enc = time.perf_counter()
    clip = comp.compress(tokens, times, grid=visual.grid, cls_only=(mode == "cls_only"))
    out["compressor_s"] = time.perf_counter() - t_enc
    out["tokens_in"], out["tokens_out"] = clip.tokens_in, clip.tokens_out
out["seconds"] = time.perf_counter() - t
out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(mode: str, n: int, device: str) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), device], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        print(f"device: {device}; ViT-B-32 (random weights), 2-layer bidirectional Mamba compressor (untrained)")
        print("| frames | mode | total (s) | compressor (s) | tokens in | tokens out | reduction | peak RSS (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        cases = [(n, m) for n in (16, 64, 256) for m in ("baseline", "compressed")] + [(32, "cls_only")]
        for n, mode in cases:
            r = run(mode, n, device)
            comp = f"{r['compressor_s']:.3f}" if "compressor_s" in r else "-"
            print(f"| {n} | {mode} | {r['seconds']:.2f} | {comp} | {r['tokens_in']} | {r['tokens_out']} | "
                  f"{r['tokens_in'] / r['tokens_out']:.1f}x | {r['rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
