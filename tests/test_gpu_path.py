"""The GPU indexing path (issue 17), checked on the CPU where it can be and on CUDA where one is here.

The path: frames decoded into torch uint8 tensors (NVDEC on CUDA) flow through
the cut detector's histograms and the visual model's preprocessing without
leaving the device; only the frames OCR and the captioner read go to the host;
visual, OCR and captions of a batch run at once; the GPU batch is sized from
free memory; OCR runs on onnxruntime's CUDA provider when it has one. On the
CPU every one of these must give exactly what the numpy path gives.

Tests named ``test_cuda_*`` need a CUDA GPU and skip without one
(``scripts/gpu_checks.sh`` runs them with ``-k cuda``).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from vdisc.config import Settings
from vdisc.index import decode
from vdisc.index.models import device as devmod
from vdisc.index.models import ocr as ocrmod
from vdisc.index.perceive import ClipResult, Perceiver, host, run_together
from vdisc.index.segment import ClipSpan, SampledFrame, histogram, hsv_codes, hsv_codes_torch

from conftest import FIXTURES

torch = pytest.importorskip("torch")

FRAMES = FIXTURES / "frames.mp4"  # 320x240, frame numbers drawn as a code
INJECT = FIXTURES / "inject.mp4"  # 20 s, 480x270, on-screen text
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here (torch.cuda.is_available() is False)")


def _backends() -> list[str]:
    return [name for name in ("pyav", "torchcodec") if decode.available_backends()[name] is None]


# --------------------------------------------------------------------------- #
# Decoding into tensors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("max_side", [None, 200])
def test_reader_with_a_device_yields_the_same_frames_as_tensors(backend, max_side):
    with decode.open_video(FRAMES, backend) as reader:
        want = list(reader.frames(fps=3.0, max_side=max_side, start=1.0, end=6.0))
    with decode.open_video(FRAMES, backend, device="cpu") as reader:
        assert reader.device == "cpu" and reader.decode_device == "cpu"
        got = list(reader.frames(fps=3.0, max_side=max_side, start=1.0, end=6.0))
    assert [t for t, _ in got] == [t for t, _ in want] and len(got) >= 10
    for (_, a), (_, b) in zip(want, got):
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor) and b.dtype == torch.uint8
        assert np.array_equal(a, b.numpy())


def test_readers_without_a_device_still_give_numpy():
    for backend in _backends():
        with decode.open_video(FRAMES, backend) as reader:
            assert reader.device is None
            _, rgb = next(iter(reader.frames(fps=1.0)))
            assert isinstance(rgb, np.ndarray)


def test_frame_device_keeps_only_gpu_frames_on_the_device():
    assert decode.frame_device("cpu") is None and decode.frame_device("mps") is None
    assert decode.frame_device("cuda") == "cuda" and decode.frame_device("cuda:1") == "cuda:1"


@pytest.mark.skipif(CUDA, reason="checks the fallback of a machine without CUDA")
def test_no_gpu_decoding_falls_back_to_the_cpu_and_says_so_once(caplog):
    info = decode.probe(FRAMES)
    decode._SAID.clear()
    with caplog.at_level(logging.WARNING, logger="vdisc.index.decode"):
        assert decode._open_on_gpu(str(FRAMES), info, "cuda") is None
        assert decode._open_on_gpu(str(FRAMES), info, "cuda") is None
    said = [r.getMessage() for r in caplog.records if "decoding on the CPU" in r.getMessage()]
    assert len(said) == 1, said
    assert decode.cuda_decode_unavailable() is not None


@pytest.mark.skipif(decode.available_backends()["torchcodec"] is not None, reason="torchcodec unavailable")
def test_gpu_side_resize_matches_the_decoders_resize():
    """NVDEC frames are resized with torch; on the CPU that must look like torchcodec's own Resize."""
    from vdisc.index.decode.torchcodec_reader import _resize

    with decode.open_video(INJECT, "torchcodec", device="cpu") as reader:
        full = [rgb for _, rgb in reader.frames(fps=0.5)]
        small = [rgb for _, rgb in reader.frames(fps=0.5, max_side=320)]
    ours = _resize(torch.stack(full), (small[0].shape[1], small[0].shape[0]))
    assert ours.shape == torch.stack(small).shape and ours.dtype == torch.uint8
    diff = (ours.float() - torch.stack(small).float()).abs()
    # the same filter: rounding apart (measured: mean 0.0004, max 1 level)
    assert float(diff.mean()) < 0.05 and float(diff.max()) <= 2, (float(diff.mean()), float(diff.max()))


