"""A live source made in-test: talk.mp4 cut into MPEG-TS segments (PyAV, H.264 + AAC) and
published over time, either as an HLS playlist served on 127.0.0.1 or appended to one
growing .ts file."""

from __future__ import annotations

import http.server
import threading
import time
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

SEGMENT = 4.0  # seconds per segment (a keyframe starts each)


def make_segments(src: Path, out_dir: Path, seconds: float | None = None) -> list[Path]:
    """Cut ``src`` into independent TS segments with continuous timestamps; ``seconds`` past
    the end of ``src`` loop it (a long stream from a short file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        fps, rate = int(round(vin.average_rate)), ain.rate
        video = [f.to_ndarray(format="yuv420p") for f in inp.decode(vin)]
    with av.open(str(src)) as inp:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        audio = np.concatenate([f.to_ndarray() for fr in inp.decode(inp.streams.audio[0])
                                for f in resampler.resample(fr)], axis=1)
    total = len(video) / fps if seconds is None else seconds
    paths = []
    for k in range(int(np.ceil(total / SEGMENT - 1e-9))):
        lo, hi = k * SEGMENT, min((k + 1) * SEGMENT, total)
        path = out_dir / f"seg{k:03d}.ts"
        with av.open(str(path), "w", format="mpegts") as out:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
            vs.options = {"preset": "ultrafast", "g": str(int(SEGMENT * fps))}
            vs.codec_context.time_base = Fraction(1, fps)
            aus = out.add_stream("aac", rate=rate, layout="mono")
            aus.codec_context.time_base = Fraction(1, rate)
            for i in range(int(round(lo * fps)), int(round(hi * fps))):
                frame = av.VideoFrame.from_ndarray(video[i % len(video)], format="yuv420p")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
            a0, a1 = int(round(lo * rate)), int(round(hi * rate))
            for s in range(a0, a1, 1024):
                idx = np.arange(s, min(s + 1024, a1)) % audio.shape[1]
                chunk = np.ascontiguousarray(audio[:, idx])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, s, Fraction(1, rate)
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode():
                out.mux(p)
        paths.append(path)
    return paths


class Publisher:
    """Publishes segments one by one, every ``interval`` seconds, in a thread."""

    def __init__(self, segments: list[Path], interval: float, *, hls_dir: Path | None = None,
                 growing: Path | None = None) -> None:
        self.segments, self.interval = segments, interval
        self.hls_dir, self.growing = hls_dir, growing
        self.published = 0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Publisher":
        self._thread.start()
        return self

    @property
    def media_published(self) -> float:
        return self.published * SEGMENT

    def _run(self) -> None:
        for k, seg in enumerate(self.segments):
            data = seg.read_bytes()
            if self.growing is not None:
                with self.growing.open("ab") as fh:  # written in pieces, like a recorder would
                    for i in range(0, len(data), 65536):
                        fh.write(data[i : i + 65536])
                        fh.flush()
            if self.hls_dir is not None:
                (self.hls_dir / seg.name).write_bytes(data)
                self._playlist(k + 1, ended=False)
            self.published = k + 1
            time.sleep(self.interval)
        if self.hls_dir is not None:
            self._playlist(len(self.segments), ended=True)
        self.done.set()

    def _playlist(self, n: int, ended: bool) -> None:
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(SEGMENT)}", "#EXT-X-MEDIA-SEQUENCE:0"]
        for seg in self.segments[:n]:
            lines += [f"#EXTINF:{SEGMENT:.3f},", seg.name]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        tmp = self.hls_dir / ".live.m3u8"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.hls_dir / "live.m3u8")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_dir(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A real HTTP server for ``directory`` on 127.0.0.1 (an ephemeral port); returns (server, base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
