"""How fast is `vdisc index` on a GPU, stage by stage?

Builds a test video (default 60 minutes of 1080p at 25 fps: ffmpeg's testsrc2
pattern, its hue shifted every 15 s so the cut detector finds shots, a running
clock drawn on it for OCR, and espeak-ng speech looped under it -- a sine tone
when espeak-ng is missing). One minute is encoded and then concatenated
without re-encoding, so even an hour costs only that minute's encode; the
file is cached under --work. Then, for each variant (visual model x captions
on/off), it indexes the video into a fresh library and reports:

- frames/s decoded (a decode-only pass with the indexer's sampling), and
  per stage inside the index run: frames/s through the decoder, the cut
  detector's histograms, the visual model, OCR, and clips/s captioned. A
  stage's rate is its items over the seconds spent inside it; stages overlap
  (decoding reads ahead, ASR and the models of a batch run at once), so the
  rates say which stage bounds the run, and the wall time says what it cost
- speech: media seconds transcribed per second
- GPU utilisation (mean / max of nvidia-smi samples every 0.5 s, when
  nvidia-smi is present), peak memory torch allocated
  (``torch.cuda.max_memory_allocated``) and nvidia-smi's peak memory used
- wall time and real-time factor (index seconds / video seconds)

and prints one markdown table (also written to --out as JSON and markdown).

Usage:
  python benchmarks/gpu_index.py                       # 60 min 1080p, ViT-B-32 and ViT-L-14, captions off/on
  python benchmarks/gpu_index.py --minutes 1 --height 480 --device cpu --random-weights \\
      --visual ViT-B-32 --captions off                 # a quick CPU run that proves it works
Models: ``--visual`` takes open_clip architecture names, loaded with the
pretrained tag ``--pretrained`` (default openai) from the Hugging Face cache;
``--random-weights`` builds the same architectures with random weights (the
same compute, for machines without the weights). Captions "on" use
``--caption-model`` (default: caption=auto, the VLM when it is cached).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
SEGMENT_SECONDS = 60  # encoded once, concatenated to the asked length
MODEL_MISSING = 3  # exit status when the asked visual model cannot load (scripts/gpu_checks.sh retries)
SPEECH = ("This is the vdisc benchmark. The picture shows a test pattern and a clock. "
          "Every fifteen seconds its colours change, and the indexer should find a new shot there. "
          "Speech is transcribed while the frames are decoded, embedded and read.")


# --------------------------------------------------------------------------- #
# The test video
# --------------------------------------------------------------------------- #


def make_video(work: Path, minutes: float, height: int, fps: int = 25) -> Path:
    """The cached test video of ``minutes`` at ``height`` p (16:9), H.264 + AAC."""
    width = (height * 16 // 9) // 2 * 2
    seconds = max(1, round(minutes * 60))
    out = work / f"gpu_bench_{seconds}s_{height}p.mp4"
    if out.exists():
        return out
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed to build the benchmark video (apt-get install ffmpeg)")
    work.mkdir(parents=True, exist_ok=True)
    seg_len = min(SEGMENT_SECONDS, seconds)
    seg = work / f"segment_{seg_len}s_{height}p.mp4"
    if not seg.exists():
        audio = _audio_input(work, seg_len)
        clock = (f"drawtext=text='%{{pts\\:hms}}':fontsize={max(16, height // 12)}:fontcolor=white:"
                 f"box=1:boxcolor=black@0.8:x=w/20:y=h/12")
        video = f"testsrc2=size={width}x{height}:rate={fps}:duration={seg_len},hue=H=2*PI*floor(t/15)/5"
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video, *audio,
               "-vf", clock, "-map", "0:v", "-map", "1:a", "-t", str(seg_len),
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "250", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "64k", str(seg)]
        if subprocess.run(cmd).returncode:  # drawtext needs libfreetype: go without the clock
            cmd[cmd.index("-vf") + 1] = "null"
            subprocess.run(cmd, check=True)
    if seg_len == seconds:
        shutil.copy(seg, out)
        return out
    parts = work / f"concat_{seconds}s_{height}p.txt"
    copies = -(-seconds // seg_len)
    parts.write_text("".join(f"file '{seg.resolve()}'\n" for _ in range(copies)))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(parts),
                    "-t", str(seconds), "-c", "copy", str(out)], check=True)
    return out


def _audio_input(work: Path, seconds: int) -> list[str]:
    """ffmpeg input arguments for the soundtrack: looped espeak-ng speech, else a quiet sine tone."""
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    raw, wav = work / "speech_raw.wav", work / "speech.wav"
    if not wav.exists() and espeak and subprocess.run([espeak, "-w", str(raw), SPEECH]).returncode == 0:
        # 2 s of silence after each reading: unbroken looped speech makes Whisper's VAD window give up
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-af", "apad=pad_dur=2",
                        str(wav)], check=True)
    if wav.exists():
        return ["-stream_loop", "-1", "-i", str(wav)]
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]


# --------------------------------------------------------------------------- #
# Per-stage timers
# --------------------------------------------------------------------------- #


@dataclass
class Stage:
    items: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, items: int, seconds: float) -> None:
        with self.lock:
            self.items += items
            self.seconds += seconds

    @property
    def rate(self) -> float | None:
        return self.items / self.seconds if self.seconds > 0 and self.items else None


def timed(stage: Stage, fn: Callable[..., Any], count: Callable[..., int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stage.add(count(*args, **kwargs), time.perf_counter() - t)

    return wrapper


def timed_frames(stage: Stage, frames: Iterator[Any]) -> Iterator[Any]:
    """The reader's frames, with the time spent producing each one counted."""
    while True:
        t = time.perf_counter()
        try:
            item = next(frames)
        except StopIteration:
            return
        stage.add(1, time.perf_counter() - t)
        yield item


