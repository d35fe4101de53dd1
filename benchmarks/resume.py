"""What does crash safety cost, and what does resuming save?

Indexes a folder of 20 one-minute videos (copies of the fixture talk.mp4 with
speech and on-screen text, made distinct by a trailing byte so each is its
own video) with the offline model stack, three ways, each in a fresh process:

- plain: checkpoints on (the default); the time spent writing them is also
  measured directly, by timing every checkpoint call
- no checkpoints: the same run with checkpoint writes turned off
- crash + resume: `vdisc index` is SIGKILLed at about half of its
  uninterrupted time (once a video has a checkpointed batch), then run again
  to the end; the total of both runs is
  set against one uninterrupted `vdisc index` (both include model loading,
  which the killed run pays twice)

Usage: python benchmarks/resume.py [--videos 20] [--visual none|ViT-B-32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TALK = REPO / "tests" / "fixtures" / "talk.mp4"

CHILD = r"""
import json, sys, time
from vdisc import Library
from vdisc.config import Settings
from vdisc.index import checkpoint
mode, folder, home, visual = sys.argv[1:5]
spent = [0.0]
def timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t
    return wrapper
C = checkpoint.Checkpoint
if mode == "off":
    C.start = C.save_batch = C.save_speech = lambda *a, **k: None
    C.load = lambda self: None
else:
    for name in ("start", "save_batch", "save_speech", "load", "discard", "discard_others"):
        setattr(C, name, timed(getattr(C, name)))
s = Settings.load(home=home, device="cpu", offline=True, models={"visual": visual, "caption": "none"})
lib = Library(settings=s, notify=lambda m: None)
for role in ("visual", "text", "asr", "ocr"):
    lib.registry.get(role)  # model loading is a one-off cost, not per video
t = time.perf_counter()
reports = lib.index(folder)
assert all(r.status == "indexed" for r in reports), [r.reason for r in reports]
print(json.dumps({"seconds": time.perf_counter() - t, "checkpoint_seconds": spent[0]}))
"""


def make_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = TALK.read_bytes()
    for i in range(n):
        (folder / f"talk{i:02d}.mp4").write_bytes(data + bytes([i % 256]) * (i + 1))
    return folder


def child(mode: str, folder: Path, home: Path, visual: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), str(home), visual],
                         stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_env(visual: str) -> dict[str, str]:
    return {**os.environ, "VDISC_VISUAL_MODEL": visual, "VDISC_CAPTION_MODEL": "none", "VDISC_DEVICE": "cpu",
            "VDISC_OFFLINE": "1"}


def cli_index(folder: Path, home: Path) -> list[str]:
    return [sys.executable, "-m", "vdisc.cli", "index", str(folder), "--library", str(home), "--json"]


def uninterrupted(folder: Path, home: Path, visual: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cli_index(folder, home), env=cli_env(visual), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def crash_and_resume(folder: Path, home: Path, visual: str, kill_after: float) -> dict:
    env, cmd = cli_env(visual), cli_index(folder, home)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    while not list((home / "partial").glob("*/batch-*.npz")) and proc.poll() is None:
        time.sleep(0.01)  # kill mid-video, once a batch is checkpointed: the case resuming is for
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    second = time.perf_counter() - t1
    reports = json.loads(out.stdout)
    return {"killed_after": round(first, 1), "rerun": round(second, 1), "total": round(first + second, 1),
            "indexed_on_rerun": sum(r["status"] == "indexed" for r in reports),
            "skipped_on_rerun": sum(r["status"] == "unchanged" for r in reports),
            "resumed_mid_video_at": [round(r["resumed_from"], 1) for r in reports if r.get("resumed_from")]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--visual", default="none", help="visual model (none or ViT-B-32 with random weights)")
    args = ap.parse_args()
    visual = "ViT-B-32" if args.visual == "ViT-B-32" else args.visual
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "videos", args.videos)
        plain = child("on", folder, Path(tmp) / "plain", visual)
        off = child("off", folder, Path(tmp) / "off", visual)
        whole = uninterrupted(folder, Path(tmp) / "cli", visual)
        crash = crash_and_resume(folder, Path(tmp) / "crash", visual, kill_after=0.5 * whole)
    media = 60.0 * args.videos
    result = {
        "videos": args.videos, "media_seconds": media, "visual": visual,
        "plain_seconds": round(plain["seconds"], 1),
        "no_checkpoint_seconds": round(off["seconds"], 1),
        "checkpoint_write_seconds": round(plain["checkpoint_seconds"], 2),
        "checkpoint_share": round(plain["checkpoint_seconds"] / plain["seconds"], 4),
        "end_to_end_overhead": round(plain["seconds"] / off["seconds"] - 1, 4),
        "cli_uninterrupted_seconds": round(whole, 1),
        "crash_and_resume": crash,
        "crash_cost_seconds": round(crash["total"] - whole, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
