"""Training the clip compressor on a library: collect (clip frames, clip words) pairs, optimise, save the weights.

Beside ``export.py`` under ``Library`` and over ``index/``: training reads a
built library and writes a weights file, so it is neither part of building
the index nor of the model registry (which only loads the file).

Contrastive distillation on (clip frames, clip text) pairs taken from the
index: each clip's frames go through the frozen image encoder as token grids,
the compressor turns them into a clip embedding, and the loss pulls that
embedding towards the visual model's text embedding of the clip's own words
(transcript, on-screen text, caption) and away from the other clips' in the
batch (symmetric InfoNCE), while a distillation term keeps it near the
mean-pooled CLIP embedding it started as. The weights are saved to one file
that the registry loads with ``--compressor PATH`` / ``VDISC_COMPRESSOR``.
The GPU is used when present; tiny configs train on the CPU.

``vdisc train-compressor`` (``Library.train_compressor``) runs it all;
:func:`collect_pairs` and :func:`train` are the two halves.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from sqlalchemy import select

from vdisc.errors import ConfigError, LibraryError
from vdisc.index import decode
from vdisc.index.models import Registry
from vdisc.index.models.compressor import ClipCompressor
from vdisc.index.store import Clip, Store, Video


class TrainReport(BaseModel):
    """What a training run did: the weights file, clips used, steps and the loss at each step."""

    path: str
    pairs: int
    steps: int
    losses: list[float]
    seconds: float


@dataclass
class Pair:
    tokens: torch.Tensor  # (T, 1+P, dim), frozen image-encoder output
    times: list[float]
    text: torch.Tensor  # (dim,) normalised text embedding of the clip's words


def collect_pairs(store: Store, registry: Registry, max_clips: int = 512, fps: float = 2.0,
                  frames_per_clip: int = 16, max_side: int = 448) -> list[Pair]:
    """(token grids, text embedding) for indexed clips that have words, in time order per video."""
    visual = registry.require("visual")
    if visual is None:
        raise ConfigError("training the compressor needs a visual model; set VDISC_VISUAL_MODEL")
    with store.session() as s:
        rows = s.execute(select(Clip, Video.path).join(Video, Video.id == Clip.video_id)
                         .where(Video.status == "done").order_by(Clip.video_id, Clip.start)).all()
    todo = [(c, path, " ".join(p for p in (c.transcript, c.ocr_text.replace("\n", " "), c.caption) if p).strip())
            for c, path in rows]
    todo = [t for t in todo if t[2]][:max_clips]
    if len(todo) < 2:
        raise LibraryError("training needs at least two indexed clips with words (speech, on-screen text or captions)")
    pairs: list[Pair] = []
    texts = torch.from_numpy(visual.encode_texts([t[2][:300] for t in todo]))
    reader, current = None, None  # one open reader per video: rows come grouped by video
    try:
        for (clip, path, _), text in zip(todo, texts):
            if path != current:
                if reader is not None:
                    reader.close()
                reader, current = decode.open_video(path), path
            rate = min(fps, frames_per_clip / max(clip.end - clip.start, 1e-3))
            frames = list(reader.frames(fps=rate, max_side=max_side, start=clip.start, end=clip.end))
            if not frames:
                continue
            with torch.no_grad():
                tokens = visual.encode_image_tokens([rgb for _, rgb in frames]).cpu()
            pairs.append(Pair(tokens, [ts for ts, _ in frames], text))
    finally:
        if reader is not None:
            reader.close()
    return pairs


def train(pairs: list[Pair], compressor: ClipCompressor, grid: tuple[int, int], out: Path, steps: int = 300,
          batch_size: int = 8, lr: float = 1e-3, temperature: float = 0.07, distill: float = 1.0, seed: int = 0,
          on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """Optimise ``compressor`` on ``pairs``; save it to ``out``; the loss per step is in the report."""
    if len(pairs) < 2:
        raise LibraryError("training needs at least two clips")
    t0 = time.monotonic()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = compressor.device
    params = [p for p in compressor.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    teachers = [F.normalize(F.normalize(p.tokens[:, 0].float(), dim=-1).mean(0), dim=0) for p in pairs]
    compressor.train()
    losses: list[float] = []
    for step in range(steps):
        idx = rng.sample(range(len(pairs)), min(batch_size, len(pairs)))
        emb = torch.stack([compressor(pairs[i].tokens.to(device), pairs[i].times, grid=grid).embedding for i in idx])
        txt = torch.stack([pairs[i].text for i in idx]).to(device)
        logits = emb @ txt.T / temperature
        target = torch.arange(len(idx), device=device)
        contrastive = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        teacher = torch.stack([teachers[i] for i in idx]).to(device)
        keep_close = (1.0 - (emb * teacher).sum(-1)).mean()
        loss = contrastive + distill * keep_close
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(round(loss.item(), 5))
        if on_step is not None:
            on_step(step, losses[-1])
    compressor.eval()
    path = compressor.save(out)
    return TrainReport(path=str(path), pairs=len(pairs), steps=steps, losses=losses,
                       seconds=round(time.monotonic() - t0, 2))


def train_compressor(store: Store, registry: Registry, out: Path, *, init: Path | None = None, steps: int = 300,
                     batch_size: int = 8, lr: float = 1e-3, max_clips: int = 512, frames_per_clip: int = 16,
                     layers: int = 2, on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """Train a compressor on ``store``'s indexed clips and save it to ``out``.

    Starts from the weights at ``init``, else from a new no-op compressor of
    ``layers`` Mamba blocks for the registry's visual model. ``on_step(step,
    loss)`` sees every optimisation step.
    """
    pairs = collect_pairs(store, registry, max_clips, frames_per_clip=frames_per_clip)
    visual = registry.require("visual")
    compressor = (ClipCompressor.load(init, map_location=registry.device) if init
                  else ClipCompressor.for_visual(visual, n_layers=layers))
    return train(pairs, compressor, visual.grid, out, steps=steps, batch_size=batch_size, lr=lr, on_step=on_step)


__all__ = ["Pair", "TrainReport", "collect_pairs", "train", "train_compressor"]