class GPUSampler:
    """nvidia-smi every 0.5 s in a thread: utilisation % and memory used (MiB)."""

    def __init__(self) -> None:
        self.util: list[float] = []
        self.mem: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.smi = shutil.which("nvidia-smi")

    def __enter__(self) -> "GPUSampler":
        if self.smi:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run([self.smi, "--query-gpu=utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits", "-i", "0"],
                                     capture_output=True, text=True, timeout=5).stdout.strip().splitlines()
                util, mem = (float(x) for x in out[0].split(","))
                self.util.append(util)
                self.mem.append(mem)
            except Exception:  # noqa: BLE001 - a missed sample is not worth failing a benchmark
                pass
            self._stop.wait(0.5)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# --------------------------------------------------------------------------- #
# One variant
# --------------------------------------------------------------------------- #


def decode_only(video: Path, device: str, decoder: str) -> dict[str, Any]:
    """Frames/s of the indexer's sampling alone (cut_fps grid at max_side), on the indexer's device."""
    from vdisc.config import Settings
    from vdisc.index import decode

    st = Settings.load(device=device)
    t, n = time.perf_counter(), 0
    with decode.open_video(video, backend=decoder, device=decode.frame_device(device)) as reader:
        for _, rgb in reader.frames(fps=max(st.cut_fps, st.fps), max_side=st.max_side):
            n += 1
        _sync(device)
        name, where = reader.name, getattr(reader, "decode_device", "cpu")
    seconds = time.perf_counter() - t
    return {"frames": n, "seconds": seconds, "fps": n / seconds, "decoder": name, "decode_device": where}


