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
# Typography, not tuning: a word space is a quarter of an em or more, and wider than the gaps between the
# letters of a word; words of one line are closer than the line's height, and farther is another text.
SPACE_HEIGHT = 0.25  # a blank run of columns this share of the line's height or wider, and ...
SPACE_RATIO = 2.0  # ... this many times the line's median gap between letters, is a word space
ROW_GAP = 1.0  # boxes on one row with a gap under this many line heights are words of one line
ROW_OVERLAP = 0.5  # share of the shorter box's height two boxes must share to be on one row


class TextLine(BaseModel):
    text: str
    score: float
    box: list[list[float]]  # four corner points, pixels


@dataclass
class OCRModel:
    spec: ModelSpec
    engine: Any

    def read(self, rgb: np.ndarray) -> list[TextLine]:
        """Text lines in an RGB uint8 frame, top to bottom: word spaces the recogniser dropped put back
        (``restore_spaces``) and words the detector boxed apart on one row joined (``join_rows``)."""
        # RapidOCR wants BGR. No angle classifier: text in video is upright, and it costs a third of the time.
        # Letter boxes (return_word_box) cost nothing measurable: they come from the recogniser's own columns.
        result, _ = self.engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False, return_word_box=True)
        lines = []
        for box, text, score, *letters in result or []:
            text = str(text)
            if float(score) < MIN_SCORE or not text.strip():
                continue
            if len(letters) >= 2 and len(letters[0]) == len(letters[1]) and "".join(letters[1]) == text:
                centres = [float(np.mean([p[0] for p in b])) for b in letters[0]]
                text = restore_spaces(letters[1], centres, *_ink_gaps(rgb, box))
            lines.append(TextLine(text=tidy_reading(text.strip()), score=float(score),
                                  box=[list(map(float, p)) for p in box]))
        return join_rows(lines)


def restore_spaces(chars: list[str], centres: list[float], gaps: list[tuple[float, float]],
                   height: float) -> str:
    """``chars`` as text, with a space where the recogniser put none but the picture has one
    ("ASSEMBLYPOINT7" -> "ASSEMBLY POINT 7"): a blank run of columns between two letters (``gaps``, x
    ranges) at least SPACE_HEIGHT of the line's ``height`` wide and SPACE_RATIO times the line's median gap.
    ``centres`` are the letters' x centres, which place each space between its two letters."""
    widths = [b - a for a, b in gaps]
    if not widths:
        return "".join(chars)
    usual = float(np.median(widths))
    spaces = [(a + b) / 2 for a, b in gaps if b - a >= max(SPACE_HEIGHT * height, SPACE_RATIO * usual)]
    out = chars[:1]
    for ca, cb, a, b in zip(chars, chars[1:], centres, centres[1:]):
        if not ca.isspace() and not cb.isspace() and any(a < x < b for x in spaces):
            out.append(" ")
        out.append(cb)
    return "".join(out)


def _ink_gaps(rgb: np.ndarray, box: list[list[float]]) -> tuple[list[tuple[float, float]], float]:
    """The blank column runs between inked columns of a line's box in the frame (x ranges, frame pixels),
    and the box's height. Ink and paper are told apart by Otsu's threshold, paper being the class of the
    box's border (the detector's box has a margin); a busy background inks every column and gives no gaps."""
    x0, y0, x1, y1 = (int(round(v)) for v in _extent(box))
    x0, y0 = max(x0, 0), max(y0, 0)
    crop = rgb[y0:y1, x0:x1]
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return [], float(y1 - y0)
    gray = crop.mean(axis=2)
    light = (gray > _otsu(gray)).astype(np.uint8)
    border = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]])
    ink = light != (1 if border.mean() >= 0.5 else 0)
    cols = np.flatnonzero(ink.any(axis=0))
    gaps = [(float(x0 + a + 1), float(x0 + b)) for a, b in zip(cols, cols[1:]) if b - a > 1]
    return gaps, float(crop.shape[0])


def _otsu(gray: np.ndarray) -> float:
    """Otsu's threshold: the grey level that best splits the pixels into two classes."""
    hist = np.bincount(np.clip(gray, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = w0[-1] - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0 * w0[-1]) ** 2 / (w0 * w1)
    return float(np.argmax(np.where(np.isfinite(between), between, -1.0)))  # one grey: 0, all of it "light"


def _extent(box: list[list[float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    return min(xs), min(ys), max(xs), max(ys)


def join_rows(lines: list[TextLine]) -> list[TextLine]:
    """Lines on one text row (sharing ROW_OVERLAP of the shorter height) whose gap is under ROW_GAP line
    heights, joined left to right into one line ("HALL" + "B" -> "HALL B", "18" + "MIN" -> "18 MIN"); the
    result top to bottom. The joined line's score is its weakest part's."""
    rows: list[TextLine] = []
    for line in sorted(lines, key=lambda x: _extent(x.box)[0]):
        x0, y0, x1, y1 = _extent(line.box)
        for i, row in enumerate(rows):
            r0, s0, r1, s1 = _extent(row.box)
            shared = min(y1, s1) - max(y0, s0)
            height = max(y1 - y0, s1 - s0)
            if shared >= ROW_OVERLAP * min(y1 - y0, s1 - s0) and -0.5 * height <= x0 - r1 <= ROW_GAP * height:
                lo, top, hi, bottom = min(r0, x0), min(s0, y0), max(r1, x1), max(s1, y1)
                rows[i] = TextLine(text=f"{row.text} {line.text}", score=min(row.score, line.score),
                                   box=[[lo, top], [hi, top], [hi, bottom], [lo, bottom]])
                break
        else:
            rows.append(line)
    return sorted(rows, key=lambda x: (x.box[0][1], x.box[0][0]))


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
                                    "provider": provider, "space_height": SPACE_HEIGHT, "space_ratio": SPACE_RATIO,
                                    "row_gap": ROW_GAP})
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