@pytest.mark.skipif(decode.available_backends()["torchcodec"] is not None, reason="torchcodec unavailable")
def test_the_nvdec_reader_logic_with_the_cpu_decoder_standing_in(monkeypatch):
    """TorchCodecReader(device="cuda") with VideoDecoder forced onto the CPU: one full-size decoder,
    a probe decode at open, frames resized by torch -- the same frames as the CPU reader's."""
    import torchcodec.decoders as tcd

    from vdisc.index.decode.torchcodec_reader import TorchCodecReader

    made: list[str] = []
    real = tcd.VideoDecoder

    def cpu_decoder(path, **kwargs):
        made.append(kwargs.pop("device"))
        return real(path, **kwargs)

    monkeypatch.setattr(tcd, "VideoDecoder", cpu_decoder)
    info = decode.probe(INJECT)
    reader = TorchCodecReader(str(INJECT), info, device="cuda")
    reader.device = "cpu"  # where the frames go: no GPU here to move them to
    with reader:
        assert reader.decode_device == "cuda"
        got = list(reader.frames(fps=0.5, max_side=320))
    monkeypatch.setattr(tcd, "VideoDecoder", real)
    assert made == ["cuda"]  # one decoder, full size, for every max_side
    with decode.open_video(INJECT, "torchcodec", device="cpu") as ref:
        want = list(ref.frames(fps=0.5, max_side=320))
    assert [t for t, _ in got] == [t for t, _ in want]
    for (_, g), (_, w) in zip(got, want):
        assert g.shape == w.shape and int((g.int() - w.int()).abs().max()) <= 2


# --------------------------------------------------------------------------- #
# Histograms on the frames' device
# --------------------------------------------------------------------------- #


def test_torch_histogram_is_bit_identical_to_numpy():
    rng = np.random.default_rng(0)
    for i in range(60):
        rgb = rng.integers(0, 256, (int(rng.integers(1, 300)), int(rng.integers(1, 500)), 3), dtype=np.uint8)
        if i % 3 == 0:
            rgb[..., 1] = rgb[..., 0]  # ties between channels pick the hue branch
        if i % 4 == 0:
            rgb = (rgb // 64 * 64).astype(np.uint8)  # few colours, many exact ties
        want, got = histogram(rgb), histogram(torch.from_numpy(rgb))
        assert got.dtype == want.dtype == np.float32 and np.array_equal(want, got), i


def test_torch_hsv_codes_equal_numpy_over_the_colour_cube():
    """Every (r, g) pair with 16 blue levels: a million colours, each binned the same."""
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(0, 256, 17), indexing="ij")
    img = np.stack([r, g, b], -1).astype(np.uint8).reshape(-1, 1, 3)
    small = img.astype(np.float32) / 255.0
    assert np.array_equal(hsv_codes(small), hsv_codes_torch(torch.from_numpy(small)).numpy())


def test_histograms_of_decoded_tensors_equal_those_of_arrays():
    with decode.open_video(INJECT, "pyav") as reader:
        arrays = [rgb for _, rgb in reader.frames(fps=1.0, max_side=640)]
    with decode.open_video(INJECT, "pyav", device="cpu") as reader:
        tensors = [rgb for _, rgb in reader.frames(fps=1.0, max_side=640)]
    for a, t in zip(arrays, tensors):
        assert np.array_equal(histogram(a), histogram(t))


# --------------------------------------------------------------------------- #
# Indexing through the tensor path gives what the numpy path gives
# --------------------------------------------------------------------------- #