def index_once(video: Path, work: Path, device: str, decoder: str, visual: str, caption: str, asr: str,
               ocr: str) -> dict[str, Any]:
    from vdisc import Library
    from vdisc.config import Settings
    from vdisc.index import decode, pipeline

    home = work / "lib"
    shutil.rmtree(home, ignore_errors=True)
    st = Settings.load(home=home, device=device, decoder=decoder, offline=True,
                       models={"visual": visual, "caption": caption, "asr": asr, "ocr": ocr})
    notices: list[str] = []
    lib = Library(settings=st, notify=notices.append)
    for role in ("visual", "text", "asr", "ocr", "caption"):
        lib.registry.get(role)  # loading is a one-off cost, not per video
    stages = {name: Stage() for name in ("decode", "histogram", "visual", "ocr", "caption", "speech")}
    models = {role: lib.registry.get(role) for role in ("visual", "ocr", "caption", "asr")}
    if models["visual"] is None and visual != "none":  # a benchmark without its model measures nothing
        print(f"visual model {visual} unavailable: {' | '.join(map(str, notices))}", file=sys.stderr)
        raise SystemExit(MODEL_MISSING)
    if models["visual"] is not None:
        models["visual"].encode_images = timed(stages["visual"], models["visual"].encode_images, lambda f: len(f))
    if models["ocr"] is not None:
        models["ocr"].read = timed(stages["ocr"], models["ocr"].read, lambda rgb: 1)
    if models["caption"] is not None:
        models["caption"].caption = timed(stages["caption"], models["caption"].caption,
                                          lambda clips, *a, **k: len(clips))
    if models["asr"] is not None:
        models["asr"].transcribe = timed(stages["speech"], models["asr"].transcribe,
                                         lambda audio, *a, **k: int(len(audio) / 16000))
    opened: dict[str, Any] = {}
    real_open, real_hist = decode.open_video, pipeline.histogram

    def open_timed(*args: Any, **kwargs: Any) -> Any:
        reader = real_open(*args, **kwargs)
        opened.update(decoder=reader.name, decode_device=getattr(reader, "decode_device", "cpu"),
                      frames_on=getattr(reader, "device", None) or "host")
        frames = reader.frames
        reader.frames = lambda *a, **k: timed_frames(stages["decode"], iter(frames(*a, **k)))
        return reader

    decode.open_video = open_timed
    pipeline.histogram = timed(stages["histogram"], real_hist, lambda rgb: 1)
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    try:
        with GPUSampler() as gpu:
            t = time.perf_counter()
            (report,) = lib.index(video, force=True)
            _sync(device)
            wall = time.perf_counter() - t
    finally:
        decode.open_video, pipeline.histogram = real_open, real_hist
    if report.status != "indexed":
        raise SystemExit(f"indexing failed: {report.reason}")
    out: dict[str, Any] = {
        "wall_s": wall, "duration_s": report.duration, "rtf": wall / max(report.duration, 1e-9),
        "clips": report.clips, "frames_kept": report.frames, "words": report.words, "channels": report.channels,
        "rates": {name: s.rate for name, s in stages.items()},
        "items": {name: s.items for name, s in stages.items()},
        "busy_s": {name: round(s.seconds, 2) for name, s in stages.items()},
        "visual_batch": getattr(models["visual"], "batch_size", None),
        "ocr_provider": (models["ocr"].spec.preprocessing.get("provider") if models["ocr"] is not None else None),
        "notices": [str(n) for n in notices], **opened,
    }
    if cuda:
        import torch

        out["torch_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if gpu.util:
        out.update(gpu_util_mean=statistics.fmean(gpu.util), gpu_util_max=max(gpu.util), smi_peak_mib=max(gpu.mem))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


def _fmt(x: Any, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="video length (default 60)")
    ap.add_argument("--height", type=int, default=1080, help="video height, 16:9 (default 1080)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--decoder", default="auto", help="auto | pyav | torchcodec | decord")
    ap.add_argument("--visual", default="ViT-B-32,ViT-L-14", help="comma list of open_clip architectures")
    ap.add_argument("--pretrained", default="openai", help="open_clip pretrained tag (ignored with --random-weights)")
    ap.add_argument("--random-weights", action="store_true", help="build the architectures with random weights")
    ap.add_argument("--captions", default="off,on", help="comma list of off/on")
    ap.add_argument("--caption-model", default="auto", help="captioner for captions=on (auto, hf:<id>, ...)")
    ap.add_argument("--asr", default="tiny.en", help="speech model (none to skip)")
    ap.add_argument("--ocr", default="rapidocr", help="ocr model (none to skip)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vdisc-gpu-bench")
    ap.add_argument("--out", type=Path, default=None, help="directory for results.json and table.md")
    args = ap.parse_args()

    from vdisc.index import decode
    from vdisc.index.models.device import resolve_device

    device = resolve_device(args.device)
    video = make_video(args.work, args.minutes, args.height)
    info = decode.probe(video)
    gpu_name = ""
    if device.startswith("cuda"):
        import torch

        gpu_name = torch.cuda.get_device_name(torch.device(device))
    print(f"video: {video.name}, {info.duration:.0f} s, {info.width}x{info.height} @ {info.fps:g} fps; "
          f"device: {device}{' (' + gpu_name + ')' if gpu_name else ''}; {os.cpu_count()} CPU cores; "
          f"Python {platform.python_version()}; weights: {'random' if args.random_weights else args.pretrained}",
          flush=True)
    dec = decode_only(video, device, args.decoder)
    print(f"decode only: {dec['frames']} frames in {dec['seconds']:.1f} s = {dec['fps']:.1f} frames/s "
          f"({dec['decoder']} on {dec['decode_device']})", flush=True)

    rows: list[dict[str, Any]] = []
    for arch in [a for a in args.visual.split(",") if a]:
        ref = arch if args.random_weights else f"{arch}@{args.pretrained}"
        for captions in [c for c in args.captions.split(",") if c]:
            caption = args.caption_model if captions == "on" else "none"
            r = index_once(video, args.work, device, args.decoder, ref, caption, args.asr, args.ocr)
            missing = captions == "on" and "caption" not in r["channels"]
            r.update(visual=ref, captions=f"{captions} (unavailable)" if missing else captions)
            rows.append(r)
            print(json.dumps(r, default=str), flush=True)

    header = ("| visual | captions | decoded fps (alone / in run) | histograms fps | embedded fps | OCR fps | "
              "clips captioned /s | speech x real time | GPU util mean / max % | torch peak MiB | "
              "nvidia-smi peak MiB | wall s | real-time factor |")
    lines = [f"{info.duration / 60:.3g} min {info.width}x{info.height} video on {device}"
             f"{' (' + gpu_name + ')' if gpu_name else ''}, {os.cpu_count()} CPU cores; decoder "
             f"{dec['decoder']} on {dec['decode_device']}; weights {'random' if args.random_weights else args.pretrained}",
             "", header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        rate = r["rates"]
        lines.append(
            f"| {r['visual']} (batch {r['visual_batch']}) | {r['captions']} | {dec['fps']:.1f} / "
            f"{_fmt(rate['decode'])} | {_fmt(rate['histogram'], '.0f')} | {_fmt(rate['visual'])} | "
            f"{_fmt(rate['ocr'])} ({r['ocr_provider'] or 'off'}) | {_fmt(rate['caption'], '.2f')} | "
            f"{_fmt(rate['speech'])} | {_fmt(r.get('gpu_util_mean'), '.0f')} / {_fmt(r.get('gpu_util_max'), '.0f')} | "
            f"{_fmt(r.get('torch_peak_mib'), '.0f')} | {_fmt(r.get('smi_peak_mib'), '.0f')} | {r['wall_s']:.1f} | "
            f"{r['rtf']:.3f} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"decode_only": dec, "runs": rows}, indent=2, default=str))
        (args.out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
