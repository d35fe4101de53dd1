"""Decode-only frame-sampling speed of each vdisc video backend.

Usage::

    python benchmarks/decode_speed.py                  # generated 10-min 854x480 H.264 clip
    python benchmarks/decode_speed.py VIDEO [--fps 1] [--max-side 0 512] [--backends pyav decord]

For every available backend (see ``vdisc.index.decode.available_backends``)
and every ``max_side`` it opens the video with ``open_video(path, backend)``
and drains ``reader.frames(fps, max_side)`` without doing anything with the
frames, then prints a markdown table. ``seconds`` includes opening the video
(decord builds its frame index, torchcodec scans the file in exact mode);
``x-realtime`` is video duration / seconds.

Without a path it makes a test video once (needs the ``ffmpeg`` command; the
library itself never runs it): 60 s of ``testsrc2`` with temporal noise,
854x480 at 30 fps, H.264 High ~1.5 Mb/s, keyframe every 250 frames, AAC audio,
looped by stream copy to 10 minutes. It is cached in ``$VDISC_BENCH_DIR`` or
``~/.cache/vdisc/bench``.

Its figures on the development machine are in README.md ("Benchmarks").
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_NAME = "bench_854x480_h264_10min.mp4"


def cache_dir() -> Path:
    env = os.environ.get("VDISC_BENCH_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vdisc" / "bench"


def make_test_video(out: Path, minutes: int = 10) -> Path:
    """Generate (once) the default benchmark video with the ffmpeg command."""
    if out.exists() and out.stat().st_size > 0:
        return out
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("decode_speed: no video given and no ffmpeg command to make one (apt-get install ffmpeg)")
    out.parent.mkdir(parents=True, exist_ok=True)
    clip = out.with_suffix(".clip.mp4")
    tmp = out.with_suffix(".part.mp4")
    print(f"making {out} (about 10-20 s) ...", file=sys.stderr)
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30,noise=alls=8:allf=t",
            "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100",
            "-t", "60",
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1500k", "-maxrate", "2M",
            "-bufsize", "4M", "-g", "250", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            str(clip),
        ],
        check=True,
    )
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
            "-stream_loop", str(minutes - 1), "-i", str(clip),
            "-c", "copy", "-movflags", "+faststart", str(tmp),
        ],
        check=True,
    )
    clip.unlink(missing_ok=True)
    tmp.replace(out)
    return out


def warm_cache(path: Path) -> None:
    """Read the file once so every backend starts from the same (warm) page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def time_one(path: str, backend: str, fps: float, max_side: int | None) -> tuple[float, int]:
    from vdisc.index.decode import open_video

    gc.collect()
    t0 = time.perf_counter()
    n = 0
    with open_video(path, backend) as reader:
        for _pts, _rgb in reader.frames(fps=fps, max_side=max_side):
            n += 1
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", nargs="?", help="video file (default: generated 10-min 854x480 H.264)")
    ap.add_argument("--fps", type=float, default=1.0, help="sampling rate (default 1)")
    ap.add_argument(
        "--max-side", type=int, nargs="+", default=[0, 512],
        help="max_side values to try; 0 means None (default: 0 512)",
    )
    ap.add_argument("--backends", nargs="+", default=None, help="backends to time (default: all available)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the fastest is reported")
    args = ap.parse_args(argv)

    from vdisc.index.decode import BACKENDS, available_backends, probe

    path = Path(args.video) if args.video else make_test_video(cache_dir() / DEFAULT_NAME)
    info = probe(path)
    warm_cache(path)
    avail = available_backends()
    names = args.backends or [b for b in ("pyav", "decord", "torchcodec") if b in avail]

    print(
        f"video: {path} ({info.width}x{info.height}, {info.fps:.3g} fps, {info.duration:.1f} s); "
        f"CPU: {os.cpu_count()} x {platform.machine()}; python {platform.python_version()}; "
        f"default order: {', '.join(BACKENDS)}"
    )
    print()
    print("| backend | fps | max_side | seconds | frames | x-realtime |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        reason = avail.get(name, "unknown backend")
        if reason is not None:
            print(f"| {name} | {args.fps:g} | - | unavailable: {reason} | - | - |")
            continue
        for ms in args.max_side:
            max_side = ms or None
            best, frames = float("inf"), 0
            for _ in range(max(1, args.repeat)):
                secs, frames = time_one(str(path), name, args.fps, max_side)
                best = min(best, secs)
            print(
                f"| {name} | {args.fps:g} | {max_side or 'full'} | {best:.2f} | {frames} | "
                f"{info.duration / best:.0f}x |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