def _index_results(tmp_path, name, models, backend, tensors, monkeypatch):
    """Index INJECT; the clip results the writer was handed."""
    from vdisc import Library
    from vdisc.index import writer

    seen: list[ClipResult] = []
    add = writer.VideoWriter.add

    def spy(self, results):
        seen.extend(results)
        return add(self, results)

    opened: list[object] = []
    real_open = decode.open_video

    def open_spy(*args, **kwargs):
        reader = real_open(*args, **kwargs)
        opened.append(reader.device)
        return reader

    with monkeypatch.context() as m:
        m.setattr(writer.VideoWriter, "add", spy)
        m.setattr(decode, "open_video", open_spy)
        if tensors:  # the CUDA path's frames, on the CPU: decode.frame_device keeps them as tensors
            m.setattr(decode, "frame_device", lambda device: device)
        lib = Library(tmp_path / name, device="cpu", decoder=backend, models=models)
        (report,) = lib.index(INJECT)
    assert report.status == "indexed", report.reason
    assert opened == (["cpu"] if tensors else [None])
    return seen


@pytest.mark.parametrize("backend", _backends())
def test_indexing_with_tensor_frames_equals_the_numpy_path(tmp_path, tiny_clip_dir, monkeypatch, backend):
    models = {"visual": f"local-dir:{tiny_clip_dir}", "asr": "none", "ocr": "rapidocr", "caption": "none"}
    plain = _index_results(tmp_path, "plain", models, backend, False, monkeypatch)
    gpu_like = _index_results(tmp_path, "tensors", models, backend, True, monkeypatch)
    assert len(plain) == len(gpu_like) >= 2
    assert any(r.ocr_lines for r in plain)  # the fixture shows text: OCR really ran
    for a, b in zip(plain, gpu_like):
        assert (a.span.start, a.span.end, a.span.shot) == (b.span.start, b.span.end, b.span.shot)
        assert np.array_equal(a.span.hist, b.span.hist)
        assert a.frame_ts == b.frame_ts
        assert np.array_equal(a.frame_vecs, b.frame_vecs)
        assert a.ocr_reads == b.ocr_reads and a.ocr_lines == b.ocr_lines


# --------------------------------------------------------------------------- #
# The models of a batch at once
# --------------------------------------------------------------------------- #


class _SlowVisual:
    batch_size = 32

    def __init__(self, log):
        self.log = log

    def encode_images(self, frames):
        self.log.append(("visual", threading.current_thread().name))
        time.sleep(0.2)
        return np.stack([np.asarray(host(f), np.float32).reshape(-1)[:4] for f in frames])


class _SlowOCR:
    def __init__(self, log):
        self.log = log

    def read(self, rgb):
        assert isinstance(rgb, np.ndarray)  # OCR gets host arrays, whatever the decoder gave
        self.log.append(("ocr", threading.current_thread().name))
        time.sleep(0.1)
        return [ocrmod.TextLine(text=f"mean {int(rgb.mean())}", score=0.9, box=[[0, 0]] * 4)]


class _SlowCaptioner:
    def __init__(self, log):
        self.log = log

    def caption(self, clips):
        self.log.append(("caption", threading.current_thread().name))
        time.sleep(0.2)
        return [f"{len(frames)} frames, first {frames[0].size}" for frames in clips]


def _batch(tensors: bool) -> list[ClipResult]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(3):
        frames = []
        for k in range(4):
            rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            frames.append(SampledFrame(i * 4 + k, torch.from_numpy(rgb) if tensors else rgb, histogram(rgb)))
        out.append(ClipResult(ClipSpan(i, i * 4.0, i * 4.0 + 4.0, 0, frames)))
    return out


def _perceive(overlap: bool, tensors: bool) -> tuple[list[ClipResult], list, float]:
    log: list = []
    st = Settings.load(device="cpu")
    p = Perceiver(st, _SlowVisual(log), _SlowOCR(log), _SlowCaptioner(log), overlap=overlap)
    batch = _batch(tensors)
    t = time.perf_counter()
    p(batch)
    return batch, log, time.perf_counter() - t


def test_overlapped_models_give_the_sequential_results_sooner():
    seq, seq_log, seq_s = _perceive(False, False)
    par, par_log, par_s = _perceive(True, True)  # tensors too: OCR and captions get host copies
    for a, b in zip(seq, par):
        assert a.frame_ts == b.frame_ts and np.array_equal(a.frame_vecs, b.frame_vecs)
        assert a.ocr_reads == b.ocr_reads and a.caption == b.caption and a.caption
        assert a.span.frames == b.span.frames == []  # dropped after the batch
    assert len({name for _, name in par_log}) == 3  # three threads
    assert len({name for _, name in seq_log}) == 1
    assert par_s < seq_s - 0.2, (par_s, seq_s)


