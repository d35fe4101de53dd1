"""`vdisc index` on bad, odd and damaged inputs, as a user runs it (real subprocesses).

Every input is made here, in tmp_path, from the committed fixtures by byte
surgery or with PyAV's encoders (no ffmpeg/espeak binaries). For each input
the contract is:

* a failure gives exactly one stderr line ``vdisc: failed <path>: <reason>``
  (file name + why), never a traceback; the other files are still indexed;
* the exit code is non-zero only when nothing could be indexed;
* ``--json`` reports ``status`` / ``reason`` per file;
* the library holds rows only for files that were indexed, and every FAISS
  index holds exactly the ids of the SQLite rows it indexes (no orphans, no
  half-written video).

Matrix (input -> what vdisc does today):

====================================  ===========================================================
nonexistent path                      failed, "no such file", exit 1
folder: good.mp4 + readme.txt +       good.mp4 indexed, fake.mp4 failed ("not a video file"),
  text file named fake.mp4            readme.txt ignored (not a video extension), exit 0
text file named .mp4                  failed, "not a video file, or a damaged or incomplete one"
talk.mp4 cut at 60 % (faststart)      indexed from what decodes (frames and words stop at
                                      ~36.8 s) with a "truncated or damaged" warning
non-faststart mp4 cut at 60 %         failed (moov atom lost), "damaged or incomplete"
zero-byte file                        failed, "file is empty"
audio-only .wav                       failed, "no video stream (audio only)"
silent.mp4 (no audio track)           indexed, channels == ["visual"], no words
10 frames @ 25 fps (0.4 s)            indexed, 1 clip covering [0, 0.4]
variable frame rate (1/1000 tb)       indexed, clips tile [0, duration]
path with spaces + non-ASCII          indexed, path reported exactly
frames.mp4 cut at 50 % (header says   indexed from what decodes (frames stop at 4.8 s) with a
  250 frames, ~120 decode)            warning
frames.mp4 header only (no samples)   failed, "no frames could be decoded", rows rolled back
====================================  ===========================================================
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES

TABLES = ("scenes", "clips", "frames", "words", "texts")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def fast_env(tiny_clip_dir: Path, asr: str = "none") -> dict[str, str]:
    return {"VDISC_VISUAL_MODEL": f"local-dir:{tiny_clip_dir}", "VDISC_ASR_MODEL": asr,
            "VDISC_OCR_MODEL": "none", "VDISC_CAPTION_MODEL": "none"}


def vdisc_index(lib: Path, *paths: Path | str, env: dict[str, str], json_out: bool = False,
                extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = ["index", *map(str, paths), "--library", str(lib), *extra]
    if json_out:
        args.append("--json")
    return subprocess.run([sys.executable, "-m", "vdisc.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def err_lines(r: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    return [line for line in r.stderr.splitlines() if line.strip()]


def reports(r: subprocess.CompletedProcess) -> dict[str, dict]:
    """--json output keyed by file name."""
    return {Path(rep["path"]).name: rep for rep in json.loads(r.stdout)}


def library_rows(lib: Path) -> dict[str, dict[str, int]]:
    """{video path: {table: rows}} straight from SQLite; {} when no library was created."""
    db = lib / "library.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        out = {}
        for vid, path in con.execute("select id, path from videos"):
            out[path] = {t: con.execute(f"select count(*) from {t} where video_id = ?", (vid,)).fetchone()[0]
                         for t in TABLES}
        return out
    finally:
        con.close()


def assert_consistent(lib: Path) -> None:
    """Every FAISS index holds exactly the ids of the SQLite rows it indexes."""
    db = lib / "library.db"
    if not db.exists():
        assert not (lib / "vectors").exists() or not list((lib / "vectors").glob("*.faiss"))
        return
    con = sqlite3.connect(db)
    try:
        def ids(sql: str) -> set[int]:
            return {row[0] for row in con.execute(sql)}

        assert ids("select id from videos where status != 'done'") == set(), "a half-written video is left"
        text_ids = ids("select id from texts")
        visual = {
            "frame": ids("select id from frames"),
            # a clip with no sampled frame (e.g. past the end of a truncated file) has no visual vector
            "clip": ids("select distinct clip_id from frames"),
            "scene": ids("select id from scenes"),
            "video": ids("select id from videos"),
        }
        seen_text: set[int] = set()
        from vdisc import Library

        for index in Library(lib).store.vector_indexes():
            got = set(index.ids().tolist())
            assert len(got) == len(index), f"duplicate ids in {index.path.name}"
            if index.modality == "visual":
                assert got == visual[index.level], index.path.name
            else:
                assert got <= text_ids, f"orphan vectors in {index.path.name}"
                assert not got & seen_text
                seen_text |= got
        if any(True for _ in Library(lib).store.vector_indexes()):
            assert seen_text == text_ids, "texts without a vector"
    finally:
        con.close()


def clips_of(lib: Path, path: Path) -> list[tuple[float, float]]:
    con = sqlite3.connect(lib / "library.db")
    try:
        return con.execute("select c.start, c.end from clips c join videos v on v.id = c.video_id "
                           "where v.path = ? order by c.start", (str(path),)).fetchall()
    finally:
        con.close()


def column(lib: Path, sql: str, *args: object) -> list:
    con = sqlite3.connect(lib / "library.db")
    try:
        return [row[0] for row in con.execute(sql, args)]
    finally:
        con.close()


def assert_tiles(clips: list[tuple[float, float]], duration: float) -> None:
    assert clips, "no clips"
    assert clips[0][0] == pytest.approx(0.0, abs=1e-6)
    for (_, end), (start, _) in zip(clips, clips[1:]):
        assert start == pytest.approx(end, abs=1e-6), clips
    assert all(e > s for s, e in clips), clips
    assert clips[-1][1] == pytest.approx(duration, abs=1e-3), (clips, duration)


def write_video(path: Path, n: int, fps: int = 25, pts_ms: list[int] | None = None,
                size: tuple[int, int] = (64, 48), codec: str = "libx264") -> Path:
    """A small synthetic video with PyAV (mp4 is written with the moov atom at the end)."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if pts_ms is not None:
            vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            arr = np.zeros((size[1], size[0], 3), np.uint8)
            arr[:, : (i * 7) % size[0]] = (i * 37 % 255, 80, 200)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    return path


