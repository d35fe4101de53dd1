"""Checkpoints of a video being indexed, so a killed run resumes instead of starting over.

Perception (frames, OCR, captions, speech) is the slow part of indexing, and
it is all per clip. After each batch of clips the pipeline writes what it
learnt about them, plus the segmenter's state, to one file under

    <library>/partial/<fingerprint>/batch-000007.npz

(written to a temporary name, then renamed, so a kill leaves either the whole
file or none). The transcript is written once, as ``speech.json``, when
speech recognition finishes. The next run on the same file loads the batches,
restores the segmenter and restarts decoding at the end of the last clip.

A checkpoint is only reused when everything that shapes its contents — the
models and the sampling/segmentation settings, stored in ``key.json`` — is
unchanged; otherwise it is thrown away. It is removed once the video is in
the library.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write

PARTIAL_DIR = "partial"


@dataclass
class ClipRecord:
    """What perception found in one clip (the frames themselves are gone)."""

    idx: int
    start: float
    end: float
    shot: int
    hist: np.ndarray
    frame_ts: list[float] = field(default_factory=list)
    frame_vecs: np.ndarray | None = None
    frame_cells: np.ndarray | None = None  # a trained compressor's per-frame patch cells, when it takes them
    ocr_lines: list[str] = field(default_factory=list)
    ocr_reads: list[tuple[float, list[str]]] = field(default_factory=list)
    caption: str = ""


@dataclass
class Resume:
    clips: list[ClipRecord]
    state: dict[str, Any]  # segmenter state, OCR memo, and "complete"/"end"/"decoder" once decoding finished
    words: list[dict[str, Any]] | None  # the transcript, when speech had finished


class Checkpoint:
    """The partial work on one video file, keyed by its fingerprint."""

    def __init__(self, library: Path, fingerprint: str, path: Path, key: dict[str, Any]) -> None:
        self.root = library / PARTIAL_DIR / fingerprint
        self.path = path
        self.key = {**key, "path": str(path)}
        self._batches = 0

    # ---- reading ------------------------------------------------------------
    def load(self) -> Resume | None:
        """The saved work, or None when there is none or it was made with other settings."""
        key_file = self.root / "key.json"
        if not key_file.exists():
            return None
        try:
            if json.loads(key_file.read_text()) != self.key:
                self.discard()
                return None
            clips: list[ClipRecord] = []
            state: dict[str, Any] = {}
            files = sorted(self.root.glob("batch-*.npz"))
            for i, f in enumerate(files):
                if f.name != _batch_name(i):  # a gap means a file went missing: trust only what precedes it
                    for stale in files[i:]:
                        stale.unlink(missing_ok=True)
                    break
                batch, state = _read_batch(f)
                clips.extend(batch)
                self._batches = i + 1
            speech = self.root / "speech.json"
            words = json.loads(speech.read_text()) if speech.exists() else None
        except (OSError, ValueError, KeyError):  # unreadable: start over rather than trust it
            self.discard()
            return None
        if not clips and words is None:
            return None
        return Resume(clips=clips, state=state, words=words)

    # ---- writing ------------------------------------------------------------
    def start(self) -> None:
        """Begin a fresh checkpoint (after :meth:`load` found nothing usable)."""
        self.discard()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "key.json", json.dumps(self.key, sort_keys=True).encode(), durable=False)
        self._batches = 0

    def save_batch(self, clips: list[ClipRecord], state: dict[str, Any]) -> None:
        state = dict(state)
        thumb = state.pop("ocr_thumb", None)
        meta = {
            "state": state,
            "clips": [{"idx": c.idx, "start": c.start, "end": c.end, "shot": c.shot, "frame_ts": c.frame_ts,
                       "has_vecs": c.frame_vecs is not None and len(c.frame_vecs) > 0,
                       "has_cells": c.frame_cells is not None and len(c.frame_cells) > 0,
                       "ocr": c.ocr_lines, "ocr_reads": c.ocr_reads, "caption": c.caption} for c in clips],
        }
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                  "hist": np.stack([c.hist for c in clips]) if clips else np.zeros((0, 0), np.float32)}
        vecs = [c.frame_vecs for c in clips if c.frame_vecs is not None and len(c.frame_vecs)]
        if vecs:
            arrays["vecs"] = np.concatenate(vecs)
        cells = [c.frame_cells for c in clips if c.frame_cells is not None and len(c.frame_cells)]
        if cells:
            arrays["cells"] = np.concatenate(cells)
        if thumb is not None:
            arrays["ocr_thumb"] = np.asarray(thumb)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(self.root / _batch_name(self._batches), buf.getvalue(), durable=False)
        self._batches += 1

    def save_speech(self, words: list[dict[str, Any]]) -> None:
        atomic_write(self.root / "speech.json", json.dumps(words).encode(), durable=False)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def discard_others(self) -> None:
        """Drop checkpoints of earlier versions of the same file (it changed since)."""
        for key_file in self.root.parent.glob("*/key.json"):
            if key_file.parent == self.root:
                continue
            try:
                same = json.loads(key_file.read_text()).get("path") == str(self.path)
            except (OSError, ValueError):
                same = True  # unreadable leftovers go too
            if same:
                shutil.rmtree(key_file.parent, ignore_errors=True)


def partial_size(library: Path) -> tuple[int, int]:
    """(number of unfinished videos, bytes) kept under ``<library>/partial``."""
    root = library / PARTIAL_DIR
    if not root.is_dir():
        return 0, 0
    dirs = [d for d in root.iterdir() if d.is_dir()]
    size = sum(f.stat().st_size for d in dirs for f in d.iterdir() if f.is_file())
    return len(dirs), size


def _batch_name(i: int) -> str:
    return f"batch-{i:06d}.npz"


def _read_batch(path: Path) -> tuple[list[ClipRecord], dict[str, Any]]:
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        hist = data["hist"]
        vecs = data["vecs"] if "vecs" in data.files else None
        cells = data["cells"] if "cells" in data.files else None
        state = meta["state"]
        if "ocr_thumb" in data.files:
            state["ocr_thumb"] = data["ocr_thumb"]
    clips, offset, at = [], 0, 0
    for i, c in enumerate(meta["clips"]):
        n = len(c["frame_ts"])
        frame_vecs = frame_cells = None
        if c["has_vecs"] and vecs is not None:
            frame_vecs, offset = vecs[offset : offset + n], offset + n
        if c.get("has_cells") and cells is not None:
            frame_cells, at = cells[at : at + n], at + n
        clips.append(ClipRecord(idx=c["idx"], start=c["start"], end=c["end"], shot=c["shot"], hist=hist[i],
                                frame_ts=c["frame_ts"], frame_vecs=frame_vecs, frame_cells=frame_cells,
                                ocr_lines=c["ocr"],
                                ocr_reads=[(t, lines) for t, lines in c["ocr_reads"]], caption=c["caption"]))
    return clips, state


class NoCheckpoint(Checkpoint):
    """Keeps nothing: for work whose retry starts over anyway (a Ray worker, a part of a split file)."""

    def __init__(self, path: Path) -> None:
        super().__init__(Path(os.devnull), "none", path, {})

    def save_batch(self, clips: list[ClipRecord], state: dict[str, Any]) -> None:
        pass

    def save_speech(self, words: list[dict[str, Any]]) -> None:
        pass
