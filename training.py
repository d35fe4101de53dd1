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
:func:`collect_pairs` and :func:`train` are the two halves. With
``--order-bench`` the pairs come from the generated order benchmark instead
(``vdisc.evaluation.order_bench``), the target is the registry's *text*
model (a linear head maps the clip vector into its space; the index then
stores that as the clip's temporal vector) and the report ends with the
held-out evaluation.

``train`` checkpoints every ``checkpoint_every`` steps (weights, optimiser,
step, losses, sampler state) next to the output and resumes from there.
Pairs that share a ``group`` (a clip and its time reversal) are put in the
same batch, so the contrastive loss always sees the order negative; with
``twin`` > 0 each such pair also gets its own 2 x 2 contrast, scaled by the
distance between the two texts (a reversal is often described with nearly
the same words). A compressor with ``standardize`` gets its input statistics
from the training pairs before the first step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
    resumed_from: int = 0  # the step a checkpoint resumed at
    evaluation: dict[str, Any] | None = None  # the order benchmark's held-out figures, when trained on it


@dataclass
class Pair:
    tokens: torch.Tensor  # (T, 1+P, dim), frozen image-encoder output (or (T, dim) unit frame embeddings,
    # or (T, 1 + cells^2, dim) frame embeddings and their pooled patch cells)
    times: list[float]
    text: torch.Tensor  # (dim,) normalised text embedding of the clip's words
    group: int = -1  # clips of one group (a clip and its reversal) share a batch: hard negatives


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
          on_step: Callable[[int, float], None] | None = None, checkpoint_every: int = 0,
          resume: bool = False, twin: float = 0.0) -> TrainReport:
    """Optimise ``compressor`` on ``pairs``; save it to ``out``; the loss per step is in the report.

    ``checkpoint_every`` > 0 writes ``<out>.ckpt`` that often; ``resume`` continues from it when present
    (the same steps, batches and result as an uninterrupted run). The checkpoint is removed at the end.
    """
    if len(pairs) < 2:
        raise LibraryError("training needs at least two clips")
    t0 = time.monotonic()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = compressor.device
    params = [p for p in compressor.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    teachers = torch.stack([F.normalize(F.normalize(_cls(p.tokens).float(), dim=-1).mean(0), dim=0) for p in pairs])
    texts = torch.stack([p.text.float() for p in pairs]).to(device)
    batched = _batchable(pairs, compressor)
    twins: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        if p.group >= 0:
            twins.setdefault(p.group, []).append(i)
    ckpt = Path(str(out) + ".ckpt")
    losses: list[float] = []
    start = 0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        compressor.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        losses, start = list(state["losses"]), int(state["step"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
    if compressor.config.standardize and not start:  # a resumed run has them in its checkpoint
        compressor.fit_inputs(batched if batched is not None else torch.cat([_slots(p, compressor) for p in pairs])[None])
    compressor.train()
    for step in range(start, steps):
        idx = _batch(rng, len(pairs), batch_size, pairs, twins)
        if batched is not None:
            emb, vec = compressor.embed_sequences(batched[idx].to(device))
        else:
            outs = [compressor(pairs[i].tokens.to(device), pairs[i].times, grid=grid) for i in idx]
            emb, vec = torch.stack([o.embedding for o in outs]), torch.stack([o.vector for o in outs])
        txt = texts[idx]
        logits = vec @ txt.T / temperature
        # a caption can repeat in a batch (two clips, same words): every clip with the caption is a positive
        same = (txt @ txt.T) > 1 - 1e-5
        target = same.float() / same.float().sum(1, keepdim=True)
        contrastive = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        keep_close = (1.0 - (emb * teachers[idx].to(device)).sum(-1)).mean()
        loss = contrastive + distill * keep_close
        if twin:
            loss = loss + twin * _twin_loss(vec, txt, [twins.get(pairs[i].group, []) for i in idx], idx, temperature)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(round(loss.item(), 5))
        if on_step is not None:
            on_step(step, losses[-1])
        if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": compressor.state_dict(), "opt": opt.state_dict(), "losses": losses,
                        "step": step + 1, "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, ckpt)
    compressor.eval()
    path = compressor.save(out)
    ckpt.unlink(missing_ok=True)
    return TrainReport(path=str(path), pairs=len(pairs), steps=steps, losses=losses,
                       seconds=round(time.monotonic() - t0, 2), resumed_from=start)


def _twin_loss(vec: torch.Tensor, txt: torch.Tensor, mates: list[list[int]], idx: list[int],
               temperature: float) -> torch.Tensor:
    """The order twins' own 2 x 2 contrast: each clip against its twin's text and each text against the
    twin clip, on logits divided by the distance between the two texts.

    A clip's time reversal is described with nearly the same words ("left to right" / "right to left":
    MiniLM cosine 0.998), so in the batch-wide InfoNCE the twin's logit differs by a few hundredths and
    hardly pulls; scaled by the texts' distance, the pair's margin counts as much as any other."""
    pos = {j: k for k, j in enumerate(idx)}
    a, b = [], []
    for k, (i, m) in enumerate(zip(idx, mates)):
        for j in m:
            if j != i and j in pos and k < pos[j]:
                a.append(k)
                b.append(pos[j])
    if not a:
        return vec.new_zeros(())
    va, vb, ta, tb = vec[a], vec[b], txt[a], txt[b]
    scale = temperature * (ta - tb).norm(dim=-1, keepdim=True).clamp_min(1e-4)  # (n, 1)
    s = torch.stack([torch.stack([(va * ta).sum(-1), (va * tb).sum(-1)], -1),
                     torch.stack([(vb * ta).sum(-1), (vb * tb).sum(-1)], -1)], 1) / scale[..., None]  # (n, 2, 2)
    target = torch.tensor([0, 1], device=vec.device).expand(len(a), 2)
    rows = F.cross_entropy(s.reshape(-1, 2), target.reshape(-1))  # clip -> which of the two texts
    cols = F.cross_entropy(s.transpose(1, 2).reshape(-1, 2), target.reshape(-1))  # text -> which clip
    return 0.5 * (rows + cols)


def _slots(pair: Pair, compressor: ClipCompressor) -> torch.Tensor:
    """A pair's frames as the (T, 1 + cells^2, dim) input slots of a ``cls_only`` compressor."""
    from vdisc.index.models.compressor import pool_cells

    t = pair.tokens.float()
    t = t[:, None] if t.dim() == 2 else t
    k = compressor.needs_cells
    if k and t.shape[1] != 1 + k * k:
        side = int(round((t.shape[1] - 1) ** 0.5))
        t = torch.cat([t[:, :1], pool_cells(t[:, 1:], (side, side), k)], 1)
    return t[:, : 1 + k * k]


def _cls(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 0] if tokens.dim() == 3 else tokens


def _batchable(pairs: list[Pair], compressor: ClipCompressor) -> torch.Tensor | None:
    """(n, T, dim) unit CLS sequences when every clip has T frames and the compressor mixes CLS only
    (with ``cells``: (n, T, 1 + cells^2, dim), each frame's embedding and its cells, as the pairs hold them)."""
    if not compressor.config.cls_only or len({len(p.times) for p in pairs}) != 1:
        return None
    if len(pairs[0].times) > compressor.config.max_frames:
        return None
    k = compressor.needs_cells
    if k:
        if any(p.tokens.dim() != 3 or p.tokens.shape[1] != 1 + k * k for p in pairs):
            return None  # full token grids: the clip-by-clip forward pools them into cells
        return torch.stack([p.tokens.float() for p in pairs])
    return torch.stack([_cls(p.tokens).float() for p in pairs])


def _batch(rng: random.Random, n: int, size: int, pairs: list[Pair], twins: dict[int, list[int]]) -> list[int]:
    """``size`` distinct clips; a clip's group mates come with it (its order negative)."""
    out: list[int] = []
    seen: set[int] = set()
    for i in rng.sample(range(n), n) if n <= 4 * size else (rng.randrange(n) for _ in range(8 * size)):
        if len(out) >= size:
            break
        if i in seen:
            continue
        mates = twins.get(pairs[i].group, [i]) if pairs[i].group >= 0 else [i]
        for j in mates:
            if j not in seen:
                seen.add(j)
                out.append(j)
    return out


def train_compressor(store: Store, registry: Registry, out: Path, *, init: Path | None = None, steps: int = 300,
                     batch_size: int = 8, lr: float = 1e-3, max_clips: int = 512, frames_per_clip: int = 16,
                     layers: int = 2, on_step: Callable[[int, float], None] | None = None,
                     checkpoint_every: int = 50, resume: bool = False) -> TrainReport:
    """Train a compressor on ``store``'s indexed clips and save it to ``out``.

    Starts from the weights at ``init``, else from a new no-op compressor of
    ``layers`` Mamba blocks for the registry's visual model. ``on_step(step,
    loss)`` sees every optimisation step; checkpoints as in :func:`train`.
    """
    pairs = collect_pairs(store, registry, max_clips, frames_per_clip=frames_per_clip)
    visual = registry.require("visual")
    compressor = (ClipCompressor.load(init, map_location=registry.device) if init
                  else ClipCompressor.for_visual(visual, n_layers=layers))
    return train(pairs, compressor, visual.grid, out, steps=steps, batch_size=batch_size, lr=lr, on_step=on_step,
                 checkpoint_every=checkpoint_every, resume=resume)


def train_order_bench(registry: Registry, out: Path, *, steps: int = 600, batch_size: int = 64, lr: float = 3e-3,
                      layers: int = 2, pairs_per_family: int = 400, checkpoint_every: int = 100, resume: bool = False,
                      on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """Train the temporal encoder on the generated order benchmark (frames from the registry's visual model,
    targets from its text model), save it to ``out``, and evaluate it against mean pooling on the held-out
    split (``report.evaluation``)."""
    from vdisc.evaluation import order_bench

    visual, text = registry.require("visual"), registry.require("text")
    if visual is None or text is None:
        raise ConfigError("the order benchmark needs a visual and a text model")
    t0 = time.monotonic()
    report = order_bench.run(out, visual, text, steps=steps, batch_size=batch_size, lr=lr, layers=layers,
                             pairs_per_family=pairs_per_family, device=registry.device, resume=resume,
                             checkpoint_every=checkpoint_every,
                             on_step=(lambda name, i, loss: on_step(i, loss) if name == "temporal" else None)
                             if on_step else None)
    temporal = report["models"]["temporal"]
    return TrainReport(path=str(out), pairs=report["train_clips"], steps=steps, losses=[temporal["final_loss"]],
                       seconds=round(time.monotonic() - t0, 2), resumed_from=temporal["resumed_from"],
                       evaluation=report)


__all__ = ["Pair", "TrainReport", "collect_pairs", "train", "train_compressor", "train_order_bench"]
