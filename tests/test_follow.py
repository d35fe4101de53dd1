"""Following a live source: an HLS stream served on 127.0.0.1, and a file that grows.

The stream is talk.mp4 cut into 4 s MPEG-TS segments and published faster than
real time. While it plays, clips must appear, and a question about something
said in it must be answered with the right span before the stream ends.
Stopping must leave a consistent library.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vdisc import Library

from conftest import FIXTURES
from live_stream import SEGMENT, Publisher, make_segments, serve_dir
from test_resume import _assert_consistent

INTERVAL = 2.0  # seconds between 4 s segments: 2x real time, margin for a slow machine


@pytest.fixture(scope="module")
def segments(tmp_path_factory) -> list[Path]:
    return make_segments(FIXTURES / "talk.mp4", tmp_path_factory.mktemp("segments"))


def _clips(lib: Library) -> int:
    return sum(v.clips for v in lib.videos())


def _wait(cond, timeout: float = 120.0, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def test_follow_hls_answers_before_the_stream_ends(segments, tmp_path, test_models, talk_truth):
    hls = tmp_path / "hls"
    hls.mkdir()
    pub = Publisher(segments, INTERVAL, hls_dir=hls)
    pub.start()
    server, base = serve_dir(hls)
    try:
        _wait(lambda: (hls / "live.m3u8").exists())
        lib = Library(tmp_path / "lib", models=test_models, device="cpu")
        handle = lib.follow(f"{base}/live.m3u8")
        reader = Library(tmp_path / "lib")  # another Library on the same files, as a second notebook would

        # clips appear while the stream runs
        _wait(lambda: _clips(reader) >= 1)
        first = _clips(reader)
        _wait(lambda: _clips(reader) > first)
        assert not pub.done.is_set(), "the stream ended before clips appeared"

        # something said at 9.5-12.6 s is answered before the stream ends
        line = talk_truth["speech"][1]
        _wait(lambda: any(v.duration > line["end"] + 2 for v in reader.videos()))
        answer = reader.ask("when do they say the rocket launches from the island?")
        assert not pub.done.is_set(), "the question should be answered while the stream still plays"
        assert answer.spans, answer.answer
        span = answer.spans[0]
        assert span.start <= line["start"] + 1.5 and span.end >= line["end"] - 1.5
        assert span.end - span.start <= 15

        report = handle.stop(timeout=120)
    finally:
        pub.done.wait(120)
        server.shutdown()
    assert not handle.running
    assert report.status == "stopped" and report.clips >= 2
    (video,) = reader.videos()
    assert video.status == "done"
    assert abs(video.duration - report.duration) < 1e-6
    _assert_consistent(tmp_path / "lib")


def test_follow_a_growing_file_to_its_end_then_continue(segments, tmp_path, test_models, talk_truth):
    """A recording still being written: followed until it stops growing, then followed again
    after more was written, which continues the same video after what is indexed."""
    growing = tmp_path / "recording.ts"
    growing.touch()
    first, rest = segments[:8], segments[8:]
    pub = Publisher(first, 0.3, growing=growing).start()
    lib = Library(tmp_path / "lib", models=test_models, device="cpu")
    report = lib.follow(growing, idle=3.0).wait(timeout=300)
    assert pub.done.is_set()
    assert report.status == "ended", report.reason
    assert report.media_seconds == pytest.approx(len(first) * SEGMENT, abs=1.0)
    (before,) = lib.videos()
    _assert_consistent(tmp_path / "lib")

    Publisher(rest, 0.0, growing=growing).start().done.wait(60)
    again = lib.follow(growing, idle=2.0).wait(timeout=300)
    assert again.status == "ended", again.reason
    assert again.continued_from == pytest.approx(report.duration)
    assert again.duration == pytest.approx(len(segments) * SEGMENT, abs=1.0)
    (after,) = lib.videos()
    assert after.id == before.id and after.clips > before.clips
    with sqlite3.connect(tmp_path / "lib" / "library.db") as conn:
        spans = conn.execute("SELECT start, end FROM clips ORDER BY start").fetchall()
    assert all(abs(a[1] - b[0]) < 1e-6 for a, b in zip(spans, spans[1:])), "clips tile the timeline"
    for line in talk_truth["speech"]:  # said before and after the break
        hit = lib.search(line["text"], top_k=1, level="clip").hits[0]
        assert hit.start - 1.5 <= line["start"] and line["end"] <= hit.end + 1.5, (line, hit)
    _assert_consistent(tmp_path / "lib")


def test_follow_cli_bad_source_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vdisc.cli", "index", "--follow", str(tmp_path / "nope.ts"),
                          "--library", str(tmp_path / "lib"), "--idle", "1"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert lines == [f"vdisc: failed {tmp_path / 'nope.ts'}: no such file, URL or device"], out.stderr


def test_follow_cli_duration_and_json(segments, tmp_path, tiny_clip_dir):
    """`vdisc index --follow FILE --duration 10s --json`: stops after 10 s of media, report in JSON."""
    rec = tmp_path / "rec.ts"
    rec.write_bytes(b"".join(p.read_bytes() for p in segments[:5]))
    env = {"VDISC_VISUAL_MODEL": f"local-dir:{tiny_clip_dir}", "VDISC_ASR_MODEL": "none", "VDISC_OCR_MODEL": "none",
           "VDISC_CAPTION_MODEL": "none"}
    import os

    out = subprocess.run([sys.executable, "-m", "vdisc.cli", "index", "--follow", str(rec), "--duration", "10s",
                          "--library", str(tmp_path / "lib"), "--json", "--idle", "1"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "stopped"
    assert report["duration"] == pytest.approx(10.0, abs=0.6)


def test_a_killed_follower_is_settled_by_the_next_run(segments, tmp_path, tiny_clip_dir):
    """SIGKILL `vdisc index --follow` mid-stream: what it committed stays searchable and
    consistent, and the next `vdisc index` trims its unfinished batch and marks the video done."""
    import os
    import signal

    rec = tmp_path / "rec.ts"
    rec.touch()
    pub = Publisher(segments, 0.5, growing=rec).start()
    env = {**os.environ, "VDISC_VISUAL_MODEL": f"local-dir:{tiny_clip_dir}", "VDISC_ASR_MODEL": "tiny.en",
           "VDISC_OCR_MODEL": "none", "VDISC_CAPTION_MODEL": "none"}
    home = tmp_path / "lib"
    proc = subprocess.Popen([sys.executable, "-m", "vdisc.cli", "index", "--follow", str(rec), "--library",
                             str(home), "--idle", "30"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:  # three clips committed whole: inside the video's high-water mark (its duration), not a batch in flight
        _wait(lambda: home.joinpath("library.db").exists() and _complete_clips(home) >= 3, timeout=180)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        pub.done.wait(60)
    (video,) = Library(home).videos()
    assert video.status == "live"
    _assert_consistent(home, finished=False)
    complete = _complete_clips(home)

    other = subprocess.run([sys.executable, "-m", "vdisc.cli", "index", str(FIXTURES / "silent.mp4"), "--library",
                            str(home), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    videos = {v.name: v for v in Library(home).videos()}
    assert videos["rec.ts"].status == "done" and videos["rec.ts"].clips == complete >= 3
    _assert_consistent(home)


def _complete_clips(home: Path) -> int:
    """Clips ending within their video's committed duration: what settling a dead follower keeps."""
    try:
        with sqlite3.connect(home / "library.db") as conn:
            (n,) = conn.execute('SELECT count(*) FROM clips JOIN videos ON videos.id = clips.video_id '
                                'WHERE clips."end" <= videos.duration + 1e-6').fetchone()
    except sqlite3.OperationalError:  # the schema is still being made
        return 0
    return n


