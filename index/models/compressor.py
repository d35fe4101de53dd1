"""A STORM-style clip compressor: CLIP frame token grids -> a bidirectional
Mamba temporal encoder -> token reduction (NVIDIA STORM, arXiv 2503.04130).

Input is one clip: ``(T, 1 + P, dim)`` token grids from
``VisualModel.encode_image_tokens`` (CLS/pooled embedding at index 0, patch
tokens row-major over the ``grid``) plus the frame timestamps. The tokens are
flattened frame by frame (CLS, then patches left-to-right/top-to-bottom) into
one sequence that a stack of pre-norm residual bidirectional Mamba blocks
mixes across space and time, in the visual model's own embedding space.

Each block's ``out_proj`` is zero-initialised, so an untrained compressor is
an exact residual no-op: its clip ``embedding`` then equals vdisc's
mean-pooled CLIP clip vector (the unit mean of unit frame embeddings), and the
compressor can be dropped in before any training without changing retrieval.

Token reduction (after the Mamba layers, except sampling): at most
``max_frames`` evenly spaced frames are kept *before* the encoder; then frames
are averaged in groups of ``temporal_pool`` and the patch grid is averaged in
``spatial_pool`` x ``spatial_pool`` cells (ceil for grids that do not divide),
keeping one CLS token per group. Each output token carries the time span of
the frames it summarises and its (row, col) cell in the pooled grid (None for
CLS tokens).

The selective scan itself lives in :mod:`vdisc.index.models.scan`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

CONFIG_KEY = "vdisc_compressor_config"


class CompressorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dim: int = Field(gt=0)  # the visual model's embedding dim (512 for ViT-B-32)
    n_layers: int = Field(2, ge=0)
    d_state: int = Field(16, gt=0)
    expand: int = Field(2, ge=1)
    d_conv: int = Field(4, ge=1)
    dt_rank: int | None = None  # None: ceil(dim / 16), as in Mamba
    temporal_pool: int = Field(4, ge=1)  # frames per output group
    spatial_pool: int = Field(2, ge=1)  # patch-grid cells are spatial_pool x spatial_pool
    max_frames: int = Field(64, ge=1)  # test-time temporal sampling before the encoder
    tokens_per_clip: int | None = Field(None, ge=1)  # optional cap K: pools coarser to fit
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    @property
    def d_inner(self) -> int:
        return self.expand * self.dim

    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.dim / 16)


@dataclass
class CompressedClip:
    embedding: torch.Tensor  # (dim,) L2-normalised, comparable with encode_texts
    tokens: torch.Tensor  # (K, dim) reduced tokens, e.g. for a VLM
    spans: list[tuple[float, float]] = field(default_factory=list)  # per token: frames' (t_start, t_end)
    cells: list[tuple[int, int] | None] = field(default_factory=list)  # per token: pooled-grid cell, None = CLS
    tokens_in: int = 0  # T_original * tokens per frame
    tokens_out: int = 0  # K

    @property
    def ratio(self) -> float:
        return self.tokens_in / max(self.tokens_out, 1)


def _selective_scan() -> Any:
    from vdisc.index.models.scan import selective_scan

    return selective_scan


class _Direction(nn.Module):
    """The per-direction part of a Mamba mixer: conv, x_proj, dt_proj, A, D."""

    def __init__(self, cfg: CompressorConfig) -> None:
        super().__init__()
        d, n, r = cfg.d_inner, cfg.d_state, cfg.rank
        self.conv1d = nn.Conv1d(d, d, cfg.d_conv, groups=d, padding=cfg.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, d, bias=True)
        # Mamba's init: dt_proj weights ~ U(+-r^-0.5); bias = softplus^-1(dt), dt log-uniform.
        nn.init.uniform_(self.dt_proj.weight, -(r**-0.5), r**-0.5)
        dt = torch.exp(torch.rand(d) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        dt = dt.clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d, 1).contiguous())
        self.D = nn.Parameter(torch.ones(d))
        self.rank, self.n = r, n

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x, z: (B, d_inner, L) -> y: (B, d_inner, L) (gated by silu(z) in the scan)."""
        L = x.shape[-1]
        x = F.silu(self.conv1d(x)[..., :L])
        dbl = self.x_proj(x.transpose(1, 2))  # (B, L, r + 2n)
        dt, B, C = torch.split(dbl, [self.rank, self.n, self.n], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (B, d_inner, L); bias added in the scan
        A = -torch.exp(self.A_log.float())
        return _selective_scan()(
            x, delta, A, B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D.float(),
            z=z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
        )


class BiMambaBlock(nn.Module):
    """x + out_proj(mean(fwd scan, bwd scan)) of norm(x) (Vision-Mamba style:
    shared in_proj/out_proj, separate conv/SSM parameters per direction)."""

    def __init__(self, cfg: CompressorConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim)
        self.in_proj = nn.Linear(cfg.dim, 2 * cfg.d_inner, bias=False)
        self.fwd = _Direction(cfg)
        self.bwd = _Direction(cfg)
        self.out_proj = nn.Linear(cfg.d_inner, cfg.dim, bias=True)
        nn.init.zeros_(self.out_proj.weight)  # residual no-op until trained
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, dim) -> (B, L, dim)."""
        xz = self.in_proj(self.norm(x)).transpose(1, 2)  # (B, 2*d_inner, L)
        u, z = xz.chunk(2, dim=1)
        y_f = self.fwd(u, z)
        y_b = self.bwd(u.flip(-1), z.flip(-1)).flip(-1)
        return x + self.out_proj((0.5 * (y_f + y_b)).transpose(1, 2))


class ClipCompressor(nn.Module):
    def __init__(self, config: CompressorConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config if config is not None else CompressorConfig(**kwargs)
        self.blocks = nn.ModuleList(BiMambaBlock(self.config) for _ in range(self.config.n_layers))

    @classmethod
    def for_visual(cls, visual: Any, **kwargs: Any) -> "ClipCompressor":
        """An (untrained, no-op) compressor in ``visual``'s space, on its device."""
        return cls(CompressorConfig(dim=visual.spec.dim, **kwargs)).to(visual.device)

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- the encoder ---------------------------------------------------------

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """The Mamba stack on flattened token sequences (B, L, dim) -> (B, L, dim)."""
        for block in self.blocks:
            seq = block(seq)
        return seq

    # -- the compress path ---------------------------------------------------

    def sample_indices(self, n: int) -> list[int]:
        """Indices of the frames kept by test-time temporal sampling."""
        m = self.config.max_frames
        if n <= m:
            return list(range(n))
        return sorted({int(round(i * (n - 1) / (m - 1))) for i in range(m)}) if m > 1 else [n // 2]

    def forward(self, tokens: torch.Tensor, times: Any, cls_only: bool = False,
                frames_in: int | None = None, grid: tuple[int, int] | None = None) -> CompressedClip:
        """Compress one clip: ``tokens`` (T, 1+P, dim) or (T, dim) (CLS only), in
        time order, with ``times`` (T,) seconds. Differentiable (no inference mode).

        ``frames_in``: the clip's original frame count when the caller already
        sampled frames (for ``tokens_in``). ``grid``: the patch grid (rows, cols);
        default square (``VisualModel.grid``).
        """
        if tokens.dim() == 2:
            tokens = tokens[:, None]
        if tokens.dim() != 3 or tokens.shape[-1] != self.config.dim:
            raise ValueError(f"tokens must be (T, 1+P, {self.config.dim}), got {tuple(tokens.shape)}")
        t_all = np.asarray(torch.as_tensor(times).detach().cpu().double().numpy()).reshape(-1)
        T, per_frame, dim = tokens.shape
        if len(t_all) != T:
            raise ValueError(f"{T} frames but {len(t_all)} timestamps")
        tokens_in = (frames_in or T) * per_frame
        if T == 0:
            raise ValueError("an empty clip has nothing to compress")
        keep = self.sample_indices(T)
        if len(keep) < T:
            tokens, t_all = tokens[keep], t_all[keep]
            T = len(keep)
        P = per_frame - 1
        if grid is None:
            grid = _square_grid(P) if P else (0, 0)
        elif grid[0] * grid[1] != P:
            raise ValueError(f"grid {grid} does not hold {P} patch tokens")
        x = tokens[:, :1] if cls_only or P == 0 else tokens
        x = x.to(self.device, torch.float32)
        n_tok = x.shape[1]

        # frame by frame, CLS then patches row-major: one sequence
        enc = self.encode(x.reshape(1, T * n_tok, dim)).reshape(T, n_tok, dim)

        cls = enc[:, 0]
        embedding = F.normalize(F.normalize(cls, dim=-1).mean(0), dim=0)

        tp, sp, with_patches = self._pools(T, grid, n_tok > 1)
        out, spans, cells = [], [], []
        for g0 in range(0, T, tp):
            grp = enc[g0 : g0 + tp].mean(0)  # (n_tok, dim)
            span = (float(t_all[g0]), float(t_all[min(g0 + tp, T) - 1]))
            out.append(grp[:1])
            spans.append(span)
            cells.append(None)
            if with_patches:
                pooled, pcells = _pool_grid(grp[1:], grid, sp)
                out.append(pooled)
                spans.extend([span] * len(pcells))
                cells.extend(pcells)
        reduced = torch.cat(out)
        return CompressedClip(embedding, reduced, spans, cells, tokens_in, int(reduced.shape[0]))

    def compress(self, tokens: torch.Tensor, times: Any, cls_only: bool = False,
                 frames_in: int | None = None, grid: tuple[int, int] | None = None) -> CompressedClip:
        """``forward`` under ``torch.inference_mode()`` (the test-time path)."""
        with torch.inference_mode():
            return self.forward(tokens, times, cls_only=cls_only, frames_in=frames_in, grid=grid)

    def compress_images(self, visual: Any, images: Sequence[np.ndarray], times: Any,
                        cls_only: bool = False) -> CompressedClip:
        """Sample, encode (``visual.encode_image_tokens``) and compress one clip's frames.

        Frames beyond ``max_frames`` are dropped before the image encoder runs.
        """
        t_all = np.asarray(times, np.float64).reshape(-1)
        keep = self.sample_indices(len(images))
        toks = visual.encode_image_tokens([images[i] for i in keep])
        return self.compress(toks, t_all[keep], cls_only=cls_only, frames_in=len(images), grid=visual.grid)

    def _pools(self, T: int, grid: tuple[int, int], patches: bool) -> tuple[int, int, bool]:
        """(temporal_pool, spatial_pool, keep patches), coarsened to fit tokens_per_clip."""
        tp, sp, K = min(self.config.temporal_pool, T), self.config.spatial_pool, self.config.tokens_per_clip

        def per_group(s: int) -> int:
            return 1 + (math.ceil(grid[0] / s) * math.ceil(grid[1] / s) if patches else 0)

        if K is None or math.ceil(T / tp) * per_group(sp) <= K:
            return tp, sp, patches
        if patches and K < 2:
            patches = False  # room for CLS tokens only
        while per_group(sp) > K:
            sp += 1
        groups = max(K // per_group(sp), 1)
        return max(tp, math.ceil(T / groups)), sp, patches

    # -- persistence ---------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Config + weights in one safetensors file."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata={CONFIG_KEY: self.config.model_dump_json()})
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "ClipCompressor":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if CONFIG_KEY not in meta:
            raise ValueError(f"{path} is not a vdisc clip compressor (no {CONFIG_KEY} metadata)")
        model = cls(CompressorConfig(**json.loads(meta[CONFIG_KEY])))
        model.load_state_dict(load_file(str(path), device="cpu"))
        return model.to(map_location).eval()


def _square_grid(P: int) -> tuple[int, int]:
    side = math.isqrt(P)
    if side * side != P:
        raise ValueError(f"{P} patch tokens do not form a square grid")
    return side, side


def _pool_grid(patches: torch.Tensor, grid: tuple[int, int], s: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Average (h*w, dim) row-major patches over s x s cells (edge cells smaller)."""
    h, w = grid
    g = patches.reshape(h, w, -1)
    out, cells = [], []
    for r in range(math.ceil(h / s)):
        for c in range(math.ceil(w / s)):
            out.append(g[r * s : (r + 1) * s, c * s : (c + 1) * s].mean((0, 1)))
            cells.append((r, c))
    return torch.stack(out), cells
