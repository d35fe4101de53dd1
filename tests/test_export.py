"""Exports: every format read back by an independent parser, the cut clip probed with PyAV, the CLI's errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from vdisc import ConfigError, Library
from vdisc.export import Cue, Moments, moments_of, reel, render, timecode

from conftest import FIXTURES
from test_cli import vdisc

TALK = FIXTURES / "talk.mp4"


def parse_srt(text: str) -> list[tuple[int, float, float, str]]:
    """SubRip cues as (number, start, end, text); written here, not imported, so the writer is checked."""
    cues = []
    for block in text.strip("\n").split("\n\n"):
        num, times, *lines = block.split("\n")
        m = re.fullmatch(r"(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})", times)
        assert m, times
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, m.groups())
        cues.append((int(num), h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000,
                     "\n".join(lines)))
    return cues


def ms(t: float) -> int:
    return int(round(t * 1000))


SPANS = [  # out of order, one past an hour, text with a line break and markup
    Cue(video="talk.mp4", start=42.5, end=46.371, text="Please bring your umbrella"),
    Cue(video="talk.mp4", start=1.0, end=4.263, text="The chef adds\ntwo spoons of salt"),
    Cue(video="talk.mp4", start=3723.456, end=3725.0, text="<b>a & b</b> = c; d"),
]


def test_srt_parses_back_to_the_same_spans():
    text = render(Moments(title="t", cues=SPANS), "srt")
    cues = parse_srt(text)
    assert [c[0] for c in cues] == [1, 2, 3]
    expected = sorted(SPANS, key=lambda c: c.start)
    assert [(ms(c[1]), ms(c[2])) for c in cues] == [(ms(c.start), ms(c.end)) for c in expected]
    assert cues[0][3] == "The chef adds two spoons of salt"  # one line: a blank line would end the cue
    assert "01:02:03,456 --> 01:02:05,000" in text


def test_vtt_has_its_header_and_escapes_markup():
    text = render(Moments(title="when --> now?", cues=SPANS), "vtt")
    assert text.startswith("WEBVTT\n\n")
    assert "00:00:01.000 --> 00:00:04.263" in text and "01:02:03.456 --> 01:02:05.000" in text
    assert "&lt;b&gt;a &amp; b&lt;/b&gt;" in text and "<b>" not in text
    assert text.count("-->") == 3  # the title's arrow would start a cue
    blocks = text.strip().split("\n\n")
    assert blocks[0] == "WEBVTT" and blocks[1].startswith("NOTE ") and len(blocks) == 5


def test_chapters_are_ffmetadata_in_milliseconds():
    text = render(Moments(title="rain", cues=SPANS), "chapters")
    assert text.startswith(";FFMETADATA1\ntitle=rain\n")
    chapters = re.findall(r"\[CHAPTER\]\nTIMEBASE=1/1000\nSTART=(\d+)\nEND=(\d+)\ntitle=(.*)\n", text)
    assert [(int(a), int(b)) for a, b, _ in chapters] == [(1000, 4263), (42500, 46371), (3723456, 3725000)]
    assert chapters[2][2] == r"<b>a & b</b> \= c\; d"  # FFmpeg's metadata escapes


def test_edl_events_and_timecodes():
    cues = [Cue(video="a.mp4", start=10.0, end=12.5, text="x"), Cue(video="b.mp4", start=0.0, end=1.0),
            Cue(video="a.mp4", start=2.0, end=4.0), Cue(video="a.mp4", start=3.0, end=5.0)]  # the last two overlap
    text = render(Moments(title="reel", cues=cues), "edl", fps=25)
    events = re.findall(r"^(\d{3})  AX       AA/V  C        (\S+) (\S+) (\S+) (\S+)$", text, re.M)
    assert text.startswith("TITLE: reel\nFCM: NON-DROP FRAME\n")
    assert events == [  # a.mp4 in time order with 2-4 and 3-5 merged, then b.mp4; record butts end to end
        ("001", "00:00:02:00", "00:00:05:00", "00:00:00:00", "00:00:03:00"),
        ("002", "00:00:10:00", "00:00:12:13", "00:00:03:00", "00:00:05:13"),  # 12.5 s = 12 s + 12.5 frames -> 13
        ("003", "00:00:00:00", "00:00:01:00", "00:00:05:13", "00:00:06:13"),
    ]
    assert re.findall(r"^\* FROM CLIP NAME: (.*)$", text, re.M) == ["a.mp4", "a.mp4", "b.mp4"]
    # NTSC: frames are counted at 29.97 and labelled in base 30
    assert timecode(3600.0, 30000 / 1001) == "00:59:56:12"
    assert timecode(1.0, 25) == "00:00:01:00"


def test_json_round_trips():
    moments = Moments(title="q", source="search", cues=[c.model_copy(update={"video_id": 1}) for c in SPANS])
    back = moments_of(render(moments, "json"))
    assert back == moments
    assert set(json.loads(render(moments, "json"))) == {"title", "source", "spans"}


def test_one_video_formats_refuse_several_videos():
    moments = Moments(cues=[SPANS[0], Cue(video="other.mp4", start=0, end=1)])
    for fmt in ("srt", "vtt", "chapters"):
        with pytest.raises(ConfigError, match="2 videos.*--video"):
            render(moments, fmt)
    assert moments_of(moments, video="other.mp4").cues == [moments.cues[1]]
    assert len(re.findall(r"^\d{3}  ", render(moments, "edl"), re.M)) == 2


@pytest.mark.parametrize("bad,message", [
    ("{", "not JSON"),
    ('{"hello": 1}', "no moments"),
    ('{"spans": []}', "nothing to export"),
    ('{"spans": [{"video": "a.mp4", "start": 5, "end": 2}]}', "not a time range"),
    ('{"spans": [{"video": "a.mp4", "start": "soon", "end": 2}]}', "spans.0.start"),
    ('{"question": "q", "answer": "no idea", "spans": []}', "the answer has no moments"),
])
def test_bad_input_is_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        moments_of(bad)
    with pytest.raises(ConfigError, match="unknown export format 'xml'"):
        render(Moments(cues=SPANS), "xml")


def test_reel_merges_overlaps_per_video():
    cues = [Cue(video="a", start=5, end=9), Cue(video="a", start=1, end=2), Cue(video="a", start=8, end=12),
            Cue(video="a", start=2, end=3)]
    assert [(c.start, c.end) for c in reel(Moments(cues=cues))] == [(1, 3), (5, 12)]  # touching merges too


# --------------------------------------------------------------------------- #
# on a real library: answers and search results, cut clips
# --------------------------------------------------------------------------- #


def test_answer_exports_match_its_spans(talk_library):
    home, _ = talk_library
    lib = Library(home)
    answer = lib.ask("When is a downpour forecast?")
    assert answer.spans
    cues = parse_srt(lib.export(answer, "srt"))
    spans = sorted(answer.spans, key=lambda s: s.start)
    assert [(ms(c[1]), ms(c[2])) for c in cues] == [(ms(s.start), ms(s.end)) for s in spans]
    rain = next(c for c in cues if c[1] <= 43.0 < c[2])
    assert "umbrella" in rain[3].lower()  # a cue says what was found there: the evidence
    edl = lib.export(answer.to_dict(), "edl")  # the dict of `vdisc ask --json` works the same
    assert "FCM: NON-DROP FRAME" in edl and "* FROM CLIP NAME: talk.mp4" in edl
    with pytest.raises(Exception, match="no indexed video"):
        lib.export({"spans": [{"video": "elsewhere.mp4", "start": 1, "end": 2}]}, "srt")


def _mean_rgb(path: Path, t: float) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if f.time >= t:
                return f.to_ndarray(format="rgb24").reshape(-1, 3).mean(0)
    raise AssertionError(f"no frame at {t} in {path}")


def _audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        return np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)]), rate


def test_cut_clip_lasts_the_sum_of_its_spans_and_shows_them(talk_library, tmp_path):
    home, _ = talk_library
    lib = Library(home)
    # three shots of different colours (talk.json); the first two overlap and merge; 5-8 s is silent, 42.5 speaks
    moments = Moments(cues=[Cue(video="talk.mp4", start=22.0, end=24.0), Cue(video="talk.mp4", start=5.0, end=8.0),
                            Cue(video="talk.mp4", start=43.0, end=46.0), Cue(video="talk.mp4", start=42.5, end=44.0)])
    out = tmp_path / "reel.mp4"
    report = lib.clip(moments, out)
    expected = 3.0 + 2.0 + 3.5  # 5-8, 22-24, 42.5-46 in time order
    with av.open(str(out)) as c:
        duration = c.duration / 1e6
        assert c.streams.video[0].codec_context.name in ("h264", "mpeg4") and c.streams.audio
    assert abs(duration - expected) <= 0.5 and abs(report.duration - expected) <= 0.05, (duration, report)
    assert report.moments == 3 and not list(tmp_path.glob(".*"))  # no temporary file left behind
    for clip_t, source_t in [(1.5, 6.5), (3.5, 22.5), (4.5, 23.5), (6.0, 43.5)]:
        assert np.abs(_mean_rgb(out, clip_t) - _mean_rgb(TALK, source_t)).max() < 12, (clip_t, source_t)
    samples, rate = _audio(out)

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(samples[int(a * rate):int(b * rate)] ** 2)))

    assert rms(0.2, 2.8) < 0.1 * rms(5.2, 8.3)  # silence where the source is silent, speech where it speaks


def test_cut_is_frame_exact_and_joins_unlike_videos(tmp_path):
    """frames.mp4 shows its frame number; silent.mp4 is smaller with no sound; talk.mp4 is 16:9 with sound."""
    from framecode import read_frame_number

    from vdisc.cut import ClipPart, cut_clip

    parts = [ClipPart(path=str(FIXTURES / "frames.mp4"), start=2.0, end=3.0),
             ClipPart(path=str(FIXTURES / "frames.mp4"), start=7.2, end=7.6),
             ClipPart(path=str(FIXTURES / "silent.mp4"), start=0.5, end=1.5),
             ClipPart(path=str(TALK), start=43.0, end=44.0)]
    report = cut_clip(parts, tmp_path / "mix.mp4")
    assert (report.width, report.height, report.fps, report.duration) == (320, 240, 25.0, 3.4)
    with av.open(report.path) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 85
    assert [read_frame_number(f) for f in frames[:35]] == list(range(50, 75)) + list(range(180, 190))
    talk = frames[-1]  # 480x270 letterboxed into 320x240: black bars above and below, the green shot between
    assert talk[:25].max() < 30 and talk[-25:].max() < 30 and talk[120, :, 1].mean() > 90
    samples, rate = _audio(Path(report.path))
    assert abs(len(samples) / rate - 3.4) < 0.1 and np.abs(samples[: int(2.3 * rate)]).max() < 1e-3


def test_cut_clip_of_search_hits(talk_library, tmp_path):
    home, _ = talk_library
    lib = Library(home)
    result = lib.search("rocket launch", level="clip", top_k=3)
    moments = moments_of(result)
    merged = sum(c.end - c.start for c in reel(moments))
    report = lib.clip(result, tmp_path / "hits.mkv")
    with av.open(report.path) as c:
        assert abs(c.duration / 1e6 - merged) <= 0.5


def test_clip_refuses_bad_targets(talk_library, tmp_path):
    home, _ = talk_library
    lib = Library(home)
    moments = Moments(cues=[Cue(video="talk.mp4", start=1.0, end=2.0)])
    with pytest.raises(ConfigError, match="--clip writes"):
        lib.clip(moments, tmp_path / "clip.gif")
    with pytest.raises(ConfigError, match="no such directory"):
        lib.clip(moments, tmp_path / "missing" / "clip.mp4")
    with pytest.raises(ConfigError, match="past the video's end"):
        lib.clip(Moments(cues=[Cue(video="talk.mp4", start=70.0, end=80.0)]), tmp_path / "c.mp4")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- #
# the CLI
# --------------------------------------------------------------------------- #


def test_cli_search_json_to_srt_file(talk_library, tmp_path):
    home, _ = talk_library
    r = vdisc("search", "heavy rain", "--library", str(home), "--level", "clip", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    (tmp_path / "hits.json").write_text(r.stdout)
    r = vdisc("export", str(tmp_path / "hits.json"), "--library", str(home), "--format", "srt",
              "-o", str(tmp_path / "hits.srt"))
    assert r.returncode == 0, r.stderr
    cues = parse_srt((tmp_path / "hits.srt").read_text())
    assert [(ms(c[1]), ms(c[2])) for c in cues] == sorted((ms(h["start"]), ms(h["end"])) for h in hits)


def test_cli_ask_to_clip_and_json(talk_library, tmp_path):
    home, _ = talk_library
    out = tmp_path / "answer.mp4"
    r = vdisc("export", "--ask", "When is a downpour forecast?", "--library", str(home), "--format", "json",
              "--clip", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["source"] == "answer" and data["title"] == "When is a downpour forecast?"
    total = sum(s["end"] - s["start"] for s in data["spans"])
    with av.open(str(out)) as c:
        assert abs(c.duration / 1e6 - total) <= 0.5
    assert f"wrote {out}" in r.stderr
    # and the JSON it wrote is a source in turn, read from stdin
    r2 = vdisc_stdin(r.stdout, "export", "-", "--library", str(home), "--format", "vtt")
    assert r2.returncode == 0 and r2.stdout.startswith("WEBVTT"), r2.stderr


def vdisc_stdin(stdin: str, *args: str):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "vdisc.cli", *args], input=stdin, capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


@pytest.mark.parametrize("stdin,args,message", [
    ("", ["--format", "xml"], "unknown export format 'xml'"),
    ("{not json", ["--format", "srt"], "not JSON"),
    ('{"spans": [{"video": "nope.mp4", "start": 1, "end": 2}]}', ["--format", "srt"], "no indexed video matches"),
    ('{"query": "q", "hits": []}', ["--format", "srt"], "nothing to export"),
    ('{"spans": [{"video": "talk.mp4", "start": 1, "end": 2}]}', [], "say what to export"),
    ('{"spans": [{"video": "talk.mp4", "start": 1, "end": 2}]}', ["--format", "srt", "--clip", "{tmp}/x.gif"], "--clip writes"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(talk_library, tmp_path, stdin, args, message):
    home, _ = talk_library
    target = tmp_path / "out.txt"
    r = vdisc_stdin(stdin, "export", "-", "--library", str(home), "-o", str(target),
                    *(a.format(tmp=tmp_path) for a in args))
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vdisc: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout and not list(tmp_path.iterdir())


def test_cli_needs_exactly_one_source(talk_library):
    home, _ = talk_library
    r = vdisc("export", "--library", str(home), "--format", "srt")
    assert r.returncode != 0 and "give one source" in r.stderr
    r = vdisc("export", "x.json", "--search", "rain", "--library", str(home), "--format", "srt")
    assert r.returncode != 0 and "give one source" in r.stderr
    r = vdisc("export", "missing.json", "--library", str(home), "--format", "srt")
    assert r.returncode != 0 and "missing.json: no such file" in r.stderr
