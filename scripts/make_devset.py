#!/usr/bin/env python3
"""Generate vdisc's synthetic benchmark (videos + questions), as a dev, test or holdout split.

Why: the unit-test fixtures (``tests/fixtures``) are tiny and committed; an
evaluation needs more material with known ground truth -- several short
talks and one long "needle in a haystack" video -- plus questions whose
wording paraphrases the content, so a system cannot answer by matching the
question's words against the transcript/OCR. Three splits: ``dev`` to tune
on, ``test`` to report on, from other subjects, voices, sign styles, shot
sources and phrasings, and ``holdout``, never tuned on, standing in for
videos and questions made by other people (new subjects, names, signs and
voices, questions paraphrased independently); ``scripts/benchmark/dev.py``,
``test.py`` and ``holdout.py`` hold the data (``dev.py`` describes its
format). Everything is synthetic (ffmpeg test sources, drawtext, espeak-ng),
generated on demand and never committed.

What the material holds, so the benchmark can see it: events longer than a
sentence (a two-sentence turn), signs that stay up across a cut and a clip
boundary, similar lines at different times (an alarm starting vs stopping),
things that never happen (questions answered "not found"), counting,
ordering, anchored questions ("what is shown while ..."), multiple choice,
the whole-video topic, several espeak-ng voices and sign fonts, colours and
positions.

What it writes into ``--out DIR``:

``<name>.mp4`` (+ ``<name>.json`` ground truth), three or four short videos
    70-90 s each, 480x270, 25 fps CFR, H.264 + AAC mono 22.05 kHz, built by
    ``make_fixtures.make_spoken_video`` (same format as ``talk.mp4``):
    hard cuts at whole seconds, espeak-ng speech measured from the WAV,
    drawtext words on a box at frame-exact times.

``needle.mp4`` (+ ``needle.json``)
    ``--needle-minutes`` long (default 60; ``--quick`` = 5), 320x180, 25 fps,
    H.264 (no B-frames) + AAC. Filler: one-minute segments of slowly
    drifting two-colour gradients (a hard cut every minute) and a neutral
    sentence every second minute; four distinctive moments (speech and/or
    on-screen text) and one word shown three times. Segments are encoded in
    parallel and joined with the concat demuxer (``-c copy``); the audio is
    one full-length WAV encoded once, so speech times are sample exact.

``devset.jsonl`` (dev) / ``testset.jsonl`` (test) / ``holdoutset.jsonl`` (holdout)
    One question per line::

        {"video": "<file in DIR>", "question": str, "spans": [[s, e], ...],
         "answer": str | null, "options": [str] | null, "kind": str}

    kinds: when_speech, when_text, fact, choice, multi_hop, ordering,
    counting, whole_video, absent. Spans are the true speech (measured) /
    on-screen intervals in seconds; multi_hop spans are the overlap of the
    text and the speech; counting and ordering spans hold every event;
    whole_video and absent spans are [] (absent answers are "not found").

The output is deterministic for a given espeak-ng / ffmpeg version.

Usage::

    python scripts/make_devset.py --out DIR [--split dev|test|holdout] [--needle-minutes 60] [--quick] [--jobs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import ImageFont

_HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("vdisc_make_fixtures", _HERE / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)

W, H, FPS = mf.TALK_W, mf.TALK_H, mf.TALK_FPS
SR = mf.TALK_SR
S = f"s={W}x{H}:r={FPS}"


def log(msg: str) -> None:
    print(f"[make_devset] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# shot sources (480x270 @ 25 fps)
# --------------------------------------------------------------------------
def grad(c0: str, c1: str, seed: int, flip: bool = False) -> str:
    y0, y1 = (H, 0) if flip else (0, H)
    return (f"gradients={S}:c0=0x{c0}:c1=0x{c1}:x0=0:y0={y0}:x1={W}:y1={y1}"
            f":n=2:seed={seed}:speed=0.004")


BARS = f"smptebars={S}"
HDBARS = f"smptehdbars={S}"
RGBTEST = f"rgbtestsrc={S}"
MANDEL = f"mandelbrot={S}:end_pts=100000"


def cell(seed: int) -> str:
    return (f"cellauto=s=120x68:r={FPS}:rule=110:seed={seed}:random_fill_ratio=0.5:scroll=1,"
            f"scale={W}:{H}:flags=neighbor,format=rgb24,lutrgb=b=0")


def life(seed: int) -> str:
    return (f"life=s=120x68:r={FPS}:seed={seed}:ratio=0.3:mold=10:"
            f"life_color=#30ff60:death_color=#802020:mold_color=#102040,"
            f"scale={W}:{H}:flags=neighbor")


def plasma(phase: float) -> str:
    return (f"color=c=black:{S},format=rgb24,"
            f"geq=r='20+10*sin(X/41+T*0.6+{phase})':"
            f"g='110+45*sin(X/37+T*0.8)*cos(Y/29-T*0.5)':"
            f"b='40+20*cos((X+Y)/53-T*0.7)'")


def shots_from(durs_srcs: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    out, t = [], 0
    for d, src in durs_srcs:
        out.append((t, t + d, src))
        t += d
    return out


def source(spec: tuple) -> str:
    """A shot source named in a split's data: ("grad", c0, c1, seed[, flip]), ("bars",), ("cell", seed)..."""
    kind, *args = spec
    fixed = {"bars": BARS, "hdbars": HDBARS, "rgbtest": RGBTEST, "mandel": MANDEL}
    if kind in fixed:
        return fixed[kind]
    return {"grad": grad, "cell": cell, "life": life, "plasma": plasma}[kind](*args)