def write_wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    import av

    with av.open(str(path), "w") as c:
        st = c.add_stream("pcm_s16le", rate=rate)
        st.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for p in st.encode(frame):
            c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    return path


def head(src: Path, dst: Path, fraction: float | None = None, nbytes: int | None = None) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: nbytes if nbytes is not None else int(len(data) * fraction)])
    return dst


# --------------------------------------------------------------------------- #
# inputs that must fail: one line, exit 1, nothing stored
# --------------------------------------------------------------------------- #


def _missing(d: Path) -> Path:
    return d / "missing.mp4"


def _text_as_mp4(d: Path) -> Path:
    p = d / "notes.mp4"
    p.write_text("this is not a video\n")
    return p


def _empty(d: Path) -> Path:
    p = d / "empty.mp4"
    p.write_bytes(b"")
    return p


def _moov_at_end_truncated(d: Path) -> Path:
    full = write_video(d / "full.mp4", 100)
    data = full.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0, "PyAV should write the moov atom last"
    out = head(full, d / "cut_no_faststart.mp4", 0.6)
    full.unlink()
    return out


def _audio_only(d: Path) -> Path:
    return write_wav(d / "voice.wav")


def _header_only(d: Path) -> Path:
    # frames.mp4 is faststart: keep the moov atom and the mdat header, drop every sample
    data = (FIXTURES / "frames.mp4").read_bytes()
    mdat = data.find(b"mdat")
    assert data.find(b"moov") < mdat
    return head(FIXTURES / "frames.mp4", d / "header_only.mp4", nbytes=mdat + 64)


