"""Speed and peak memory of the selective scan forms in ``vdisc.index.models.scan``.

Usage::

    python benchmarks/scan_speed.py                      # dim 512, N 16, batch 1
    python benchmarks/scan_speed.py --lengths 1024 4096 --dim 1024 --repeat 3

Every measurement runs in a fresh subprocess: inputs are made, the form is
warmed up on a 256-step prefix, then ``ru_maxrss`` (peak RSS) is read before
and after the timed run; ``peak MB`` is that growth, i.e. what the scan itself
needed on top of its inputs (tracemalloc does not see torch's allocator).
``seconds`` is the best of ``--repeat`` runs. ``fwd+bwd`` backpropagates
``y.square().sum()`` into u, delta, A, B and C.

Its figures on the development machine are in README.md ("Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_WORKER = r"""
import json, resource, sys, time
import torch, torch.nn.functional as F
from vdisc.index.models.scan import selective_scan
mode, L, dim, N, task, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.manual_seed(0)
u = torch.randn(1, dim, L); delta = F.softplus(torch.randn(1, dim, L))
A = -torch.exp(torch.randn(dim, N)); B = torch.randn(1, N, L); C = torch.randn(1, N, L)

def run(n):
    if task == "inference":
        with torch.no_grad():
            selective_scan(u[..., :n], delta[..., :n], A, B[..., :n], C[..., :n], mode=mode)
    else:
        ins = [t.detach().requires_grad_() for t in (u[..., :n], delta[..., :n], A, B[..., :n], C[..., :n])]
        selective_scan(*ins, mode=mode).square().sum().backward()

run(min(L, 256))  # warm-up: kernels, allocator, thread pool
best = float("inf")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(repeat):
    t0 = time.perf_counter(); run(L); best = min(best, time.perf_counter() - t0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": best, "peak_mb": (after - before) / 1024}))
"""


def measure(mode: str, L: int, dim: int, N: int, task: str, repeat: int) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, mode, str(L), str(dim), str(N), task, str(repeat)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--N", type=int, default=16)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--train-lengths", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)

    cases = [(m, L, "inference") for m in ("lean", "chunked") for L in args.lengths]
    cases += [(m, L, "fwd+bwd") for L in args.train_lengths for m in ("chunked", "lean")]
    print(f"dim={args.dim} N={args.N} batch=1 OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', os.cpu_count())}\n")
    print("| mode | task | L | seconds | tokens/s | peak MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode, L, task in cases:
        r = measure(mode, L, args.dim, args.N, task, args.repeat)
        print(f"| {mode} | {task} | {L} | {r['seconds']:.3f} | {L / r['seconds']:,.0f} | {r['peak_mb']:.0f} |", flush=True)
    sizes = ", ".join(f"L={L}: {args.dim * args.N * L * 4 / 2**20:.0f} MB" for L in args.lengths)
    print(f"\n(one (1, dim, L, N) float32 tensor: {sizes})")


if __name__ == "__main__":
    main()