def test_run_together_runs_everything_and_raises_the_first_error():
    done: list[str] = []

    def ok():
        time.sleep(0.05)
        done.append("ok")

    def bad():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_together([bad, ok, ok])
    assert done == ["ok", "ok"]
    run_together([])
    run_together([ok])
    assert len(done) == 3


def test_batch_frames_is_the_setting_on_the_cpu():
    st = Settings.load(device="cpu")
    assert Perceiver(st).batch_frames == st.batch_size
    assert Perceiver(st, _SlowVisual([])).batch_frames == st.batch_size  # visual batch 32 == the default

    class Sized:
        batch_size = 192  # what the loader measured on a GPU

    assert Perceiver(st, Sized()).batch_frames == 192


# --------------------------------------------------------------------------- #
# Batch size from free GPU memory
# --------------------------------------------------------------------------- #

GIB = 1 << 30
MIB = 1 << 20


def test_gpu_batch_size_from_fake_memory_figures():
    f = devmod.gpu_batch_size
    assert f(80 * GIB, 20 * MIB, 32) == devmod.GPU_MAX_BATCH  # plenty: capped
    assert f(4 * GIB, 20 * MIB, 32) == 96  # 2 GiB / 20 MiB = 102 -> a multiple of 8
    assert f(1 * GIB, 20 * MIB, 32) == 24  # below the setting on a nearly full GPU
    assert f(100 * MIB, 20 * MIB, 32) == 2  # under 8: as many as fit
    assert f(10 * MIB, 20 * MIB, 32) == 1  # never 0
    assert f(0, 20 * MIB, 32) == 1 and f(-5, 20 * MIB, 32) == 1
    assert f(80 * GIB, 0, 32) == 32  # cost unknown: the setting
    assert f(80 * GIB, 20 * MIB, 32, cap=1000, share=1.0) == 1000
    assert f(8 * GIB, 1 * GIB, 32, share=0.25) == 2


def test_batch_size_from_mem_get_info_on_a_gpu_device(monkeypatch):
    assert devmod.cuda_batch_size("cpu", 32, 20 * MIB) == 32  # the CPU default is untouched
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * GIB, 141 * GIB))
    assert devmod.cuda_batch_size("cuda", 32, 20 * MIB) == 96
    assert devmod.cuda_batch_size("cuda:0", 32, 20 * MIB) == 96

    def broken(device=None):
        raise RuntimeError("CUDA error: no device")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    assert devmod.cuda_batch_size("cuda", 32, 20 * MIB) == 32


# --------------------------------------------------------------------------- #
# OCR provider
# --------------------------------------------------------------------------- #


def test_ocr_provider_follows_onnxruntime(monkeypatch):
    import onnxruntime

    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: both)
    assert ocrmod.onnx_provider("cuda") == ocrmod.onnx_provider("cuda:1") == "CUDAExecutionProvider"
    assert ocrmod.onnx_provider("cpu") == "CPUExecutionProvider"  # never the GPU for a CPU run
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ocrmod.onnx_provider("cuda") == "CPUExecutionProvider"


