"""How often the ocr role reads a sign exactly, on a generated eval split: vdisc's reading beside RapidOCR's own.

Each video's on-screen texts (``<video>.json`` beside it, as ``scripts/make_devset.py`` writes them) are
the reference; each is read on the frame in the middle of its span. A sign counts as read when one line
of the frame, or all its lines joined top to bottom (a sign of two lines), equals the reference once runs
of spaces are folded (case kept: "pH" is not "PH"). ``raw`` is RapidOCR's output as it comes (its lines,
top to bottom); ``vdisc`` is ``OCRModel.read``: dropped word spaces put back and boxes on one row joined.

Usage::

    python scripts/make_devset.py --out /tmp/ev/dev --split dev --quick
    python benchmarks/ocr_lines.py /tmp/ev/dev /tmp/ev/test

Its figures on the development machine are in README.md ("Benchmarks").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vdisc.config import Settings
from vdisc.index import decode
from vdisc.index.models import Registry


def fold(text: str) -> str:
    return " ".join(text.split())


def read_as(lines: list[str], truth: str) -> bool:
    return fold(truth) in {fold(x) for x in lines} | {fold(" ".join(lines))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("splits", type=Path, nargs="+", help="folders of <video>.mp4 with <video>.json truth")
    ap.add_argument("--totals", action="store_true", help="print the counts only, not the signs missed "
                    "(for a held-out split whose texts should stay unread)")
    args = ap.parse_args()
    settings = Settings()
    ocr = Registry(settings).get("ocr")
    if ocr is None:
        raise SystemExit("the ocr role is off: pip install 'vdisc[offline]'")
    print("| split | signs | read exactly, RapidOCR alone | read exactly, vdisc |")
    print("|---|---|---|---|")
    for split in args.splits:
        n = raw_ok = ours_ok = 0
        misses: list[str] = []
        for truth_file in sorted(split.glob("*.json")):
            video = truth_file.with_suffix(".mp4")
            truth = json.loads(truth_file.read_text())
            if not video.exists() or not isinstance(truth, dict):
                continue
            with decode.open_video(video) as reader:
                for sign in truth.get("onscreen", []):
                    mid = 0.5 * (sign["start"] + sign["end"])
                    frames = list(reader.frames(fps=4.0, max_side=settings.max_side, start=mid, end=mid + 0.25))
                    if not frames:
                        continue
                    rgb = frames[0][1]
                    raw, _ = ocr.engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False)
                    raw_lines = [str(t) for _, t, s in sorted(raw or [], key=lambda r: (r[0][0][1], r[0][0][0]))
                                 if float(s) >= 0.5]
                    ours = [line.text for line in ocr.read(rgb)]
                    n += 1
                    raw_ok += read_as(raw_lines, sign["text"])
                    ok = read_as(ours, sign["text"])
                    ours_ok += ok
                    if not ok:
                        misses.append(f'{video.name} {mid:.1f}s "{sign["text"]}" read {ours}')
        print(f"| {split.name} | {n} | {raw_ok} ({raw_ok / max(n, 1):.2f}) | {ours_ok} ({ours_ok / max(n, 1):.2f}) |")
        for m in [] if args.totals else misses:
            print(f"    missed: {m}")


if __name__ == "__main__":
    main()
