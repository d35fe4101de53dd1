"""Train and evaluate the temporal clip encoder on the generated order benchmark.

    python scripts/make_order_bench.py [--out DIR] [--steps N] [--device cpu|cuda] [--visual REF] [--resume]
                                       [--cells K] [--twin W] [--fixture [NAME]]

Draws the train and held-out splits (vdisc/evaluation/order_bench.py), embeds
frames with the visual model (default: the tests' random toy open_clip,
written under --out) and texts with the registry's text model (MiniLM),
trains the 2-layer bidirectional Mamba encoder (each frame: its embedding
and 2x2 pooled patch cells) and the mean-pooling baseline (the same linear
head on mean-pooled frame embeddings) and prints the held-out
table; the full report is --out/report.json. The same run as
``vdisc train-compressor --order-bench``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("order-bench"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--pairs", type=int, default=400, help="training order pairs per family")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--visual", default=None, help="visual model reference (default: the random toy CLIP)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    ap.add_argument("--cells", type=int, default=None,
                    help="pooled patch cells per side each frame brings besides its embedding "
                         "(default 2; 0: the frame embedding only, as checkpoints before cells)")
    ap.add_argument("--twin", type=float, default=None, help="weight of the order twins' own contrast (default 1)")
    ap.add_argument("--fixture", nargs="?", const="order_compressor", default=None, metavar="NAME",
                    help="also copy both weights files to tests/fixtures/NAME[.mean_pool].safetensors "
                         "(default NAME order_compressor; what tests/test_order_bench.py checks)")
    args = ap.parse_args(argv)

    from vdisc.config import Settings
    from vdisc.evaluation import order_bench
    from vdisc.index.models import Registry

    visual_ref = args.visual or order_bench.make_tiny_clip(args.out / "tiny-clip")
    reg = Registry(Settings.load(device=args.device, models={"visual": visual_ref}), notify=lambda m: None)
    visual, text = reg.require("visual"), reg.require("text")

    def progress(name: str, step: int, loss: float) -> None:
        if (step + 1) % 50 == 0 or step + 1 == args.steps:
            print(f"{name}: step {step + 1}/{args.steps} loss {loss:.4f}", file=sys.stderr, flush=True)

    extra = {k: v for k, v in (("cells", args.cells), ("twin", args.twin)) if v is not None}
    report = order_bench.run(args.out / "compressor.safetensors", visual, text, pairs_per_family=args.pairs, steps=args.steps,
                             layers=args.layers, seed=args.seed, device=args.device, resume=args.resume,
                             on_step=progress, **extra)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(order_bench.table(report))
    if args.fixture:
        import shutil

        fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
        for m in report["models"].values():
            name = Path(m["path"]).name.replace("compressor", args.fixture, 1)
            shutil.copy(m["path"], fixtures / name)
            print(f"wrote {fixtures / name}", file=sys.stderr)
    print(f"({report['train_clips']} training clips, {report['test_clips']} held-out; {report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