def test_ocr_spec_records_its_provider(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    model = ocrmod.load("rapidocr", "cuda")  # asked for CUDA, onnxruntime has none: the CPU, recorded
    assert model.spec.preprocessing["provider"] == "CPUExecutionProvider"
    assert ocrmod.load("rapidocr", "cpu").spec.preprocessing["provider"] == "CPUExecutionProvider"


# --------------------------------------------------------------------------- #
# CUDA only
# --------------------------------------------------------------------------- #


@needs_cuda
def test_cuda_decoding_keeps_frames_on_the_gpu():
    assert decode.cuda_decode_unavailable() is None, decode.cuda_decode_unavailable()
    with decode.open_video(INJECT, "auto", device="cuda") as reader:
        assert reader.name == "torchcodec" and reader.decode_device.startswith("cuda"), \
            f"GPU decoding fell back to the CPU: {sorted(decode._SAID)}"
        gpu = list(reader.frames(fps=1.0, max_side=320))
    with decode.open_video(INJECT, "torchcodec") as reader:
        cpu = list(reader.frames(fps=1.0, max_side=320))
    assert [t for t, _ in gpu] == pytest.approx([t for t, _ in cpu], abs=1e-6)
    for (_, g), (_, c) in zip(gpu, cpu):
        assert g.is_cuda and g.dtype == torch.uint8 and tuple(g.shape) == c.shape
        # NVDEC converts colours with its own matrix: a few levels apart
        assert float((g.cpu().float() - torch.from_numpy(c).float()).abs().mean()) < 4.0


@needs_cuda
def test_cuda_histogram_equals_the_cpu_histogram():
    rng = np.random.default_rng(2)
    for _ in range(20):
        rgb = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
        assert np.array_equal(histogram(rgb), histogram(torch.from_numpy(rgb).cuda()))


@needs_cuda
def test_cuda_indexing_matches_the_cpu_within_tolerance(tmp_path, tiny_clip_dir):
    from vdisc import Library
    from vdisc.index import writer

    runs = {}
    for dev in ("cpu", "cuda"):
        seen: list[ClipResult] = []
        add = writer.VideoWriter.add
        writer.VideoWriter.add = lambda self, results, _add=add, _seen=seen: (_seen.extend(results), _add(self, results))[1]
        try:
            lib = Library(tmp_path / dev, device=dev, models={"visual": f"local-dir:{tiny_clip_dir}", "asr": "none",
                                                              "ocr": "rapidocr", "caption": "none"})
            (report,) = lib.index(INJECT)
        finally:
            writer.VideoWriter.add = add
        assert report.status == "indexed", report.reason
        runs[dev] = seen
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert abs(len(cpu) - len(gpu)) <= 1
    assert abs(sum(r.span.end - r.span.start for r in cpu) - sum(r.span.end - r.span.start for r in gpu)) < 1.0
    a = np.concatenate([r.frame_vecs for r in cpu if r.has_vectors])
    b = np.concatenate([r.frame_vecs for r in gpu if r.has_vectors])
    n = min(len(a), len(b))
    cos = (a[:n] * b[:n]).sum(1)  # both L2-normalised; bf16 on the GPU, decoder colours differ a little
    assert float(np.median(cos)) > 0.98, float(np.median(cos))
    cpu_words = {w for r in cpu for line in r.ocr_lines for w in line.split()}
    gpu_words = {w for r in gpu for line in r.ocr_lines for w in line.split()}
    assert len(cpu_words & gpu_words) >= 0.7 * max(1, len(cpu_words)), (cpu_words, gpu_words)


@needs_cuda
def test_cuda_visual_batch_is_sized_from_free_memory(tiny_clip_dir):
    from vdisc.index.models import Registry

    visual = Registry(Settings.load(device="cuda", models={"visual": f"local-dir:{tiny_clip_dir}"})).require("visual")
    assert visual.bytes_per_frame() > 0
    assert visual.batch_size >= 8  # a tiny model on a free GPU fits far more than the setting


@needs_cuda
def test_cuda_ocr_uses_the_gpu_provider_when_installed():
    import onnxruntime

    model = ocrmod.load("rapidocr", "cuda")
    want = "CUDAExecutionProvider" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else \
        "CPUExecutionProvider"
    assert model.spec.preprocessing["provider"] == want
    rgb = np.full((270, 480, 3), 255, np.uint8)
    assert model.read(rgb) == []  # a blank frame reads as nothing, on either provider


@needs_cuda
def test_cuda_mamba_scan_matches_the_lean_scan():
    from vdisc.index.models import scan

    if scan._mamba_cuda_fn() is None:
        pytest.skip("mamba-ssm is not installed")
    g = torch.Generator(device="cuda").manual_seed(0)
    bsz, dim, n, length = 2, 64, 16, 300
    u = torch.randn(bsz, dim, length, device="cuda", generator=g)
    delta = torch.rand(bsz, dim, length, device="cuda", generator=g) * 0.1
    A = -torch.rand(dim, n, device="cuda", generator=g) - 0.5
    B = torch.randn(bsz, n, length, device="cuda", generator=g)
    C = torch.randn(bsz, n, length, device="cuda", generator=g)
    D = torch.randn(dim, device="cuda", generator=g)
    z = torch.randn(bsz, dim, length, device="cuda", generator=g)
    fast = scan.selective_scan(u, delta, A, B, C, D, z, mode="cuda")
    lean = scan.selective_scan(u, delta, A, B, C, D, z, mode="lean")
    assert float((fast - lean).abs().max()) < 1e-3
