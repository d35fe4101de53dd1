"""How fast is `vdisc index`, per decoder backend, against the decode floor?

Builds a 10-minute 854x480 H.264/AAC video with speech and on-screen text
(the committed fixture talk.mp4 scaled up and looped; needs ffmpeg once,
cached under --work), then for each decoder backend measures:

- decode only: sampling frames exactly as the indexer does (cut_fps, max_side)
- full `vdisc index` in a fresh process, with the offline model stack
- their ratio, the real-time factor (index time / video duration), peak RSS

Usage: python benchmarks/index_speed.py [--minutes 10] [--visual none|ViT-B-32]
`--visual ViT-B-32` runs the real ViT-B/32 architecture with random weights:
the same compute as the default visual model, for machines without the hub.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_video(out: Path, minutes: float) -> Path:
    if out.exists():
        return out
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed once to build the benchmark video (apt-get install ffmpeg)")
    talk = REPO / "tests" / "fixtures" / "talk.mp4"
    loops = max(1, round(minutes))  # talk.mp4 is one minute long
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(talk),
         "-vf", "scale=854:480", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "250",
         "-c:a", "aac", "-b:a", "64k", str(out)],
        check=True,
    )
    return out


CHILD = r"""
import json, sys, time
from vdisc import Library
from vdisc.config import Settings
from vdisc.index import decode
mode, video, home, backend, visual = sys.argv[1:6]
s = Settings.load(home=home, decoder=backend, device="cpu", offline=True, models={"visual": visual, "caption": "none"})
t = time.perf_counter()
if mode == "decode":
    n = 0
    with decode.open_video(video, backend=backend) as r:
        for _ in r.frames(fps=max(s.cut_fps, s.fps), max_side=s.max_side):
            n += 1
    out = {"frames": n}
else:
    lib = Library(settings=s, notify=lambda m: None)
    for role in ("visual", "text", "asr", "ocr"):
        lib.registry.get(role)  # model loading is a one-off cost, not per video
    t = time.perf_counter()
    (rep,) = lib.index(video, force=True)
    assert rep.status == "indexed", rep.reason
    out = {"clips": rep.clips, "words": rep.words, "channels": rep.channels}
out["seconds"] = time.perf_counter() - t
import resource
out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
print(json.dumps(out))
"""


def run_child(*args: str) -> dict:
    """Run one measurement in a fresh process (so peak RSS is its own)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"child failed: {args}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--visual", default="none", help="visual model for the index runs (none, ViT-B-32, ...)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vdisc-bench")
    ap.add_argument("--backends", default="", help="comma list; default every available backend")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = make_video(args.work / f"bench_{args.minutes:g}min_480p.mp4", args.minutes)

    from vdisc.index import decode

    duration = decode.probe(video).duration
    available = [b for b, why in decode.available_backends().items() if why is None]
    backends = [b for b in args.backends.split(",") if b] or available
    print(f"video: {video.name}, {duration:.0f} s, 854x480; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; visual model: {args.visual}")
    print("| backend | decode only (s) | index (s) | index / decode | real-time factor | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for backend in backends:
        dec = run_child("decode", str(video), str(args.work / "unused"), backend, args.visual)
        home = args.work / f"lib-{backend}"
        shutil.rmtree(home, ignore_errors=True)
        idx = run_child("index", str(video), str(home), backend, args.visual)
        print(f"| {backend} | {dec['seconds']:.1f} | {idx['seconds']:.1f} | {idx['seconds'] / dec['seconds']:.2f} | "
              f"{idx['seconds'] / duration:.3f} | {idx['rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
