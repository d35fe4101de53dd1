"""Word errors and time of the asr role, per Whisper beam width, on a generated eval split.

Each video's spoken lines (``<video>.json`` beside it, as ``scripts/make_devset.py`` writes them) are
the reference. The hypothesis is what ``vdisc index`` would store: the registry's asr model on the
file's 16 kHz audio. Both sides are folded by ``numwords.answer_key`` (case, punctuation, articles,
numbers as digits), so "forty" and "40" are the same word. ``seconds`` is transcription only.

Usage::

    python scripts/make_devset.py --out /tmp/ev/dev --split dev --quick
    python benchmarks/asr_words.py /tmp/ev/dev --beams 1 5

Its figures on the development machine are in README.md ("Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vdisc.config import Settings
from vdisc.index import decode
from vdisc.index.models import Registry
from vdisc.numwords import answer_key


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", type=Path, help="a folder of <video>.mp4 with <video>.json truth")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    args = ap.parse_args()
    videos = sorted(p for p in args.split.glob("*.mp4") if p.with_suffix(".json").exists())
    if not videos:
        raise SystemExit(f"no <video>.mp4 with <video>.json under {args.split}")
    audio = {v: decode.read_audio(v, sample_rate=16000) for v in videos}
    refs = {v: answer_key(" ".join(s["text"] for s in json.loads(v.with_suffix(".json").read_text())["speech"]))
            for v in videos}
    print(f"{len(videos)} videos, {sum(len(r.split()) for r in refs.values())} reference words")
    print("| beam | word error rate | seconds |\n|---|---|---|")
    for beam in args.beams:
        asr = Registry(Settings.load(device="cpu", offline=True, asr_beam=beam)).require("asr")
        errors = words = 0
        t0 = time.perf_counter()
        hyps = {v: asr.transcribe(a) for v, a in audio.items()}
        seconds = time.perf_counter() - t0
        for v, ws in hyps.items():
            ref, hyp = refs[v].split(), answer_key(" ".join(w.text for w in ws)).split()
            errors += edit_distance(ref, hyp)
            words += len(ref)
        print(f"| {beam} | {errors / words:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
