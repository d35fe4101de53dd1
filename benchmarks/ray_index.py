"""What does indexing on Ray cost or gain? The same folder, sequentially and on a local Ray cluster.

Indexes the given videos (default: the committed fixtures) twice with the
same models: once in this process (``Library.index``), once on a Ray
cluster of ``--nodes`` nodes started here with ``ray.cluster_utils``
(``Library.index(ray=...)``, one perception actor per node), then prints a
markdown table: wall time, media seconds per wall second, the fixed cost of
Ray (connecting, starting the actors, each loading its models) and the
overhead per video once running (the Ray run's indexing phase against the
sequential indexing phase, both without model loading). Both libraries are
checked to hold the same clips.

On one small machine Ray gains nothing (the actors share its cores) and the
table shows what it costs; on a cluster each node adds its own cores or GPU.

Usage: nice python benchmarks/ray_index.py [VIDEO ...] [--nodes 2] [--cpus-per-node 1] [--visual tiny]
                                          [--split SECONDS]
``--split`` is ``RayOptions.split``: a file at least twice that long is perceived in parts
(default 600, as ``vdisc index --ray``; the fixtures are too short for it).
``--visual tiny`` (default) is the tests' random 4-layer-wide CLIP (fast, same code path);
``--visual none`` skips visual vectors; anything else is an open_clip reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DEFAULT_VIDEOS = ["talk.mp4", "events.mp4", "inject.mp4", "frames.mp4", "silent.mp4"]
TINY_CLIP_CFG = {  # as tests/conftest.py
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PERCEPTION = ("visual", "ocr", "caption", "asr")


def tiny_clip(work: Path) -> str:
    d = work / "tiny-clip"
    if not (d / "open_clip_pytorch_model.bin").exists():
        import open_clip
        import torch

        d.mkdir(parents=True, exist_ok=True)
        (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}))
        torch.manual_seed(0)
        model = open_clip.create_model(f"local-dir:{d}", pretrained=None)
        torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    return f"local-dir:{d}"


def clips(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "library.db") as conn:
        return conn.execute("SELECT v.path, c.idx, round(c.start, 3), round(c.end, 3), c.transcript, c.ocr_text "
                            "FROM clips c JOIN videos v ON v.id = c.video_id ORDER BY v.path, c.idx").fetchall()


def sequential(videos: list[Path], home: Path, models: dict[str, str]) -> dict[str, float]:
    from vdisc import Library

    lib = Library(home, device="cpu", offline=True, models=models)
    t = time.perf_counter()
    for role in (*PERCEPTION, "text"):
        lib.registry.get(role)
    load = time.perf_counter() - t
    t = time.perf_counter()
    reports = lib.index(videos)
    run = time.perf_counter() - t
    assert all(r.status == "indexed" for r in reports), [r.reason for r in reports]
    return {"load": load, "run": run, "total": load + run}


def on_ray(videos: list[Path], home: Path, models: dict[str, str], nodes: int, cpus: int,
           split: float) -> dict[str, float]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    from vdisc import Library
    from vdisc.index import ray_index
    from vdisc.index.writer import settle_dead_followers

    t = time.perf_counter()
    args = {"num_cpus": cpus, "object_store_memory": 512 << 20, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=args)
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus, object_store_memory=512 << 20)
    cluster.wait_for_nodes()
    boot = time.perf_counter() - t
    try:
        lib = Library(home, device="cpu", offline=True, models=models)
        t = time.perf_counter()
        lib.registry.get("text")  # the driver's one model (the writer's text vectors)
        load = time.perf_counter() - t
        # one actor per node: a little over half a node's CPUs each
        options = ray_index.RayOptions(address=cluster.address, cpus=cpus * 0.6, split=split)
        runner = ray_index.RayIndexer(lib.settings, lib.store, lib.registry, None, options)
        t = time.perf_counter()
        with lib.store.writer_lock():
            settle_dead_followers(lib.store, lib.registry, lib.settings)
            reports = runner.index(videos)
        total = time.perf_counter() - t
        assert all(r.status == "indexed" for r in reports), [r.reason for r in reports]
    finally:
        cluster.shutdown()
    return {"boot": boot, "load": load, "total": total + load, **runner.timings,
            "perceive": sum(runner.perceive_seconds), "tasks": len(runner.perceive_seconds),
            "by_kind": runner.task_seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--cpus-per-node", type=int, default=1, help="logical CPUs each node offers Ray")
    ap.add_argument("--visual", default="tiny")
    ap.add_argument("--split", type=float, default=600.0, help="seconds per part of a long file (0: whole)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # the same threads in both runs (Ray would give a 0.6-CPU actor one): Whisper's float sums, and so
    # now and then a word, depend on how many threads add them up
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    videos = [v.resolve() for v in args.videos] or [FIXTURES / name for name in DEFAULT_VIDEOS]
    work = args.work or Path(tempfile.mkdtemp(prefix="vdisc-ray-bench-"))
    visual = tiny_clip(work) if args.visual == "tiny" else args.visual
    models = {"visual": visual, "text": "all-MiniLM-L6-v2", "asr": "tiny.en", "ocr": "rapidocr", "caption": "none"}
    from vdisc.index import decode

    media = sum(decode.probe(v).duration for v in videos)
    for name in ("seq", "ray"):
        shutil.rmtree(work / name, ignore_errors=True)
    seq = sequential(videos, work / "seq", models)
    ray = on_ray(videos, work / "ray", models, args.nodes, args.cpus_per_node, args.split)
    same = clips(work / "seq") == clips(work / "ray")
    n = len(videos)
    print(f"{n} videos, {media:.0f} s of media; {platform.machine()}, {os.cpu_count()} cores, "
          f"ray: {args.nodes} nodes x {args.cpus_per_node} CPU, one actor each, {ray['tasks']:.0f} tasks "
          f"(split {args.split:g} s); same clips: {same}\n")
    print("| run | wall s | media s / wall s | model loading s | Ray fixed cost s | indexing s | per video s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| sequential | {seq['total']:.1f} | {media / seq['total']:.1f} | {seq['load']:.1f} | – | "
          f"{seq['run']:.1f} | {seq['run'] / n:.2f} |")
    fixed = ray["connect"] + ray["start"]
    print(f"| Ray, {args.nodes} nodes | {ray['total']:.1f} | {media / ray['total']:.1f} | {ray['load']:.1f} "
          f"(driver) | {fixed:.1f} (connect {ray['connect']:.1f} + actors {ray['start']:.1f}) | "
          f"{ray['run']:.1f} | {ray['run'] / n:.2f} |")
    kinds = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in ray["by_kind"].items())
    print(f"\noverhead per video once running: {(ray['run'] - seq['run']) / n:+.2f} s "
          f"(Ray indexing phase minus sequential, over {n} videos); perception on the workers took "
          f"{ray['perceive']:.1f} s in all ({kinds}); starting the {args.nodes}-node cluster itself: "
          f"{ray['boot']:.1f} s (not counted: an existing cluster is already up)")
    if not same:
        sys.exit("the Ray library differs from the sequential one")


if __name__ == "__main__":
    main()
