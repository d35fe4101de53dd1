"""How fast does the offline planner answer, on an hour-long video?

Builds a 60-minute video (the talk fixture looped: speech and on-screen text
throughout; needs ffmpeg once), indexes it with the offline stack, then:

- warm latency: 20 questions through one `Library.ask` (models loaded), p50 / p95
- cold latency: `vdisc ask` as a fresh process, including imports and model loads

Usage: python benchmarks/ask_latency.py [--minutes 60]
Targets on 2 CPU cores: warm p50 < 1 s, p95 < 2 s; cold < 6 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from index_speed import make_video

QUESTIONS = [
    "When does the cook season the broth?", "when is a spacecraft takeoff mentioned?",
    "when does the book lending building shut for tidying?", "When is a downpour forecast?",
    "when does the keeper grab the football?", "when is the name of a tropical fruit on screen?",
    "when is the harbor sign shown?", "when does the zebra crossing text appear?",
    "where do they talk about soup?", "when is dawn mentioned?", "when do they mention Sunday?",
    "when is an umbrella recommended?", "when is the goalkeeper's hand mentioned?",
    "when is salt added?", "at what point is an island mentioned?", "when is cleaning talked about?",
    "when does heavy rain come up?", "when is a ball caught?", "when is PINEAPPLE written?",
    "when does the number 42 appear?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vdisc-bench")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = make_video(args.work / f"bench_{args.minutes:g}min_480p.mp4", args.minutes)
    home = args.work / f"ask-lib-{args.minutes:g}"

    from vdisc import Library

    lib = Library(home, device="cpu", offline=True, models={"visual": "none", "caption": "none"},
                  notify=lambda m: None)
    t = time.perf_counter()
    (rep,) = lib.index(video)
    print(f"video: {video.name}, {rep.duration / 60:.0f} min, {rep.clips} clips, {rep.words} words; "
          f"index {rep.status} in {time.perf_counter() - t:.0f} s")
    lib.ask(QUESTIONS[0])  # warm up: models load on first use
    times = []
    for q in QUESTIONS:
        t = time.perf_counter()
        a = lib.ask(q)
        times.append(time.perf_counter() - t)
        print(f"  {times[-1]:.2f} s  {q} -> {a.spans[0].start if a.spans else None}", flush=True)
    p95 = statistics.quantiles(times, n=20)[-1]
    cold = []
    for q in QUESTIONS[:3]:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vdisc.cli", "ask", q, "--library", str(home), "--offline",
                        "--json"], check=True, capture_output=True,
                       env={**__import__("os").environ, "VDISC_VISUAL_MODEL": "none"})
        cold.append(time.perf_counter() - t)
    print("| measure | value |\n|---|---|")
    print(f"| warm p50 (20 questions) | {statistics.median(times):.2f} s |")
    print(f"| warm p95 | {p95:.2f} s |")
    print(f"| cold `vdisc ask` (median of 3) | {statistics.median(cold):.2f} s |")


if __name__ == "__main__":
    main()