def test_settling_rebuilds_a_last_scene_closed_by_a_batch_that_never_finished(segments, tmp_path, tiny_clip_dir):
    """The state a follower leaves when killed after committing the rows of a batch that closed a scene,
    before saving its vectors: the settled video's last scene gets its vector back."""
    rec = tmp_path / "rec.ts"
    rec.write_bytes(b"".join(p.read_bytes() for p in segments))
    models = {"visual": f"local-dir:{tiny_clip_dir}", "asr": "tiny.en", "ocr": "none", "caption": "none"}
    lib = Library(tmp_path / "lib", models=models, device="cpu")
    assert lib.follow(rec, idle=0.5).wait(timeout=300).status == "ended"
    store = lib.store
    with sqlite3.connect(store.db_path) as conn:
        # the dead batch: it closed scene `last` (rows in: its texts; vectors not saved) and went on past
        # its end (rows in, beyond the high-water mark, which stayed at the end of `last`)
        last, end = conn.execute("SELECT scenes.id, scenes.end FROM scenes JOIN texts ON texts.level = 'scene' "
                                 "AND texts.unit_id = scenes.id ORDER BY scenes.id DESC LIMIT 1").fetchone()
        texts = [r[0] for r in conn.execute("SELECT id FROM texts WHERE level = 'scene' AND unit_id = ?", (last,))]
        conn.execute("UPDATE videos SET status = 'live', duration = ?", (end,))
    store.remove_vectors({"scene": [last]}, texts)
    _assert_consistent(tmp_path / "lib", finished=False)  # a live video may lack a batch's vectors

    (other,) = lib.index(FIXTURES / "silent.mp4")  # the next writer settles the dead follower's video
    assert other.status == "indexed"
    assert {v.name: v.status for v in lib.videos()}["rec.ts"] == "done"
    assert last in set(store.vectors("scene", "visual").ids().tolist())
    _assert_consistent(tmp_path / "lib")