FAILING = {
    "nonexistent": (_missing, "no such file"),
    "text-named-mp4": (_text_as_mp4, "not a video file"),
    "zero-byte": (_empty, "file is empty"),
    "truncated-moov-at-end": (_moov_at_end_truncated, "damaged or incomplete"),
    "audio-only": (_audio_only, "no video stream"),
    # probe succeeds, a video row is written, decoding finds nothing: the row must be rolled back
    "header-claims-frames-none-decode": (_header_only, "no frames could be decoded"),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_bad_file_fails_in_one_line_and_stores_nothing(case: str, tmp_path: Path, tiny_clip_dir: Path):
    make, why = FAILING[case]
    path = make(tmp_path)
    lib, env = tmp_path / "lib", fast_env(tiny_clip_dir)

    r = vdisc_index(lib, path, env=env)
    assert r.returncode == 1, (r.stdout, r.stderr)
    (line,) = err_lines(r)
    assert line.startswith("vdisc: failed ") and path.name in line and why in line, line
    assert r.stdout.strip() == ""

    r = vdisc_index(lib, path, env=env, json_out=True)
    assert r.returncode == 1, r.stderr
    err_lines(r)
    (rep,) = json.loads(r.stdout)
    assert rep["status"] == "failed" and why in rep["reason"] and path.name in rep["path"]
    assert rep["video_id"] is None and rep["clips"] == 0

    assert library_rows(lib) == {}
    assert_consistent(lib)
    if (lib / "library.db").exists():
        from vdisc import Library

        assert Library(lib).videos() == []


def test_folder_with_mixed_files(tmp_path: Path, tiny_clip_dir: Path):
    folder = tmp_path / "vids"
    folder.mkdir()
    good = folder / "good.mp4"
    good.write_bytes((FIXTURES / "silent.mp4").read_bytes())
    (folder / "readme.txt").write_text("not a video")
    fake = folder / "fake.mp4"
    fake.write_text("not a video either\n")
    lib, env = tmp_path / "lib", fast_env(tiny_clip_dir)

    r = vdisc_index(lib, folder, env=env)
    assert r.returncode == 0, r.stderr  # something was indexed
    (line,) = err_lines(r)  # readme.txt is skipped silently: not a video extension
    assert line.startswith("vdisc: failed ") and "fake.mp4" in line and "not a video file" in line
    (out,) = [x for x in r.stdout.splitlines() if x.strip()]
    assert out.startswith("indexed good.mp4:")

    r = vdisc_index(lib, folder, env=env, json_out=True)
    assert r.returncode == 0, r.stderr
    err_lines(r)  # no traceback (today --json reports failures only in the JSON)
    reps = reports(r)
    assert set(reps) == {"good.mp4", "fake.mp4"}
    assert reps["good.mp4"]["status"] == "unchanged"
    assert reps["fake.mp4"]["status"] == "failed" and "not a video file" in reps["fake.mp4"]["reason"]

    rows = library_rows(lib)
    assert set(rows) == {str(good.resolve())}
    assert rows[str(good.resolve())]["clips"] >= 1
    assert_consistent(lib)


# --------------------------------------------------------------------------- #
# odd but valid inputs: indexed
# --------------------------------------------------------------------------- #


def _index_one(tmp_path: Path, path: Path, env: dict[str, str]) -> tuple[Path, dict]:
    lib = tmp_path / "lib"
    r = vdisc_index(lib, path, env=env, json_out=True)
    assert r.returncode == 0, r.stderr
    assert err_lines(r) == [], r.stderr
    (rep,) = json.loads(r.stdout)
    assert rep["status"] == "indexed", rep
    assert rep["path"] == str(path.resolve())
    rows = library_rows(lib)
    assert set(rows) == {str(path.resolve())}
    assert rows[rep["path"]]["clips"] == rep["clips"] >= 1
    assert rows[rep["path"]]["frames"] == rep["frames"] >= 1
    assert_consistent(lib)
    return lib, rep


def test_video_without_audio_track(tmp_path: Path, tiny_clip_dir: Path):
    path = tmp_path / "silent.mp4"
    path.write_bytes((FIXTURES / "silent.mp4").read_bytes())
    # ASR on: it must simply not run for a file without audio
    lib, rep = _index_one(tmp_path, path, fast_env(tiny_clip_dir, asr="tiny.en"))
    assert rep["channels"] == ["visual"] and rep["words"] == 0
    assert column(lib, "select has_audio from videos") == [0]
    assert_tiles(clips_of(lib, path.resolve()), rep["duration"])


def test_very_short_video(tmp_path: Path, tiny_clip_dir: Path):
    path = write_video(tmp_path / "blink.mp4", 10, fps=25)  # 0.4 s
    lib, rep = _index_one(tmp_path, path, fast_env(tiny_clip_dir))
    assert rep["duration"] == pytest.approx(0.4, abs=0.05)
    assert_tiles(clips_of(lib, path.resolve()), rep["duration"])


def test_variable_frame_rate_video(tmp_path: Path, tiny_clip_dir: Path):
    gaps = [0.02, 0.1, 0.3]  # 20 ms, 100 ms, 300 ms between frames, repeating
    pts, t = [], 0.0
    for i in range(60):
        pts.append(round(t * 1000))
        t += gaps[i % 3]
    path = write_video(tmp_path / "vfr.mp4", 60, pts_ms=pts)
    lib, rep = _index_one(tmp_path, path, fast_env(tiny_clip_dir))
    assert rep["duration"] == pytest.approx(pts[-1] / 1000, abs=0.4)
    assert_tiles(clips_of(lib, path.resolve()), rep["duration"])
    ts = column(lib, "select ts from frames order by id")
    assert ts == sorted(ts) and ts[0] == pytest.approx(0.0, abs=1e-6) and ts[-1] <= rep["duration"]
    # every sampled frame is a real frame of the file, not a guessed constant-rate time
    assert {round(x * 1000) for x in ts} <= set(pts)


def test_path_with_spaces_and_non_ascii(tmp_path: Path, tiny_clip_dir: Path):
    folder = tmp_path / "my videos ✓"
    folder.mkdir()
    path = folder / "vidéo à l’été 日本.mp4"
    path.write_bytes((FIXTURES / "silent.mp4").read_bytes())
    lib, rep = _index_one(tmp_path, path, fast_env(tiny_clip_dir))
    from vdisc import Library

    (entry,) = Library(lib).videos()
    assert entry.path == str(path.resolve()) and entry.name == path.name and entry.status == "done"
    r = vdisc_index(lib, path, env=fast_env(tiny_clip_dir))  # human output names it too
    assert r.returncode == 0 and err_lines(r) == []
    assert r.stdout.startswith(f"unchanged {path.name}: ")


# --------------------------------------------------------------------------- #
# damaged tails: indexed from what decodes, with a warning
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> dict[str, tuple]:
    """talk.mp4 cut at 60 % (ASR on) and frames.mp4 cut at 50 %, each indexed once.

    Both are faststart files, so the header (durations 60 s / 10 s, 250 frames
    for frames.mp4) survives and only the tail of the samples is gone.
    Returns {name: (lib, path, completed process, report)}.
    """
    d = tmp_path_factory.mktemp("truncated")
    out = {}
    for name, src, frac, asr in (("talk_cut.mp4", "talk.mp4", 0.6, "tiny.en"),
                                 ("frames_cut.mp4", "frames.mp4", 0.5, "none")):
        path = head(FIXTURES / src, d / name, frac)
        lib = d / f"lib-{name}"
        r = vdisc_index(lib, path, env=fast_env(tiny_clip_dir, asr=asr), json_out=True)
        (rep,) = json.loads(r.stdout) if r.returncode == 0 else [None]
        out[name] = (lib, path.resolve(), r, rep)
    return out


# where the decodable media ends (s): measured with PyAV on the cut files
DECODED_END = {"talk_cut.mp4": 36.8, "frames_cut.mp4": 4.8}
HEADER_DURATION = {"talk_cut.mp4": 60.0, "frames_cut.mp4": 10.0}


@pytest.mark.parametrize("name", list(DECODED_END))
def test_truncated_file_is_indexed_from_what_decodes(truncated, name: str):
    """Documented behaviour: a file that breaks part-way is indexed up to the break, with a warning."""
    lib, path, r, rep = truncated[name]
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert rep["status"] == "indexed" and rep["path"] == str(path)
    warn = [line for line in r.stderr.splitlines() if "truncated or damaged" in line]
    assert len(warn) == 1 and path.name in warn[0], r.stderr
    rows = library_rows(lib)
    assert set(rows) == {str(path)}
    assert_consistent(lib)
    frames = column(lib, "select ts from frames")
    assert frames and max(frames) <= DECODED_END[name] + 0.1
    assert max(frames) >= DECODED_END[name] - 1.5  # it did decode up to the break
    if name == "talk_cut.mp4":
        assert "speech" in rep["channels"] and rep["words"] > 10
        assert max(column(lib, "select end from words")) <= DECODED_END[name] + 1.0


@pytest.mark.parametrize("name", list(DECODED_END))
def test_truncated_file_has_no_clips_past_the_break(truncated, name: str):
    lib, path, r, rep = truncated[name]
    assert rep["status"] == "indexed"
    ends = column(lib, "select end from clips")
    assert max(ends) <= DECODED_END[name] + 1.0
    assert rep["duration"] <= DECODED_END[name] + 1.0
    # every clip holds at least one sampled frame
    assert column(lib, "select count(*) from clips where id not in (select clip_id from frames)") == [0]


def test_truncation_warning_is_one_vdisc_line_and_quiet_silences_it(truncated, tiny_clip_dir: Path, tmp_path: Path):
    _, _, r, _ = truncated["frames_cut.mp4"]
    (line,) = err_lines(r)
    assert line.startswith("vdisc: warning: ") and "frames_cut.mp4" in line
    path = head(FIXTURES / "frames.mp4", tmp_path / "frames_cut.mp4", 0.5)
    r = vdisc_index(tmp_path / "lib", path, env=fast_env(tiny_clip_dir), extra=("--quiet",))
    assert r.returncode == 0 and err_lines(r) == []


# --------------------------------------------------------------------------- #
# a hanging demuxer is bounded
# --------------------------------------------------------------------------- #


def test_opening_a_file_is_bounded_by_a_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """OPEN_TIMEOUT (in decode.probing, which opens every file) interrupts FFmpeg's open/probe
    (a demuxer looping on a damaged file).

    A timeout of ~0 makes every open time out, which proves the interrupt is
    wired through every entry point and ends as one clean line, with nothing stored.
    """
    from vdisc import Library
    from vdisc.errors import DecodeError
    from vdisc.index import decode
    from vdisc.index.decode import probing

    monkeypatch.setattr(probing, "OPEN_TIMEOUT", 1e-9)
    for call in (decode.probe, decode.open_video, decode.read_audio):
        with pytest.raises(DecodeError, match="timed out") as info:
            call(FIXTURES / "talk.mp4")
        assert "\n" not in str(info.value) and "talk.mp4" in str(info.value)
    lib = tmp_path / "lib"
    (rep,) = Library(lib, models={"visual": "none", "text": "none", "asr": "none", "ocr": "none",
                                  "caption": "none"}).index(FIXTURES / "talk.mp4")
    assert rep.status == "failed" and "timed out" in rep.reason
    assert library_rows(lib) == {}


def test_a_decoder_that_stops_producing_frames_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          tiny_clip_dir: Path):
    """A decoder stuck mid-file (it cannot be interrupted inside FFmpeg) fails that file after
    decode.STALL_TIMEOUT; the next file is still indexed and nothing of the stuck one is stored.

    The stuck decoder is the real PyAV reader wrapped so that it blocks forever after
    a few frames: a real hang cannot be produced on demand.
    """
    import threading
    import time

    from vdisc import Library
    from vdisc.index import decode
    from vdisc.index.pipeline import Indexer

    release = threading.Event()
    real_open = Indexer._open

    class Stuck:
        def __init__(self, reader):
            self.reader, self.name = reader, reader.name

        def frames(self, **kw):
            for n, item in enumerate(self.reader.frames(**kw)):
                if n == 12:
                    release.wait()  # hangs like a decoder spinning inside libavcodec
                yield item

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.reader.close()

    def open_stuck(self, path):
        reader = real_open(self, path)
        return Stuck(reader) if path.name == "stuck.mp4" else reader

    monkeypatch.setattr(decode, "STALL_TIMEOUT", 1.5)
    monkeypatch.setattr(Indexer, "_open", open_stuck)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "stuck.mp4").write_bytes((FIXTURES / "talk.mp4").read_bytes())
    (folder / "well.mp4").write_bytes((FIXTURES / "silent.mp4").read_bytes())
    lib = tmp_path / "lib"
    models = {"visual": f"local-dir:{tiny_clip_dir}", "asr": "none", "ocr": "none", "caption": "none"}
    t0 = time.monotonic()
    try:
        stuck, well = Library(lib, models=models).index(folder)
    finally:
        release.set()
    assert time.monotonic() - t0 < 30
    assert stuck.status == "failed" and "produced nothing for 1.5 s" in stuck.reason
    assert well.status == "indexed"
    assert list(library_rows(lib)) == [str(folder / "well.mp4")]
    assert_consistent(lib)