def load_split(name: str):
    """The data module of a split (``scripts/benchmark/<name>.py``)."""
    spec = importlib.util.spec_from_file_location(f"vdisc_benchmark_{name}", _HERE / "benchmark" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------
# needle video
# --------------------------------------------------------------------------
NW, NH = 320, 180
SEG = 60  # seconds per filler segment (a hard cut at every segment boundary)
FILLER_OFFSET = 5.0  # a filler sentence at this offset in every second segment


def needle_palette(i: int, seed: int) -> tuple[str, str]:
    """Two muted colours for segment ``i``; consecutive segments differ strongly."""
    import colorsys
    h = (i * 0.381966 + (seed - 100) * 0.137) % 1.0  # golden-ratio hue walk from a split's own start
    a = colorsys.hsv_to_rgb(h, 0.55, 0.30)
    b = colorsys.hsv_to_rgb((h + 0.08) % 1.0, 0.45, 0.75)
    hexc = lambda c: "".join(f"{int(round(v * 255)):02x}" for v in c)  # noqa: E731
    return hexc(a), hexc(b)


def render_needle_segment(path: Path, i: int, texts: list[tuple[str, float, float]], fontsize: int,
                          seed: int) -> None:
    c0, c1 = needle_palette(i, seed)
    chain = (f"gradients=s={NW}x{NH}:r={FPS}:c0=0x{c0}:c1=0x{c1}:x0=0:y0=0:x1={NW}:y1={NH}"
             f":n=2:seed={seed + i}:speed=0.002")
    for text, t0, t1 in texts:
        chain += (
            f",drawtext=fontfile='{mf.FONT_BOLD}':text='{mf._esc_text(text)}'"
            f":fontsize={fontsize}:fontcolor=white:box=1:boxcolor=black"
            f":boxborderw=10:x=(w-text_w)/2:y=(h-text_h)/2"
            f":enable='gte(n,{round(t0 * FPS)})*lt(n,{round(t1 * FPS)})'"
        )
    chain += ",format=yuv420p"
    mf.run(
        mf.FFMPEG
        + ["-f", "lavfi", "-i", chain, "-frames:v", str(SEG * FPS), "-an",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-bf", "0",
           "-pix_fmt", "yuv420p", "-r", str(FPS), "-fps_mode", "cfr",
           "-x264-params", "keyint=250:min-keyint=25", "-threads", "1"]
        + mf.BITEXACT + [str(path)],
        capture_output=True,
    )


def make_needle(out: Path, tmp: Path, minutes: int, jobs: int, spec: dict, seed: int) -> dict:
    nseg = minutes
    duration = nseg * SEG
    font = ImageFont.truetype(str(mf.FONT_BOLD), spec["fontsize"])

    seg_texts: dict[int, list[tuple[str, float, float]]] = {}
    onscreen: list[dict] = []
    speech: list[dict] = []
    events: list[dict] = []

    def add_text(seg: int, text: str, t0: float, t1: float) -> dict:
        for v in (t0, t1):
            if abs(v * FPS - round(v * FPS)) > 1e-6:
                raise RuntimeError(f"needle on-screen time {v} is not on a frame boundary")
        x0, _, x1, _ = font.getbbox(text)
        if x1 - x0 + 20 > NW:
            raise RuntimeError(f"needle text {text!r} is too wide")
        for a, b in [(x[1], x[2]) for x in seg_texts.get(seg, [])]:
            if t0 < b and a < t1:
                raise RuntimeError(f"needle text {text!r} overlaps another text")
        seg_texts.setdefault(seg, []).append((text, t0, t1))
        rec = {"text": text, "start": round(seg * SEG + t0, 3), "end": round(seg * SEG + t1, 3)}
        onscreen.append(rec)
        return rec

    # audio track, int16 to keep an hour at 22.05 kHz small (~160 MB)
    track = np.zeros(duration * SR, dtype=np.int16)
    clip_cache: dict[str, np.ndarray] = {}

    def add_speech(text: str, start: float) -> dict:
        if text not in clip_cache:
            x = mf.synth_sentence(text, tmp, len(clip_cache), prefix="needle_say")
            clip_cache[text] = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        clip = clip_cache[text]
        a = int(round(start * SR))
        b = a + len(clip)
        seg = int(start // SEG)
        if b / SR + 0.3 > (seg + 1) * SEG:
            raise RuntimeError(f"needle sentence {text!r} crosses a segment boundary")
        if track[a:b].any():
            raise RuntimeError(f"needle sentence {text!r} overlaps another sentence")
        track[a:b] = clip
        rec = {"text": text, "start": round(start, 3), "end": round(b / SR, 3)}
        speech.append(rec)
        return rec

    used = set()
    for k, (frac, off, sent, txt) in enumerate(spec["events"]):
        seg = int(frac * nseg)
        if seg in used:
            raise RuntimeError("--needle-minutes too small: two needle events share a segment")
        used.add(seg)
        ev: dict = {"segment": seg}
        if sent:
            ev["speech"] = add_speech(sent, seg * SEG + off)
        if txt:
            ev["onscreen"] = add_text(seg, *txt)
        events.append(ev)
    rep_text, rep_fracs, rep_t0, rep_t1 = spec["repeat"]
    repeats = [add_text(int(f * nseg), rep_text, rep_t0, rep_t1) for f in rep_fracs]
    if len({r["start"] for r in repeats}) != len(repeats):
        raise RuntimeError("--needle-minutes too small: repeated text collides")
    j = 0
    for seg in range(0, nseg, 2):
        add_speech(spec["filler"][j % len(spec["filler"])], seg * SEG + FILLER_OFFSET)
        j += 1
    speech.sort(key=lambda r: r["start"])
    onscreen.sort(key=lambda r: r["start"])

    wav = tmp / "needle_audio.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(track.tobytes())
    track = np.zeros(0, dtype=np.int16)  # free the hour of audio (the closure above still names it)

    segdir = tmp / "needle_segs"
    segdir.mkdir(exist_ok=True)
    paths = [segdir / f"seg{i:04d}.mp4" for i in range(nseg)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        list(ex.map(lambda i: render_needle_segment(paths[i], i, seg_texts.get(i, []), spec["fontsize"], seed),
                    range(nseg)))
    log(f"needle: rendered {nseg} segments in {time.monotonic() - t0:.1f}s")
    lst = tmp / "needle_list.txt"
    lst.write_text("".join(f"file '{p}'\n" for p in paths))
    dst = out / "needle.mp4"
    mf.run(
        mf.FFMPEG
        + ["-f", "concat", "-safe", "0", "-i", str(lst), "-i", str(wav),
           "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", "-b:a", "32k", "-ac", "1", "-ar", str(SR),
           "-t", str(duration), "-movflags", "+faststart"]
        + mf.BITEXACT + [str(dst)],
        capture_output=True,
    )
    truth = {
        "duration": float(duration), "fps": FPS, "width": NW, "height": NH,
        "shots": [[float(i * SEG), float((i + 1) * SEG)] for i in range(nseg)],
        "speech": speech, "onscreen": onscreen, "events": events, "repeats": repeats,
    }
    (out / "needle.json").write_text(json.dumps(truth, indent=2) + "\n")
    log(f"wrote {dst} ({dst.stat().st_size} bytes) and needle.json")
    return truth


def q(video: str, kind: str, question: str, spans: list, answer: str | None = None,
      options: list[str] | None = None) -> dict:
    return {"video": video, "question": question,
            "spans": [[round(float(a), 3), round(float(b), 3)] for a, b in spans],
            "answer": answer, "options": options, "kind": kind}


def resolve(ref: tuple, truth: dict, video: str) -> list[list[float]]:
    """The measured spans a question's ref names (see ``benchmark/dev.py``)."""
    kind = ref[0]
    if kind == "overlap":
        (t,), (s,) = resolve(ref[1], truth, video), resolve(ref[2], truth, video)
        a, b = max(t[0], s[0]), min(t[1], s[1])
        if not a < b:
            raise RuntimeError(f"{video}: {ref}: the text and the speech do not overlap")
        return [[a, b]]
    pool, words = (truth["speech"], ref[1]) if kind[0] == "s" else (truth["onscreen"], ref[1])
    hits = [[r["start"], r["end"]] for r in pool
            if (r["text"].startswith(words) if kind[0] == "s" else r["text"] == words)]
    if not hits:
        raise RuntimeError(f"{video}: {ref} names nothing in the video")
    if kind.endswith("*"):
        return hits
    k = ref[2] if len(ref) > 2 else 0
    if kind[0] == "s" and len(hits) > 1 and len(ref) < 3:
        raise RuntimeError(f"{video}: {ref} is ambiguous: say which occurrence")
    return [hits[k]]


def questions_for(video: str, specs: list[tuple], truth: dict) -> list[dict]:
    out = []
    for kind, question, refs, answer, options in specs:
        spans = [s for ref in refs for s in resolve(ref, truth, video)]
        if kind == "ordering":
            assert options is not None and answer in options and len(spans) == 2
            first = options[0] if spans[0][0] < spans[1][0] else options[1]
            if first != answer:
                raise RuntimeError(f"{video}: ordering answer is wrong: {question}")
        if kind == "counting" and answer is not None and int(answer) != len(spans):
            raise RuntimeError(f"{video}: counting answer {answer} but {len(spans)} spans: {question}")
        if options is not None and answer not in options:
            raise RuntimeError(f"{video}: the answer is not one of the options: {question}")
        out.append(q(video, kind, question, spans, answer, options))
    return out


def probe_duration(path: Path) -> float:
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                        "-of", "default=nw=1:nk=1", str(path)],
                       check=True, capture_output=True, text=True)
    return float(r.stdout.strip())


SPLITS = {"dev": ("devset.jsonl", 100), "test": ("testset.jsonl", 500),
          "holdout": ("holdoutset.jsonl", 900)}  # file, needle seed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--split", choices=sorted(SPLITS), default="dev",
                    help="dev (tune on it), test (report on it; other videos, voices and phrasings) or "
                         "holdout (never tune on it; new subjects and independently paraphrased questions)")
    ap.add_argument("--needle-minutes", type=int, default=60,
                    help="length of the needle video in minutes (default 60, min 5)")
    ap.add_argument("--quick", action="store_true", help="5-minute needle video")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                    help="parallel ffmpeg encodes for the needle segments")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary work dir")
    ap.add_argument("--questions-only", action="store_true",
                    help="rewrite only the questions file, from the videos' ground truth already in --out")
    args = ap.parse_args(argv)
    minutes = 5 if args.quick else args.needle_minutes
    if minutes < 5:
        ap.error("--needle-minutes must be at least 5")

    mf.require_tools()
    split = load_split(args.split)
    jsonl_name, seed = SPLITS[args.split]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vdisc_devset_"))
    t_start = time.monotonic()
    questions: list[dict] = []
    try:
        for spec in split.SHORT_VIDEOS:
            shots = shots_from([(d, source(src)) for d, src in spec["shots"]])
            if not args.questions_only:
                mf.make_spoken_video(out, tmp, spec["name"], shots, spec["speech"], spec["onscreen"],
                                     spec["fontsize"])
            truth = json.loads((out / f"{spec['name']}.json").read_text())
            questions += questions_for(f"{spec['name']}.mp4", spec["questions"], truth)
        needle = (json.loads((out / "needle.json").read_text()) if args.questions_only
                  else make_needle(out, tmp, minutes, args.jobs, split.NEEDLE, seed))
        questions += questions_for("needle.mp4", split.NEEDLE["questions"], needle)
    finally:
        if args.keep_temp:
            log(f"temp files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # validate and write
    videos = [f"{s['name']}.mp4" for s in split.SHORT_VIDEOS] + ["needle.mp4"]
    durations = {v: probe_duration(out / v) for v in videos}
    for item in questions:
        d = durations[item["video"]]
        for a, b in item["spans"]:
            if not (0.0 <= a < b <= d + 1e-6):
                raise RuntimeError(f"span {[a, b]} outside {item['video']} ({d}s): {item}")
        if item["kind"] not in ("whole_video", "absent") and not item["spans"]:
            raise RuntimeError(f"question without spans: {item}")
    jsonl = out / jsonl_name
    jsonl.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in questions))

    kinds: dict[str, int] = {}
    per_video: dict[str, int] = {}
    for x in questions:
        kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        per_video[x["video"]] = per_video.get(x["video"], 0) + 1
    print(f"{args.split} split written to {out} in {time.monotonic() - t_start:.1f}s")
    print(f"{'file':<22}{'size':>12}{'duration':>11}{'questions':>11}")
    for v in videos:
        print(f"{v:<22}{(out / v).stat().st_size:>12,}{durations[v]:>10.2f}s"
              f"{per_video.get(v, 0):>11}")
    print(f"{jsonl.name:<22}{jsonl.stat().st_size:>12,}")
    print(f"questions: {len(questions)}  by kind: "
          + ", ".join(f"{k}={kinds[k]}" for k in sorted(kinds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
