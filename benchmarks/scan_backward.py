"""Forward + backward of the selective scan on the CPU: the training form against the step loop.

Three forms, all with the compressor's own arguments (input-dependent B and C, D, a gate z,
delta_bias and softplus), backpropagating ``y.square().sum()`` into every input:

- ``chunked``: ``selective_scan(mode="chunked")``, the training form: a hand-written backward
  (reverse adjoint scan) over chunks of 64 steps;
- ``doubling``: the training form before it (log-depth doubling scan per chunk, differentiated by
  autograd), kept as ``scan._scan_doubling``;
- ``step loop``: autograd through the lean step loop (``mode="lean"`` with grad on).

Sizes (batch, d_inner, L, N): the order benchmark's training batch (64 clips, tiny 32-d backbone,
8-frame windows: 8 tokens CLS-only or 40 with 2x2 cells), a ViT-B-32 compressor on one 16-frame
grid clip (16 x 50 tokens) and on eight 8-frame CLS windows, and one long sequence.

Every (size, form) runs in a fresh process: inputs are made, the form is warmed up once, then the
best of ``--repeat`` runs is timed and ``ru_maxrss`` growth over the timed runs is the peak MB the
form needed on top of its inputs.

Usage: python benchmarks/scan_backward.py [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SIZES = [  # (label, batch, d_inner, L, N)
    ("order bench, CLS only", 64, 64, 8, 16),
    ("order bench, CLS + 2x2 cells", 64, 64, 40, 16),
    ("ViT-B-32, 16-frame grid clip", 1, 1024, 800, 16),
    ("ViT-B-32, 8 CLS windows", 8, 1024, 8, 16),
    ("long sequence", 1, 512, 4096, 16),
]
FORMS = ("chunked", "doubling", "step loop")

_WORKER = r"""
import json, resource, sys, time
import torch
from vdisc.index.models import scan
form, b, d, L, N, repeat = sys.argv[1], *map(int, sys.argv[2:7])
torch.manual_seed(0)
u, delta, z = torch.randn(b, d, L), torch.randn(b, d, L), torch.randn(b, d, L)
A = -torch.exp(torch.randn(d, N) * 0.5); B = torch.randn(b, N, L); C = torch.randn(b, N, L)
D, bias = torch.randn(d), torch.randn(d) * 0.5

def doubling(u, delta, A, B, C, D, z, delta_bias, delta_softplus, mode):
    dt = scan._compute_dtype(u)
    dl = scan._prep_delta(delta, delta_bias, delta_softplus, dt)
    y, _ = scan._scan_doubling(u, dl, A, B, C, dt)
    return scan._finish(y, u, D, z, dt)

fn = doubling if form == "doubling" else scan.selective_scan
mode = "lean" if form == "step loop" else "chunked"

def run():
    ins = [t.detach().requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]
    fn(*ins[:6], z=ins[6], delta_bias=ins[7], delta_softplus=True, mode=mode).square().sum().backward()

run()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter(); run(); best = min(best, time.perf_counter() - t0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": best, "peak_mb": (after - before) / 1024}))
"""


def measure(form: str, b: int, d: int, L: int, N: int, repeat: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _WORKER, form, str(b), str(d), str(L), str(N), str(repeat)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    print(f"forward + backward, float32, OMP_NUM_THREADS={args.threads}, best of {args.repeat}\n")
    print("| size (batch, d_inner, L, N) | chunked (s) | doubling (s) | step loop (s) | chunked vs step loop | "
          "chunked vs doubling | peak MB chunked / doubling / step loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, b, d, L, N in SIZES:
        r = {f: measure(f, b, d, L, N, args.repeat, args.threads) for f in FORMS}
        s = {f: r[f]["seconds"] for f in FORMS}
        mem = " / ".join(f"{r[f]['peak_mb']:.0f}" for f in FORMS)
        print(f"| {label} ({b}, {d}, {L}, {N}) | {s['chunked']:.4f} | {s['doubling']:.4f} | {s['step loop']:.4f} | "
              f"{s['step loop'] / s['chunked']:.1f}x | {s['doubling'] / s['chunked']:.1f}x | {mem} |", flush=True)


if __name__ == "__main__":
    main()
