"""Does following a never-ending source stay bounded?

Publishes a long simulated stream (talk.mp4 looped into 4 s MPEG-TS segments
with continuous timestamps, appended to a growing file at --speed times real
time) and follows it with `Library.follow` and the offline model stack.
Every few seconds it records the process's resident memory, the media indexed
so far, and the size of `browse` (the planner's overview) as JSON.

Usage: python benchmarks/follow_memory.py [--minutes 30] [--speed 8] [--visual none|ViT-B-32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from live_stream import SEGMENT, Publisher, make_segments  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--speed", type=float, default=8.0, help="publishing speed, times real time")
    ap.add_argument("--visual", default="none")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = ap.parse_args()

    from vdisc import Library

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        segments = make_segments(REPO / "tests" / "fixtures" / "talk.mp4", Path(tmp) / "segments",
                                 seconds=args.minutes * 60)
        print(f"made {len(segments)} segments ({args.minutes:g} min) in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
        growing = Path(tmp) / "stream.ts"
        growing.touch()
        lib = Library(Path(tmp) / "lib", device="cpu", offline=True,
                      models={"visual": args.visual, "caption": "none"}, notify=lambda m: None)
        for role in ("visual", "text", "asr", "ocr"):
            lib.registry.get(role)
        samples = []
        pub = Publisher(segments, SEGMENT / args.speed, growing=growing).start()
        t0 = time.perf_counter()
        handle = lib.follow(growing, idle=10.0)
        reader = Library(Path(tmp) / "lib", notify=lambda m: None)
        while handle.running:
            handle.wait(args.every)
            r = handle.report
            browse = reader.browse()
            samples.append({"wall": round(time.perf_counter() - t0, 1), "media_min": round(r.media_seconds / 60, 2),
                            "rss_mib": round(rss_mib(), 1),
                            "browse_bytes": len(json.dumps(browse.model_dump()))})
            print(json.dumps(samples[-1]), file=sys.stderr)
        pub.done.wait()
        report = handle.report
    wall = time.perf_counter() - t0
    later = [s for s in samples if s["media_min"] >= args.minutes / 4]
    out = {
        "media_minutes": round(report.media_seconds / 60, 1), "wall_seconds": round(wall, 1),
        "speed_vs_real_time": round(report.media_seconds / wall, 2), "visual": args.visual,
        "rss_mib_first_quarter_max": max(s["rss_mib"] for s in samples if s not in later) if later else None,
        "rss_mib_rest_max": max(s["rss_mib"] for s in later) if later else None,
        "rss_mib_at_end": samples[-1]["rss_mib"] if samples else None,
        "browse_bytes_min_max": [min(s["browse_bytes"] for s in later), max(s["browse_bytes"] for s in later)]
        if later else None,
        "samples": samples,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
