"""The ocr role: words shown on screen (RapidOCR on onnxruntime)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from vdisc.errors import ModelUnavailable

from .spec import ModelSpec

SETTING = "VDISC_OCR_MODEL (or --ocr-model)"
DET_MAX_SIDE = 960  # text detector input, pixels on the long side
MIN_SCORE = 0.5  # RapidOCR line confidence below this is mostly texture read as letters


class TextLine(BaseModel):
    text: str
    score: float
    box: list[list[float]]  # four corner points, pixels


@dataclass
class OCRModel:
    spec: ModelSpec
    engine: Any

    def read(self, rgb: np.ndarray) -> list[TextLine]:
        """Text lines in an RGB uint8 frame, top to bottom."""
        # RapidOCR wants BGR. No angle classifier: text in video is upright, and it costs a third of the time.
        result, _ = self.engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False)
        lines = [
            TextLine(text=tidy_reading(str(text).strip()), score=float(score), box=[list(map(float, p)) for p in box])
            for box, text, score in (result or [])
            if float(score) >= MIN_SCORE and str(text).strip()
        ]
        return sorted(lines, key=lambda line: (line.box[0][1], line.box[0][0]))


def tidy_reading(text: str) -> str:
    """A zero between two letters is the letter O misread ("RO0M 305" -> "ROOM 305"): no word spells a
    digit inside letters, while codes that mix them ("TERMINAL2", "B7") keep their digits at the edges."""
    def letters(m: re.Match) -> str:
        return ("O" if text[m.start() - 1].isupper() else "o") * len(m.group())

    return re.sub(r"(?<=[A-Za-z])0+(?=[A-Za-z])", letters, text)


def load(ref: str, device: str) -> OCRModel:
    if ref not in ("rapidocr", "rapidocr-onnxruntime"):
        raise ModelUnavailable(f"unknown ocr model {ref!r}: use 'rapidocr' or 'none'; fix {SETTING}")
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise ModelUnavailable("rapidocr-onnxruntime is not installed: pip install 'vdisc[offline]'") from None
    try:
        import importlib.metadata as md

        version = md.version("rapidocr-onnxruntime")
    except Exception:  # noqa: BLE001
        version = None
    cuda = onnx_provider(device) == CUDA_PROVIDER
    # Its default *upscales* the short side to 736 px; cap the long side instead (frames are already <= max_side).
    # (RapidOCR puts CUDA sessions on GPU 0 whatever cuda:N is.)
    engine = RapidOCR(det_limit_side_len=DET_MAX_SIDE, det_limit_type="max",
                      det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)
    provider = _session_provider(engine, CUDA_PROVIDER if cuda else CPU_PROVIDER)
    spec = ModelSpec(role="ocr", ref=ref, model_id="rapidocr-onnxruntime", revision=version, source="bundled",
                     preprocessing={"det_limit_side_len": DET_MAX_SIDE, "det_limit_type": "max", "use_cls": False,
                                    "provider": provider})
    return OCRModel(spec, engine)


CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"


def onnx_provider(device: str) -> str:
    """The onnxruntime provider OCR runs on: CUDA when indexing on a CUDA device and onnxruntime-gpu
    offers it (``get_available_providers``), else the CPU."""
    if not device.startswith("cuda"):
        return CPU_PROVIDER
    try:
        import onnxruntime

        available = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001 - no or broken onnxruntime: RapidOCR will say so itself
        return CPU_PROVIDER
    return CUDA_PROVIDER if CUDA_PROVIDER in available else CPU_PROVIDER


def _session_provider(engine: Any, asked: str) -> str:
    """The provider RapidOCR's detector session really runs on (it falls back to the CPU quietly)."""
    try:
        return str(engine.text_det.infer.session.get_providers()[0])
    except Exception:  # noqa: BLE001 - another RapidOCR layout: trust what was asked
        return asked
