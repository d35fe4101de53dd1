"""A generated benchmark where only the order of frames differs.

Each *order pair* is a clip and its exact time reversal, with one text each:

- motion: a coloured shape moves left -> right (or top -> bottom) vs the reverse;
- appear: a shape appears on an empty screen vs disappears from it;
- sequence: the screen turns colour A, then B, then C vs C, B, A.

Mean pooling gives a clip and its reversal the same vector, so on these pairs
it is at chance (0.50) by construction. *Order-free* clips (a still shape of
some colour, no order contrast) check that the temporal encoder does not lose
what mean pooling gets right.

The held-out split differs from the training split in seeds (positions,
sizes, speeds, backgrounds, timing) and in content: its (colour, shape)
combinations and colour triples never occur in training; the words come
from the same vocabulary. Frames are drawn in memory (numpy), ``SIZE`` px.

:func:`make_split` draws clips; :func:`encode_split` runs the frozen image
encoder (unit frame embeddings, and with ``cells`` each frame's 2x2 pooled
patch cells from the same pass) and the registry's text model;
:func:`evaluate` gives the pairwise and retrieval figures; :func:`run`
trains the temporal encoder and the mean-pooling baseline (the same linear
head on mean-pooled frames, ``n_layers=0``) and evaluates both.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

SIZE = 64  # px: the tiny test CLIP's input size (larger models resize)
FRAMES = 8  # frames per clip (the trained window)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 70, 230), "yellow": (240, 220, 40),
    "purple": (140, 50, 180), "orange": (250, 140, 20), "white": (245, 245, 245), "pink": (250, 120, 190),
}
SHAPES = ("circle", "square", "triangle")
FAMILIES = ("motion", "appear", "sequence")
# Mamba's default step sizes (1e-3..1e-1) suit sequences of thousands; over FRAMES steps such a state
# hardly takes input or forgets, so a short clip's order barely reaches it. Larger steps for short clips.
SHORT_CLIP: dict[str, Any] = {"dt_min": 0.05, "dt_max": 0.5}
# Each frame also brings its patch tokens pooled over a 2 x 2 split: the frame embedding of the toy backbone
# says what is shown but hardly where (motion direction needs where).
CELLS = 2
# Weight of the order twins' own 2 x 2 contrast in training (vdisc.training._twin_loss).
TWIN = 4.0


# The tests' toy open_clip (tests/conftest.py): random weights, 4x4 patches; its frame features still
# separate positions and colours, which is all an order benchmark needs of a backbone.
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_clip(d: Path, seed: int = 0) -> str:
    """Write the random toy open_clip to ``d`` (once); returns its ``local-dir:`` reference."""
    import json

    import open_clip

    d.mkdir(parents=True, exist_ok=True)
    if not (d / "open_clip_pytorch_model.bin").is_file():
        (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}))
        torch.manual_seed(seed)
        model = open_clip.create_model(f"local-dir:{d}", pretrained=None)
        torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    return f"local-dir:{d}"


@dataclass
class BenchClip:
    frames: list[np.ndarray]  # FRAMES RGB uint8 (SIZE, SIZE, 3)
    text: str
    family: str  # motion | appear | sequence | still
    pair: int  # shared with its time-reversed twin; -1 for order-free clips


def _held_out() -> tuple[set[tuple[str, str]], set[frozenset[str]]]:
    """Content kept for the held-out split: every 4th (colour, shape) combination and colour set."""
    combos = list(itertools.product(COLOURS, SHAPES))
    triples = [frozenset(t) for t in itertools.combinations(COLOURS, 3)]
    return set(combos[1::4]), set(triples[1::4])


def _canvas(rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(10, 60)
    img = np.full((SIZE, SIZE, 3), base, np.int16) + rng.integers(-6, 7, (SIZE, SIZE, 3))
    return img


def _draw(img: np.ndarray, shape: str, colour: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if shape == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif shape == "square":
        mask = (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
    else:  # triangle pointing up
        mask = (yy <= cy + r) & (yy >= cy - r) & (abs(xx - cx) <= (yy - (cy - r)) * 0.6)
    out = img.copy()
    out[mask] = COLOURS[colour]
    return out


def _u8(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [np.clip(f, 0, 255).astype(np.uint8) for f in frames]


def _motion(rng: np.random.Generator, colour: str, shape: str) -> tuple[list[np.ndarray], str, str]:
    r = rng.uniform(7, 11)
    bg = _canvas(rng)
    a, b = rng.uniform(r + 1, 22), rng.uniform(SIZE - 22, SIZE - r - 1)
    other = rng.uniform(r + 2, SIZE - r - 2)
    path = np.linspace(a, b, FRAMES)
    if rng.random() < 0.5:
        frames = [_draw(bg, shape, colour, x, other, r) for x in path]
        return frames, (f"a {colour} {shape} moves from left to right",
                        f"a {colour} {shape} moves from right to left"), "motion"
    frames = [_draw(bg, shape, colour, other, y, r) for y in path]
    return frames, (f"a {colour} {shape} moves from top to bottom",
                    f"a {colour} {shape} moves from bottom to top"), "motion"


def _appear(rng: np.random.Generator, colour: str, shape: str) -> tuple[list[np.ndarray], tuple[str, str], str]:
    r = rng.uniform(8, 13)
    bg = _canvas(rng)
    cx, cy = rng.uniform(r + 2, SIZE - r - 2, 2)
    k = int(rng.integers(2, FRAMES - 1))  # frames before it shows
    frames = [bg if i < k else _draw(bg, shape, colour, cx, cy, r) for i in range(FRAMES)]
    return frames, (f"a {colour} {shape} appears on an empty screen",
                    f"a {colour} {shape} disappears, leaving an empty screen"), "appear"


def _sequence(rng: np.random.Generator, cols: list[str]) -> tuple[list[np.ndarray], tuple[str, str], str]:
    cuts = sorted(rng.choice(np.arange(2, FRAMES - 1), 2, replace=False))
    while cuts[1] - cuts[0] < 2:
        cuts = sorted(rng.choice(np.arange(2, FRAMES - 1), 2, replace=False))
    frames = []
    noise = rng.integers(-8, 9, (SIZE, SIZE, 3))
    for i in range(FRAMES):
        c = cols[0] if i < cuts[0] else cols[1] if i < cuts[1] else cols[2]
        frames.append(np.array(COLOURS[c], np.int16)[None, None] * rng.uniform(0.85, 1.0) + noise)
    a, b, c = cols
    return frames, (f"the screen turns {a}, then {b}, then {c}", f"the screen turns {c}, then {b}, then {a}"), \
        "sequence"


def make_split(split: str, pairs_per_family: int, stills: int, seed: int = 0) -> list[BenchClip]:
    """``split`` "train" or "test": order pairs (clip, reversal) of every family, then order-free stills."""
    held_combos, held_triples = _held_out()
    combos = [c for c in itertools.product(COLOURS, SHAPES) if (c in held_combos) == (split == "test")]
    triples = [list(t) for t in itertools.permutations(COLOURS, 3) if (frozenset(t) in held_triples) == (split == "test")]
    rng = np.random.default_rng(seed + (0 if split == "train" else 1_000_003))
    pick = random.Random(seed + (0 if split == "train" else 7))
    clips: list[BenchClip] = []
    pair = 0
    for family in FAMILIES:
        for _ in range(pairs_per_family):
            if family == "sequence":
                frames, (fwd, rev), fam = _sequence(rng, pick.choice(triples))
            else:
                colour, shape = pick.choice(combos)
                frames, (fwd, rev), fam = (_motion if family == "motion" else _appear)(rng, colour, shape)
            frames = _u8(frames)
            clips.append(BenchClip(frames, fwd, fam, pair))
            clips.append(BenchClip(frames[::-1], rev, fam, pair))
            pair += 1
    for _ in range(stills):
        colour, shape = pick.choice(combos)
        r = rng.uniform(8, 13)
        bg = _canvas(rng)
        cx, cy = rng.uniform(r + 2, SIZE - r - 2, 2)
        frames = [_draw(bg, shape, colour, cx + rng.normal(0, 0.7), cy + rng.normal(0, 0.7), r) for _ in range(FRAMES)]
        clips.append(BenchClip(_u8(frames), f"a {colour} {shape} stands still", "still", -1))
    return clips


@dataclass
class EncodedSplit:
    frames: torch.Tensor  # (n, FRAMES, dim) unit frame embeddings
    texts: torch.Tensor  # (n, text_dim) unit text embeddings
    clips: list[BenchClip]
    cells: torch.Tensor | None = None  # (n, FRAMES, cells^2, dim) unit pooled patch cells per frame, if asked

    def inputs(self, cells: int = 0) -> torch.Tensor:
        """What a compressor with ``cells`` takes per clip: (n, FRAMES, dim), or (n, FRAMES, 1 + cells^2, dim)
        (each frame's embedding, then its cells)."""
        if not cells:
            return self.frames
        if self.cells is None or self.cells.shape[2] != cells * cells:
            raise ValueError(f"this split was encoded without {cells}x{cells} cells (encode_split(..., cells=))")
        return torch.cat([self.frames[:, :, None], self.cells], 2)


def encode_split(clips: list[BenchClip], visual: Any, text: Any, cells: int = 0) -> EncodedSplit:
    """Frozen image-encoder frame embeddings (with ``cells``: and each frame's cells x cells pooled patch
    cells, from the same forward pass) and text-model embeddings of every clip."""
    flat = [f for c in clips for f in c.frames]
    cell_vecs = None
    if cells:
        vecs, cv = visual.encode_images_cells(flat, cells)
        cell_vecs = torch.from_numpy(cv).float().reshape(len(clips), FRAMES, cells * cells, -1)
    else:
        vecs = visual.encode_images(flat)
    vecs = torch.from_numpy(vecs).float().reshape(len(clips), FRAMES, -1)
    words = sorted({c.text for c in clips})
    emb = dict(zip(words, text.encode(words)))
    return EncodedSplit(vecs, torch.from_numpy(np.stack([emb[c.text] for c in clips])).float(), clips, cell_vecs)


def pairs_of(data: EncodedSplit, cells: int = 0) -> list[Any]:
    """Training pairs (unit frame sequence, or frames + cells, text) with the reversal twin as the group."""
    from vdisc.training import Pair

    times = [i / 2 for i in range(FRAMES)]
    x = data.inputs(cells)
    return [Pair(x[i], times, data.texts[i], group=c.pair) for i, c in enumerate(data.clips)]


def evaluate(compressor: Any, data: EncodedSplit) -> dict[str, Any]:
    """Pairwise accuracy on order pairs (both directions, per family; a tie counts half) and on
    order-free stills (pairs whose texts differ), plus order-free text->clip recall@1."""
    with torch.inference_mode():
        _, vec = compressor.embed_sequences(data.inputs(compressor.needs_cells))
    vec = vec.float()
    sim = vec @ data.texts.T  # clip x text
    out: dict[str, Any] = {}
    by_pair: dict[int, list[int]] = {}
    for i, c in enumerate(data.clips):
        if c.pair >= 0:
            by_pair.setdefault(c.pair, []).append(i)

    def win(a: float, b: float) -> float:
        return 1.0 if a > b + 1e-6 else 0.5 if abs(a - b) <= 1e-6 else 0.0

    per_family: dict[str, list[float]] = {}
    for a, b in by_pair.values():
        scores = [win(sim[a, a], sim[a, b]), win(sim[b, b], sim[b, a]),  # clip -> which text
                  win(sim[a, a], sim[b, a]), win(sim[b, b], sim[a, b])]  # text -> which clip
        per_family.setdefault(data.clips[a].family, []).extend(scores)
    out["order_pairwise"] = round(float(np.mean([x for v in per_family.values() for x in v])), 4)
    out["order_by_family"] = {k: round(float(np.mean(v)), 4) for k, v in per_family.items()}
    still = [i for i, c in enumerate(data.clips) if c.family == "still"]
    if len(still) > 1:
        s = sim[still][:, still]
        words = [data.clips[i].text for i in still]
        wins = [win(s[i, i], s[i, j]) for i in range(len(still)) for j in range(len(still)) if words[i] != words[j]]
        out["still_pairwise"] = round(float(np.mean(wins)), 4)
        # text -> clip: the best clip for each distinct text shows that text
        hits = [words[int(s[:, i].argmax())] == words[i] for i in range(len(still))]
        out["still_recall_at_1"] = round(float(np.mean(hits)), 4)
    return out


def run(out: Path, visual: Any, text: Any, *, pairs_per_family: int = 400, stills: int = 400,
        test_pairs: int = 120, test_stills: int = 150, steps: int = 600, batch_size: int = 64, lr: float = 3e-3,
        layers: int = 2, seed: int = 0, device: str = "cpu", resume: bool = False, checkpoint_every: int = 100,
        on_step: Callable[[str, int, float], None] | None = None, train_baseline: bool = True,
        config: dict[str, Any] | None = None, cells: int = CELLS, twin: float = TWIN) -> dict[str, Any]:
    """Generate, encode, train (temporal encoder and mean-pooling baseline), evaluate on the held-out split.

    The temporal encoder reads each frame's embedding and its ``cells`` x ``cells`` pooled patch cells
    (0: the frame embedding only), standardised; both models are trained with the order twins' own
    contrast (``twin``, ``vdisc.training``) and the same standardised linear head.

    Returns the report: figures per model, weights files, sizes, seconds. The temporal encoder's weights
    go to ``out`` (a library's ``compressor.safetensors`` is picked up there; else ``--compressor PATH``),
    the baseline's beside it (``<out stem>.mean_pool.safetensors``).
    """
    import time

    from vdisc.index.models.compressor import ClipCompressor, CompressorConfig
    from vdisc.training import train

    t0 = time.monotonic()
    train_set = encode_split(make_split("train", pairs_per_family, stills, seed), visual, text, cells=cells)
    test_set = encode_split(make_split("test", test_pairs, test_stills, seed), visual, text, cells=cells)
    t_enc = time.monotonic() - t0
    report: dict[str, Any] = {"train_clips": len(train_set.clips), "test_clips": len(test_set.clips),
                              "frames_per_clip": FRAMES, "visual": visual.spec.key, "text": text.spec.key,
                              "cells": cells, "twin": twin, "encode_seconds": round(t_enc, 1), "models": {}}
    kinds = [("temporal", layers)] + ([("mean_pool", 0)] if train_baseline else [])
    for name, n_layers in kinds:
        torch.manual_seed(seed)
        k = cells if n_layers else 0  # mean pooling has no use for cells: it pools the frame embeddings
        cfg = CompressorConfig(dim=visual.spec.dim, n_layers=n_layers, cls_only=True, window=FRAMES,
                               temporal_pool=FRAMES, text_dim=int(train_set.texts.shape[1]),
                               text_model=text.spec.key, backbone=visual.spec.key, cells=k, standardize=True,
                               **{**SHORT_CLIP, **(config or {})})
        comp = ClipCompressor(cfg).to(device)
        path = out if name == "temporal" else out.with_name(out.stem + ".mean_pool.safetensors")
        rep = train(pairs_of(train_set, k), comp, (0, 0), path, steps=steps, batch_size=batch_size, lr=lr,
                    temperature=0.05, distill=0.0, seed=seed, checkpoint_every=checkpoint_every, resume=resume,
                    twin=twin, on_step=(lambda i, loss, n=name: on_step(n, i, loss)) if on_step else None)
        comp = comp.cpu().eval()
        report["models"][name] = {"path": rep.path, "layers": n_layers, "parameters": comp.num_parameters(),
                                  "steps": rep.steps, "final_loss": rep.losses[-1] if rep.losses else None,
                                  "train_seconds": rep.seconds, "resumed_from": rep.resumed_from,
                                  "test": evaluate(comp, test_set), "train": evaluate(comp, train_set)}
    report["seconds"] = round(time.monotonic() - t0, 1)
    return report


def table(report: dict[str, Any]) -> str:
    """The held-out figures as a markdown table."""
    rows = ["| encoder | order pairs (all) | motion | appear | sequence | order-free pairwise | order-free R@1 |",
            "|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        t = m["test"]
        fam = t["order_by_family"]
        rows.append(f"| {name} ({m['layers']} layers) | {t['order_pairwise']:.3f} | {fam.get('motion', 0):.3f} | "
                    f"{fam.get('appear', 0):.3f} | {fam.get('sequence', 0):.3f} | {t.get('still_pairwise', 0):.3f} | "
                    f"{t.get('still_recall_at_1', 0):.3f} |")
    return "\n".join(rows)


__all__ = ["BenchClip", "EncodedSplit", "make_split", "encode_split", "pairs_of", "evaluate", "run", "table", "make_tiny_clip"]
