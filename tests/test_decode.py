"""vdisc.index.decode: probing, frame sampling on a time grid (every backend),
audio reading, and the errors a user can run into.

frames.mp4 (320x240, 25 fps CFR, 250 frames, GOP 50) shows its frame number
as a 12-bit code, so a sampled frame can be checked for being exactly the one
displayed at its grid time. Big Buck Bunny is (c) Blender Foundation, CC BY 3.0.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from vdisc.errors import DecodeError
from vdisc.index import decode
from vdisc.index.decode import (
    BACKENDS,
    VideoInfo,
    VideoReader,
    available_backends,
    open_video,
    probe,
    read_audio,
)

from framecode import read_frame_number

FIXTURES = Path(__file__).parent / "fixtures"
FRAMES = FIXTURES / "frames.mp4"
TALK = FIXTURES / "talk.mp4"
BUNNY = Path(__file__).resolve().parents[2] / "shared" / "media" / "big_buck_bunny_0_30.webm"

ALL = ("pyav", "decord", "torchcodec")
needs_frames = pytest.mark.skipif(not FRAMES.exists(), reason="tests/fixtures/frames.mp4 missing (scripts/make_fixtures.py)")
needs_talk = pytest.mark.skipif(not TALK.exists(), reason="tests/fixtures/talk.mp4 missing (scripts/make_fixtures.py)")
needs_bunny = pytest.mark.skipif(not BUNNY.exists(), reason="shared/media is not next to the repo")


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest) -> str:
    reason = available_backends()[request.param]
    if reason is not None:
        pytest.skip(reason)
    return request.param


def _numbers(frames: list[tuple[float, np.ndarray]]) -> list[int]:
    return [read_frame_number(rgb) for _, rgb in frames]


def _sample(path: Path, backend: str, fps: float, max_side: int | None = None) -> list[tuple[float, np.ndarray]]:
    with open_video(path, backend) as reader:
        assert reader.name == backend
        return list(reader.frames(fps=fps, max_side=max_side))


# --------------------------------------------------------------------------- #
# frame choice, per backend
# --------------------------------------------------------------------------- #


@needs_frames
def test_every_frame_at_native_rate(backend: str) -> None:
    frames = _sample(FRAMES, backend, fps=25)
    assert len(frames) == 250
    for n, (pts, rgb) in enumerate(frames):
        assert rgb.dtype == np.uint8 and rgb.shape == (240, 320, 3) and rgb.flags.c_contiguous
        assert read_frame_number(rgb) == round(pts * 25) == n
        assert abs(pts - n / 25) < 1e-3


@needs_frames
def test_one_frame_per_second(backend: str) -> None:
    frames = _sample(FRAMES, backend, fps=1)
    assert _numbers(frames) == list(range(0, 250, 25))
    assert [round(p, 3) for p, _ in frames] == [float(k) for k in range(10)]


@needs_frames
def test_grid_between_frames_takes_the_frame_displayed(backend: str) -> None:
    frames = _sample(FRAMES, backend, fps=3)
    assert len(frames) == 30  # t_k = k/3 < 10
    assert _numbers(frames) == [math.floor(k / 3 * 25 + 1e-6) for k in range(30)]
    for n, (pts, _) in zip(_numbers(frames), frames):
        assert abs(pts - n / 25) < 1e-3


@needs_frames
def test_grid_denser_than_video_yields_each_frame_once(backend: str) -> None:
    frames = _sample(FRAMES, backend, fps=40)
    numbers = _numbers(frames)
    assert numbers == sorted(set(numbers))  # no repeats, in order
    assert numbers == sorted({min(249, math.floor(k / 40 * 25 + 1e-6)) for k in range(400)})


@needs_frames
def test_max_side_downscales_in_the_decoder(backend: str) -> None:
    frames = _sample(FRAMES, backend, fps=5, max_side=160)
    assert len(frames) == 50
    assert all(rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8 for _, rgb in frames)
    assert _numbers(frames) == [k * 5 for k in range(50)]
    # never upscales
    (pts, rgb), *_ = _sample(FRAMES, backend, fps=1, max_side=4096)
    assert rgb.shape == (240, 320, 3)


@needs_bunny
def test_backends_agree_on_a_real_webm(backend: str) -> None:
    """VP8 WebM whose video starts at 3 ms and whose header has no duration."""
    got = [round(p, 6) for p, _ in _sample(BUNNY, backend, fps=2, max_side=96)]
    with open_video(BUNNY, "pyav") as ref:
        want = [round(p, 6) for p, _ in ref.frames(fps=2, max_side=96)]
    assert got == want
    assert 58 <= len(got) <= 60 and got[0] == 0.0


# --------------------------------------------------------------------------- #
# sparse grids: PyAV seeks over whole GOPs, and must still pick the same frames
# --------------------------------------------------------------------------- #


def _code_image(n: int, w: int = 320, h: int = 240) -> np.ndarray:
    """Frame ``n`` drawn the way tests/framecode.py reads it (12 bits, MSB first)."""
    img = np.full((h, w, 3), 128, np.uint8)
    for i in range(12):
        bit = (n >> (11 - i)) & 1
        img[10:60, 10 + 25 * i : 30 + 25 * i] = 255 if bit else 0
    return img


@pytest.fixture(scope="module")
def long_coded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s, 25 fps, keyframe every second, frame numbers burned in."""
    import av

    path = tmp_path_factory.mktemp("decode") / "long.mp4"
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": "25", "bf": "2"} if codec == "libx264" else {"g": "25"}
        for n in range(1000):
            frame = av.VideoFrame.from_ndarray(_code_image(n), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_sparse_grid_seeks_and_picks_the_same_frames(long_coded: Path, backend: str) -> None:
    for fps in (0.1, 0.07):
        frames = _sample(long_coded, backend, fps=fps)
        expected = [math.floor(k / fps * 25 + 1e-6) for k in range(math.ceil(40 * fps))]
        assert _numbers(frames) == expected
    if backend == "pyav":
        with open_video(long_coded, "pyav") as reader:
            assert len(list(reader.frames(fps=0.1))) == 4
            assert reader.seeks > 0  # the sparse path was taken


def test_pyav_recovers_when_a_seek_overshoots(long_coded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A coarse index may land after the target; the reader must fall back, not skip frames."""
    real_seek = decode.PyAVReader._seek
    calls = []

    def bad_seek(self, container, vs, target, start, tb, state):  # noqa: ANN001
        calls.append(target)
        return real_seek(self, container, vs, target + (7.0 if len(calls) == 2 else 0.0), start, tb, state)

    monkeypatch.setattr(decode.PyAVReader, "_seek", bad_seek)
    with open_video(long_coded, "pyav") as reader:
        frames = list(reader.frames(fps=0.1))
    assert _numbers(frames) == [0, 250, 500, 750]
    assert len(calls) >= 2


# --------------------------------------------------------------------------- #
# time windows: frames(start=, end=) for a dense look at a few seconds
# --------------------------------------------------------------------------- #


@needs_frames
def test_window_samples_densely_inside_the_video(backend: str) -> None:
    with open_video(FRAMES, backend) as reader:
        frames = list(reader.frames(fps=4, start=6.1, end=7.0))
    expected = [math.floor((6.1 + k / 4) * 25 + 1e-6) for k in range(4)]  # 6.1, 6.35, 6.6, 6.85
    assert expected == [152, 158, 165, 171]
    assert _numbers(frames) == expected
    for n, (pts, rgb) in zip(expected, frames):
        assert abs(pts - n / 25) < 1e-3
        assert rgb.shape == (240, 320, 3) and rgb.dtype == np.uint8


@needs_frames
def test_window_clipping_and_empty_windows(backend: str) -> None:
    with open_video(FRAMES, backend) as reader:
        assert list(reader.frames(fps=4, start=12.0, end=14.0)) == []  # past the end
        assert list(reader.frames(fps=4, start=10.0)) == []  # starts at the end
        assert list(reader.frames(fps=4, start=7.0, end=6.0)) == []  # start > end
        assert list(reader.frames(fps=4, start=5.0, end=5.0)) == []  # start == end
        assert list(reader.frames(fps=4, start=-3.0, end=0.0)) == []  # clamped start == end
        # end past the duration: cut at the duration
        tail = _numbers(list(reader.frames(fps=2, start=8.2, end=30.0)))
        assert tail == [math.floor((8.2 + k / 2) * 25 + 1e-6) for k in range(4)]
        # negative start counts as 0
        assert _numbers(list(reader.frames(fps=1, start=-2.5, end=3.0))) == [0, 25, 50]
        # a window as dense as the video: every frame, once
        assert _numbers(list(reader.frames(fps=50, start=4.0, end=4.4))) == list(range(100, 110))
        # start=0 / end=None is the whole video
        assert _numbers(list(reader.frames(fps=1, start=0.0, end=None))) == list(range(0, 250, 25))
        with pytest.raises(ValueError):
            reader.frames(fps=1, start=float("nan"))


@needs_frames
def test_pyav_window_seeks_instead_of_decoding_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real_decoded = decode.PyAVReader._decoded
    decoded: list[float] = []  # pts (s) of every frame the reader decoded

    def recording(self, container, vs, state):  # noqa: ANN001
        for frame in real_decoded(self, container, vs, state):
            if frame.pts is not None:
                decoded.append(float(frame.pts * vs.time_base))
            yield frame

    monkeypatch.setattr(decode.PyAVReader, "_decoded", recording)
    with open_video(FRAMES, "pyav") as reader:
        frames = list(reader.frames(fps=4, start=8.0, end=9.0))
        assert reader.seeks == 1
    assert _numbers(frames) == [200, 206, 212, 218]
    # frame 200 is a keyframe (GOP 50): decoding starts there, not at frame 0
    # (without the window seek the sparse-grid seek would only kick in after
    # decoding the first two GOPs)
    assert decoded and min(decoded) >= 8.0 - 1e-3, decoded[:5]
    assert len(decoded) < 50, len(decoded)
    # the whole-video grid never seeks
    with open_video(FRAMES, "pyav") as reader:
        list(reader.frames(fps=4))
        assert reader.seeks == 0


def test_pyav_window_recovers_when_the_seek_overshoots(long_coded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A window seek that lands after the window start must not skip its first frames."""
    real_seek = decode.PyAVReader._seek
    calls = []

    def bad_seek(self, container, vs, target, start, tb, state):  # noqa: ANN001
        calls.append(target)
        return real_seek(self, container, vs, target + (3.0 if len(calls) == 1 else 0.0), start, tb, state)

    monkeypatch.setattr(decode.PyAVReader, "_seek", bad_seek)
    with open_video(long_coded, "pyav") as reader:
        frames = list(reader.frames(fps=4, start=30.1, end=31.0))
    assert _numbers(frames) == [math.floor((30.1 + k / 4) * 25 + 1e-6) for k in range(4)]
    assert len(calls) >= 2 and calls[1] < calls[0]


def test_window_deep_in_a_longer_video(long_coded: Path, backend: str) -> None:
    with open_video(long_coded, backend) as reader:
        frames = list(reader.frames(fps=4, start=33.3, end=34.3, max_side=160))
        if backend == "pyav":
            assert reader.seeks == 1
    assert _numbers(frames) == [math.floor((33.3 + k / 4) * 25 + 1e-6) for k in range(4)]
    assert all(rgb.shape == (120, 160, 3) for _, rgb in frames)


# --------------------------------------------------------------------------- #
# probe
# --------------------------------------------------------------------------- #


@needs_frames
def test_probe_frames_fixture() -> None:
    info = probe(FRAMES)
    assert isinstance(info, VideoInfo)
    assert abs(info.duration - 10.0) <= 0.05
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == (320, 240)
    assert info.has_video and not info.has_audio
    assert info.num_frames in (None, 250)
    assert info.path == str(FRAMES)


@needs_bunny
def test_probe_webm_without_header_duration() -> None:
    info = probe(BUNNY)
    assert abs(info.duration - 30.0) <= 0.5
    assert (info.width, info.height) == (1280, 720)
    assert info.has_video and info.has_audio
    assert info.fps == pytest.approx(24.0, abs=0.1)


@needs_bunny
def test_webm_one_frame_per_second_via_auto() -> None:
    with open_video(BUNNY) as reader:
        assert reader.name in BACKENDS
        frames = list(reader.frames(fps=1, max_side=128))
    assert 29 <= len(frames) <= 31
    assert all(rgb.shape == (72, 128, 3) for _, rgb in frames)
    pts = [p for p, _ in frames]
    assert pts == sorted(pts) and pts[0] == 0.0 and pts[-1] < 30.0


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable sink: Matroska written to it has no duration."""

    def __init__(self, fh) -> None:  # noqa: ANN001
        self.fh = fh

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b) -> int:  # noqa: ANN001
        return self.fh.write(b)


@needs_frames
def test_probe_measures_duration_by_demuxing_when_container_has_none(tmp_path: Path) -> None:
    import av

    path = tmp_path / "piped.mkv"
    with av.open(str(FRAMES)) as src, open(path, "wb") as fh:
        out = av.open(_Pipe(fh), "w", format="matroska")
        ins = src.streams.video[0]
        ost = out.add_stream_from_template(ins)
        for packet in src.demux(ins):
            if packet.dts is None:
                continue
            packet.stream = ost
            out.mux(packet)
        out.close()
    with av.open(str(path)) as c:
        assert c.duration is None and c.streams.video[0].duration is None
    info = probe(path)
    assert abs(info.duration - 10.0) <= 0.05
    with open_video(path) as reader:  # "auto" falls back past backends that refuse such files
        assert _numbers(list(reader.frames(fps=1))) == list(range(0, 250, 25))


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """frames.mp4 remuxed with a 90-degree display matrix, as phones write portrait video."""
    import av

    if not FRAMES.exists():
        pytest.skip("frames.mp4 missing")
    path = tmp_path_factory.mktemp("decode") / "portrait.mp4"
    with av.open(str(FRAMES)) as src, av.open(str(path), "w") as out:
        ins = src.streams.video[0]
        ost = out.add_stream_from_template(ins)
        if not hasattr(ost, "set_display_rotation"):
            pytest.skip("this PyAV cannot write a display matrix")
        ost.set_display_rotation(90)
        for packet in src.demux(ins):
            if packet.dts is None:
                continue
            packet.stream = ost
            out.mux(packet)
    return path


def test_rotated_video_is_turned_upright(rotated: Path, backend: str) -> None:
    info = probe(rotated)
    assert (info.width, info.height) == (240, 320)  # displayed size
    for max_side, shape in ((None, (320, 240, 3)), (160, (160, 120, 3))):
        frames = _sample(rotated, backend, fps=1, max_side=max_side)
        assert all(rgb.shape == shape for _, rgb in frames)
        # 90 degrees counter-clockwise: turning it back clockwise restores the code
        assert [read_frame_number(np.rot90(rgb, -1)) for _, rgb in frames] == list(range(0, 250, 25))


def test_frame_helpers_give_the_pyav_readers_pictures(rotated: Path) -> None:
    """decode.frame_size / frame_rgb, for callers that decode PyAV frames themselves (the live follower)."""
    import av
    from av.video.reformatter import VideoReformatter

    with open_video(rotated, "pyav") as reader:
        expected = [rgb for _, rgb in reader.frames(fps=25, max_side=160)][:3]
    reformatter = VideoReformatter()
    got = []
    with av.open(str(rotated)) as container:
        for frame in container.decode(video=0):
            assert decode.frame_size(frame, None) is None and decode.frame_size(frame, 320) is None
            size = decode.frame_size(frame, 160)
            assert size == (120, 160)  # the displayed (w, h): portrait
            got.append(decode.frame_rgb(frame, size, reformatter))
            if len(got) == 3:
                break
    assert [read_frame_number(np.rot90(rgb, -1)) for rgb in got] == [0, 1, 2]
    for rgb, want in zip(got, expected):
        assert rgb.flags.c_contiguous
        np.testing.assert_array_equal(rgb, want)


# --------------------------------------------------------------------------- #
# audio
# --------------------------------------------------------------------------- #


@needs_talk
def test_read_audio_talk() -> None:
    info = probe(TALK)
    audio = read_audio(TALK)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - info.duration * 16000) <= 0.1 * 16000
    assert float(np.abs(audio).max()) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 1e-3  # there is speech in it
    assert abs(len(read_audio(TALK, sample_rate=8000)) - info.duration * 8000) <= 0.1 * 8000


@needs_frames
def test_read_audio_without_audio_stream_is_empty() -> None:
    audio = read_audio(FRAMES)
    assert audio.dtype == np.float32 and audio.shape == (0,)


@needs_bunny
def test_read_audio_webm() -> None:
    audio = read_audio(BUNNY)
    assert audio.dtype == np.float32
    assert abs(len(audio) / 16000 - 30.0) <= 0.5


def _write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 220 * t)], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((stereo * 0.5 * 32767).astype("<i2").tobytes())


def test_read_audio_resamples_and_downmixes(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    _write_wav(path, seconds=1.0, rate=8000)
    audio = read_audio(path, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 160
    assert 0.1 < float(np.abs(audio).max()) <= 1.0


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "x.mp4"
    text.write_text("this is not a video\n" * 20)
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    return {"missing": tmp_path / "nope.mp4", "empty": empty, "text": text, "folder": folder}


@pytest.mark.parametrize("fn", [probe, open_video, read_audio], ids=["probe", "open_video", "read_audio"])
def test_bad_files_raise_one_line_decode_errors(tmp_path: Path, fn) -> None:  # noqa: ANN001
    for kind, path in _bad_files(tmp_path).items():
        with pytest.raises(DecodeError) as err:
            fn(path)
        msg = str(err.value)
        assert path.name in msg, (kind, msg)
        assert "\n" not in msg, (kind, msg)
    with pytest.raises(DecodeError, match="empty"):
        fn(tmp_path / "empty.mp4")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    _write_wav(path)
    with pytest.raises(DecodeError, match="no video stream") as err:
        probe(path)
    assert "tone.wav" in str(err.value)
    with pytest.raises(DecodeError, match="no video stream"):
        open_video(path)
    info = probe(path, require_video=False)
    assert not info.has_video and info.has_audio and abs(info.duration - 1.0) < 0.05


@needs_frames
def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "pyav" in BACKENDS and set(BACKENDS) <= set(ALL)  # PyAV always installs: the fallback
    avail = available_backends()
    assert avail["pyav"] is None
    for name, reason in avail.items():
        assert reason is None or (isinstance(reason, str) and "\n" not in reason and name in reason)
    with pytest.raises(DecodeError, match="unknown video backend"):
        open_video(FRAMES, "ffmpeg-cli")

    # a named backend that is not installed says why
    monkeypatch.setattr(decode, "_AVAILABLE", {**avail, "decord": "decord not installed: pip install decord"})
    with pytest.raises(DecodeError, match="pip install decord") as err:
        open_video(FRAMES, "decord")
    assert "frames.mp4" in str(err.value)

    # "auto" falls back to the next backend when one fails to open the file
    def broken(path, info):  # noqa: ANN001
        raise DecodeError(f"{path}: torchcodec cannot open it: simulated")

    monkeypatch.setattr(decode, "_AVAILABLE", {name: None for name in avail})
    monkeypatch.setitem(decode._FACTORIES, "torchcodec", broken)
    monkeypatch.setattr(decode, "BACKENDS", ("torchcodec", "pyav"))
    with open_video(FRAMES) as reader:
        assert reader.name == "pyav"
        assert isinstance(reader, VideoReader)


@needs_talk
@pytest.mark.parametrize("name", ["auto", *ALL])
def test_truncated_file_stops_gracefully(tmp_path: Path, name: str) -> None:
    if name != "auto" and available_backends()[name] is not None:
        pytest.skip(available_backends()[name])
    data = TALK.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        reader = open_video(cut, name)
    except DecodeError as exc:
        if name == "decord":  # decord refuses truncated MP4s outright; "auto" never picks it then
            assert "cut.mp4" in str(exc)
            return
        raise
    with reader, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(reader.frames(fps=1, max_side=64))
    assert 5 <= len(frames) < 60
    pts = [p for p, _ in frames]
    assert pts == sorted(pts)
    assert any("cut.mp4" in str(w.message) for w in caught)  # the user is told it stopped early
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio = read_audio(cut)
    assert 0 < len(audio) < probe(TALK).duration * 16000


def test_invalid_arguments(tmp_path: Path) -> None:
    if not FRAMES.exists():
        pytest.skip("frames.mp4 missing")
    with open_video(FRAMES, "pyav") as reader:
        with pytest.raises(ValueError):
            reader.frames(fps=0)
        with pytest.raises(ValueError):
            reader.frames(fps=1, max_side=0)


def test_heavy_libraries_are_imported_lazily() -> None:
    code = (
        "import sys, vdisc\n"
        "before = set(sys.modules)\n"
        "import vdisc.index.decode\n"
        "heavy = {'av', 'decord', 'torch', 'torchcodec'} & (set(sys.modules) - before)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
