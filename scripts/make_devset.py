#!/usr/bin/env python3
"""Generate vdisc's synthetic development benchmark (videos + questions).

Why: the unit-test fixtures (``tests/fixtures``) are tiny and committed; an
evaluation needs more material with known ground truth -- several short
talks and one long "needle in a haystack" video -- plus questions whose
wording paraphrases the content, so a system cannot answer by matching the
question's words against the transcript/OCR.  Everything is synthetic
(ffmpeg test sources, drawtext, espeak-ng), generated on demand and never
committed.

What it writes into ``--out DIR``:

``travel_briefing.mp4``, ``lab_report.mp4``, ``sports_recap.mp4``,
``museum_tour.mp4`` (+ ``<name>.json`` ground truth)
    72-90 s each, 480x270, 25 fps CFR, H.264 + AAC mono 22.05 kHz, built by
    ``make_fixtures.make_spoken_video`` (same format as ``talk.mp4``):
    hard cuts at whole seconds, espeak-ng speech measured from the WAV,
    drawtext words on a dark box at frame-exact times.

``needle.mp4`` (+ ``needle.json``)
    ``--needle-minutes`` long (default 60; ``--quick`` = 5), 320x180, 25 fps,
    H.264 (no B-frames) + AAC.  Filler: one-minute segments of slowly
    drifting two-colour gradients (a hard cut every minute) and a neutral
    sentence every second minute.  Events: four distinctive moments (spoken
    sentence and/or on-screen text) at ~12/37/62/87 % of the duration, and
    one word shown three times at ~25/50/75 %.  Segments are encoded in
    parallel and joined with the concat demuxer (``-c copy``); the audio
    is one full-length WAV encoded once, so speech times are sample exact.

``devset.jsonl``
    One question per line::

        {"video": "<file in DIR>", "question": str, "spans": [[s, e], ...],
         "answer": str | null, "options": [str] | null, "kind": str}

    kinds: when_speech, when_text, fact, multi_hop, ordering, counting,
    whole_video.  Spans are the true speech (measured) / on-screen
    intervals in seconds; multi_hop spans are the overlap of the text and
    the speech; ordering spans hold both events; whole_video spans are [].

The output is deterministic for a given espeak-ng / ffmpeg version.

Usage::

    python scripts/make_devset.py --out DIR [--needle-minutes 60] [--quick] [--jobs N]
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


# --------------------------------------------------------------------------
# short videos: shots, speech (text, start), on-screen (text, start, end),
# and questions.  Questions reference speech by index ("s", i) and on-screen
# text by index ("t", i); spans are resolved after measuring the audio.
# --------------------------------------------------------------------------
SHORT_VIDEOS: list[dict] = [
    {
        "name": "travel_briefing",
        "fontsize": 40,
        "shots": shots_from([
            (11, grad("0b3d2e", "3fbf8a", 21)),
            (13, MANDEL),
            (9, cell(5)),
            (14, grad("4a1d08", "d0783a", 22, True)),
            (13, plasma(0.0)),
            (12, HDBARS),
            (12, grad("101050", "7070e0", 23)),
        ]),
        "speech": [
            ("Our flight to Lisbon departs at seven fifteen from gate twelve.", 1.0),
            ("Maria Costa booked three nights at a hotel near the old castle.", 12.0),
            ("The train from Porto takes about three hours along the coast.", 25.0),
            ("Remember to pack the blue suitcase with the hiking boots.", 35.0),
            ("On the last day we will visit the famous tile museum.", 49.0),
            ("The return ticket cost four hundred and twenty euros.", 62.0),
            ("Everyone should be at the airport two hours early.", 74.0),
        ],
        "onscreen": [
            ("LISBON", 6.0, 10.0),
            ("ROOM 305", 12.4, 16.0),
            ("PASSPORT", 18.0, 22.0),
            ("PLATFORM 4", 29.8, 32.4),
            ("PASSPORT", 40.0, 44.0),
            ("DAY 3", 54.0, 58.0),
            ("PASSPORT", 78.0, 82.0),
        ],
        "questions": [
            ("when_speech", "When does the narrator remind viewers to bring trekking footwear "
             "in the navy-coloured luggage?", [("s", 3)], None, None),
            ("when_text", "When is the name of Portugal's capital displayed on screen?",
             [("t", 0)], None, None),
            ("fact", "According to the narrator, what was the price of the homeward fare, in the European "
             "currency?",
             [("s", 5)], "420", None),
            ("fact", "Which boarding door number is given for the departing plane?",
             [("s", 0)], "12", None),
            ("multi_hop", "What text appears on screen while the speaker talks about the "
             "lodging reservation next to the fortress?", [("overlap", "t", 1, "s", 1)],
             "ROOM 305", None),
            ("ordering", "Which is mentioned first: the rail journey beside the seaside, or the "
             "trip to the glazed-ceramics exhibition?", [("s", 2), ("s", 4)],
             "the rail journey beside the seaside",
             ["the rail journey beside the seaside", "the trip to the glazed-ceramics exhibition"]),
            ("counting", "How many separate times does the word for the official travel "
             "identity document appear as on-screen text?", [("t", 2), ("t", 4), ("t", 6)],
             "3", None),
            ("whole_video", "What is this video mostly about?", [],
             "planning a trip to Portugal: flight, hotel, train, packing, museum visit and "
             "ticket price", None),
        ],
    },
    {
        "name": "lab_report",
        "fontsize": 40,
        "shots": shots_from([
            (10, BARS),
            (12, grad("3a0a0a", "e05050", 31)),
            (9, life(4)),
            (13, grad("0a2a3a", "40c0e0", 32, True)),
            (9, MANDEL),
            (10, cell(9)),
            (9, grad("2a2a00", "d0d040", 33)),
        ]),
        "speech": [
            ("Doctor Hannah Okafor measured the sample at minus forty degrees.", 1.0),
            ("We placed nine glass beakers on the steel table.", 11.0),
            ("The microscope revealed tiny green crystals after two days.", 23.0),
            ("Our assistant Pedro spilled the vinegar near the window.", 33.0),
            ("The final report is due on the fourteenth of March.", 45.0),
            ("Tomorrow we will repeat the test with fresh copper wire.", 54.0),
        ],
        "onscreen": [
            ("SAMPLE B7", 1.4, 4.0),
            ("CAUTION", 6.0, 9.0),
            ("pH 4.5", 15.0, 20.0),
            ("TRIAL 2", 27.4, 30.0),
            ("CAUTION", 39.0, 43.0),
            ("LAB 6", 48.8, 52.0),
            ("CAUTION", 64.0, 69.0),
        ],
        "questions": [
            ("when_speech", "When does someone mention a helper knocking over the sour liquid "
             "by the glass pane?", [("s", 3)], None, None),
            ("when_text", "When is the acidity reading displayed on screen?",
             [("t", 2)], None, None),
            ("fact", "What temperature did the scientist record for the specimen?",
             [("s", 0)], "-40", None),
            ("fact", "What is the family name of the physician who took the cold measurement?",
             [("s", 0)], "Okafor", None),
            ("multi_hop", "Which label is shown on screen while the physician's low-temperature "
             "measurement is described?", [("overlap", "t", 0, "s", 0)], "SAMPLE B7", None),
            ("ordering", "Which is mentioned first: the deadline for the write-up, or the small "
             "emerald-coloured formations seen under magnification?", [("s", 4), ("s", 2)],
             "the small emerald-coloured formations seen under magnification",
             ["the deadline for the write-up",
              "the small emerald-coloured formations seen under magnification"]),
            ("counting", "How many times does the warning word appear on screen?",
             [("t", 1), ("t", 4), ("t", 6)], "3", None),
            ("whole_video", "What is this video mostly about?", [],
             "a science laboratory experiment: measurements, equipment, observations, a "
             "mishap and the report deadline", None),
        ],
    },
    {
        "name": "sports_recap",
        "fontsize": 40,
        "shots": shots_from([
            (12, grad("003a10", "30c060", 41)),
            (11, RGBTEST),
            (12, plasma(1.5)),
            (11, grad("3a003a", "c040c0", 42, True)),
            (11, cell(13)),
            (9, HDBARS),
            (9, grad("402000", "f0a020", 43)),
        ]),
        "speech": [
            ("The Tigers beat the Falcons by three goals to one on Saturday.", 1.0),
            ("Striker Lena Novak scored twice in the second half.", 13.0),
            ("More than eighteen thousand fans filled the stadium in Glasgow.", 24.0),
            ("The coach blamed the wet grass for the early mistakes.", 36.0),
            ("Next week the team travels to Dublin for the semi final.", 47.0),
            ("Tickets for that match go on sale on Monday morning.", 58.0),
        ],
        "onscreen": [
            ("GOAL", 7.0, 10.0),
            ("NOVAK 9", 13.4, 16.0),
            ("GOAL", 19.0, 22.0),
            ("GOAL", 41.0, 44.0),
            ("DUBLIN", 52.0, 55.0),
            ("SCORE 3-1", 67.0, 73.0),
        ],
        "questions": [
            ("when_speech", "When does the narrator say the trainer put the blame on the damp "
             "pitch?", [("s", 3)], None, None),
            ("when_text", "When does the name of Ireland's capital appear on screen?",
             [("t", 4)], None, None),
            ("fact", "How many spectators attended the game, according to the narrator?",
             [("s", 2)], "18000", None),
            ("multi_hop", "What is written on screen while the forward's double strike in the "
             "later period is described?", [("overlap", "t", 1, "s", 1)], "NOVAK 9", None),
            ("ordering", "Which is mentioned first: the upcoming trip to Ireland, or the crowd "
             "size in Scotland?", [("s", 4), ("s", 2)], "the crowd size in Scotland",
             ["the upcoming trip to Ireland", "the crowd size in Scotland"]),
            ("counting", "How many times is the scoring celebration word shown on screen?",
             [("t", 0), ("t", 2), ("t", 3)], "3", None),
            ("whole_video", "What is this video mostly about?", [],
             "a football (soccer) match recap: result, scorer, crowd, coach's excuse and the "
             "next game", None),
        ],
    },
    {
        "name": "museum_tour",
        "fontsize": 40,
        "shots": shots_from([
            (13, grad("1a1a1a", "909090", 51)),
            (12, MANDEL),
            (11, grad("003040", "00c0b0", 52, True)),
            (14, life(8)),
            (12, grad("400010", "ff5080", 53)),
            (13, BARS),
            (15, plasma(3.0)),
        ]),
        "speech": [
            ("Welcome to the city museum, which opened in eighteen ninety two.", 1.0),
            ("This bronze statue of a horse weighs nearly two tonnes.", 14.0),
            ("The museum closes at five o'clock today.", 26.0),
            ("The painter Clara Weiss lived in Vienna for twenty years.", 38.0),
            ("Please do not touch the silver teapot in room eight.", 51.0),
            ("The museum closes at five o'clock today.", 64.0),
            ("Our gift shop sells postcards of every painting.", 77.0),
        ],
        "onscreen": [
            ("GALLERY A", 6.0, 10.0),
            ("NO FLASH", 14.4, 18.0),
            ("VIENNA 1901", 44.0, 48.0),
            ("ROOM 8", 51.4, 54.0),
            ("EXIT", 84.0, 88.0),
        ],
        "questions": [
            ("when_speech", "When does the guide ask visitors to keep their hands off the tea "
             "vessel made of precious metal?", [("s", 4)], None, None),
            ("when_text", "When is the Austrian capital's name, together with a year, shown on "
             "screen?", [("t", 2)], None, None),
            ("fact", "In what year did the institution first open its doors, according to the "
             "guide?", [("s", 0)], "1892", None),
            ("counting", "How many times does the guide announce the daily closing hour?",
             [("s", 2), ("s", 5)], "2", None),
            ("ordering", "Which comes first: the remark about the heavy metal sculpture of an "
             "animal, or the biography of the female artist?", [("s", 1), ("s", 3)],
             "the remark about the heavy metal sculpture of an animal",
             ["the remark about the heavy metal sculpture of an animal",
              "the biography of the female artist"]),
            ("multi_hop", "What sign is shown on screen while the guide describes the weight of "
             "the equine sculpture?", [("overlap", "t", 1, "s", 1)], "NO FLASH", None),
            ("whole_video", "What is this video mostly about?", [],
             "a guided tour of a city museum: its history, exhibits, an artist and visiting "
             "rules", None),
        ],
    },
]

# --------------------------------------------------------------------------
# needle video
# --------------------------------------------------------------------------
NW, NH = 320, 180
SEG = 60  # seconds per filler segment (a hard cut at every segment boundary)
NEEDLE_FONTSIZE = 28
FILLER_SENTENCES = [
    "The colours keep drifting slowly across the screen.",
    "Nothing in particular is happening right now.",
    "Let us keep watching quietly for a little while.",
    "The picture changes very gradually over time.",
    "This is a calm and uneventful stretch of video.",
]
FILLER_OFFSET = 5.0  # a filler sentence at this offset in every second segment
# (fraction of the duration -> segment index, offset in segment, speech, on-screen (text, t0, t1)
#  relative to the segment start)
NEEDLE_EVENTS: list[tuple[float, float, str | None, tuple[str, float, float] | None]] = [
    (0.12, 20.0, "Captain Rosa Delgado found a golden compass under the old bridge.", None),
    (0.37, 20.0, None, ("LOCKER 58", 20.0, 28.0)),
    (0.62, 20.0, "The delivery truck carried six hundred pumpkins to Madrid.",
     ("ORDER 4410", 20.4, 24.0)),
    (0.87, 20.0, "The password for the greenhouse is purple giraffe.", None),
]
NEEDLE_REPEAT = ("CHECKPOINT", [0.25, 0.50, 0.75], 40.0, 46.0)


def needle_palette(i: int) -> tuple[str, str]:
    """Two muted colours for segment ``i``; consecutive segments differ strongly."""
    import colorsys
    h = (i * 0.381966) % 1.0  # golden-ratio hue walk
    a = colorsys.hsv_to_rgb(h, 0.55, 0.30)
    b = colorsys.hsv_to_rgb((h + 0.08) % 1.0, 0.45, 0.75)
    hexc = lambda c: "".join(f"{int(round(v * 255)):02x}" for v in c)  # noqa: E731
    return hexc(a), hexc(b)


def render_needle_segment(path: Path, i: int, texts: list[tuple[str, float, float]]) -> None:
    c0, c1 = needle_palette(i)
    chain = (f"gradients=s={NW}x{NH}:r={FPS}:c0=0x{c0}:c1=0x{c1}:x0=0:y0=0:x1={NW}:y1={NH}"
             f":n=2:seed={100 + i}:speed=0.002")
    for text, t0, t1 in texts:
        chain += (
            f",drawtext=fontfile='{mf.FONT_BOLD}':text='{mf._esc_text(text)}'"
            f":fontsize={NEEDLE_FONTSIZE}:fontcolor=white:box=1:boxcolor=black"
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


def make_needle(out: Path, tmp: Path, minutes: int, jobs: int) -> dict:
    nseg = minutes
    duration = nseg * SEG
    font = ImageFont.truetype(str(mf.FONT_BOLD), NEEDLE_FONTSIZE)

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
    for k, (frac, off, sent, txt) in enumerate(NEEDLE_EVENTS):
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
    rep_text, rep_fracs, rep_t0, rep_t1 = NEEDLE_REPEAT
    repeats = [add_text(int(f * nseg), rep_text, rep_t0, rep_t1) for f in rep_fracs]
    if len({r["start"] for r in repeats}) != len(repeats):
        raise RuntimeError("--needle-minutes too small: repeated text collides")
    j = 0
    for seg in range(0, nseg, 2):
        add_speech(FILLER_SENTENCES[j % len(FILLER_SENTENCES)], seg * SEG + FILLER_OFFSET)
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
        list(ex.map(lambda i: render_needle_segment(paths[i], i, seg_texts.get(i, [])),
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


def needle_questions(truth: dict) -> list[dict]:
    e1, e2, e3, e4 = truth["events"]
    sp = lambda r: [r["start"], r["end"]]  # noqa: E731
    s3, t3 = e3["speech"], e3["onscreen"]
    ov = [max(s3["start"], t3["start"]), min(s3["end"], t3["end"])]
    assert ov[0] < ov[1]
    v = "needle.mp4"
    return [
        q(v, "when_speech", "When does someone describe a ship's officer discovering a "
          "navigation instrument beneath a river crossing?", [sp(e1["speech"])]),
        q(v, "when_text", "When does the label of a numbered storage cabinet appear on screen?",
          [sp(e2["onscreen"])]),
        q(v, "fact", "What number is written on the storage cabinet label shown in the video?",
          [sp(e2["onscreen"])], "58"),
        q(v, "fact", "What secret phrase is given for getting into the glass plant house?",
          [sp(e4["speech"])], "purple giraffe"),
        q(v, "multi_hop", "What is displayed on screen while the speaker talks about a lorry "
          "hauling autumn squash to the Spanish capital?", [ov], "ORDER 4410"),
        q(v, "ordering", "Which happens first: the discovery of the navigation instrument, or "
          "the mention of the access phrase for the glass plant house?",
          [sp(e1["speech"]), sp(e4["speech"])], "the discovery of the navigation instrument",
          ["the discovery of the navigation instrument",
           "the mention of the access phrase for the glass plant house"]),
        q(v, "counting", "How many times does the word for an inspection station appear on "
          "screen?", [sp(r) for r in truth["repeats"]], str(len(truth["repeats"]))),
        q(v, "whole_video", "What is this long video mostly made of?", [],
          "slowly changing coloured backgrounds with sparse calm narration, plus a few brief "
          "notable moments"),
    ]


def q(video: str, kind: str, question: str, spans: list, answer: str | None = None,
      options: list[str] | None = None) -> dict:
    return {"video": video, "question": question,
            "spans": [[round(float(a), 3), round(float(b), 3)] for a, b in spans],
            "answer": answer, "options": options, "kind": kind}


def short_questions(spec: dict, truth: dict) -> list[dict]:
    video = f"{spec['name']}.mp4"
    out = []
    for kind, question, refs, answer, options in spec["questions"]:
        spans = []
        for ref in refs:
            if ref[0] == "s":
                r = truth["speech"][ref[1]]
                spans.append([r["start"], r["end"]])
            elif ref[0] == "t":
                r = truth["onscreen"][ref[1]]
                spans.append([r["start"], r["end"]])
            else:  # ("overlap", "t", i, "s", j)
                t = truth["onscreen"][ref[2]]
                s = truth["speech"][ref[4]]
                a, b = max(t["start"], s["start"]), min(t["end"], s["end"])
                if not a < b:
                    raise RuntimeError(f"{video}: multi_hop text and speech do not overlap")
                spans.append([a, b])
        if kind == "ordering":
            assert options is not None and answer in options
            first = options[0] if spans[0][0] < spans[1][0] else options[1]
            if first != answer:
                raise RuntimeError(f"{video}: ordering answer is wrong: {question}")
        out.append(q(video, kind, question, spans, answer, options))
    return out


def probe_duration(path: Path) -> float:
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                        "-of", "default=nw=1:nk=1", str(path)],
                       check=True, capture_output=True, text=True)
    return float(r.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--needle-minutes", type=int, default=60,
                    help="length of the needle video in minutes (default 60, min 5)")
    ap.add_argument("--quick", action="store_true", help="5-minute needle video")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                    help="parallel ffmpeg encodes for the needle segments")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary work dir")
    args = ap.parse_args(argv)
    minutes = 5 if args.quick else args.needle_minutes
    if minutes < 5:
        ap.error("--needle-minutes must be at least 5")

    mf.require_tools()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vdisc_devset_"))
    t_start = time.monotonic()
    questions: list[dict] = []
    try:
        for spec in SHORT_VIDEOS:
            mf.make_spoken_video(out, tmp, spec["name"], spec["shots"], spec["speech"],
                                 spec["onscreen"], spec["fontsize"])
            truth = json.loads((out / f"{spec['name']}.json").read_text())
            questions += short_questions(spec, truth)
        needle = make_needle(out, tmp, minutes, args.jobs)
        questions += needle_questions(needle)
    finally:
        if args.keep_temp:
            log(f"temp files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # validate and write
    videos = [f"{s['name']}.mp4" for s in SHORT_VIDEOS] + ["needle.mp4"]
    durations = {v: probe_duration(out / v) for v in videos}
    for item in questions:
        d = durations[item["video"]]
        for a, b in item["spans"]:
            if not (0.0 <= a < b <= d + 1e-6):
                raise RuntimeError(f"span {[a, b]} outside {item['video']} ({d}s): {item}")
        if item["kind"] != "whole_video" and not item["spans"]:
            raise RuntimeError(f"question without spans: {item}")
    jsonl = out / "devset.jsonl"
    jsonl.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in questions))

    kinds: dict[str, int] = {}
    per_video: dict[str, int] = {}
    for x in questions:
        kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        per_video[x["video"]] = per_video.get(x["video"], 0) + 1
    print(f"devset written to {out} in {time.monotonic() - t_start:.1f}s")
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
