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

Trained for retrieval (``vdisc.training``), a compressor can also carry
what the index needs to use it on its own: ``cls_only`` (it mixes the
sequence of unit frame embeddings, so the index feeds it the frame vectors it
already has), ``window`` (each ``window`` frames are encoded on their own, the
clip length it was trained on, so a group token is the vector of its own
sub-window) and a linear ``head`` into a text model's space (``text_model``,
``text_dim``): ``CompressedClip.vector`` is then the clip's *temporal* vector,
compared with that text model's query embedding. Mean pooling cannot tell a
clip from its time reversal; this encoder can (see scripts/order_bench).

``cells`` (with ``cls_only``): besides its unit frame embedding, each frame
contributes ``cells x cells`` unit vectors of its patch tokens averaged over
that coarse grid (``frame_cells``; ``VisualModel.encode_images_cells`` gives
both in one forward pass). A frame embedding says *what* is shown but hardly
*where* (a linear probe on the toy backbone recovers an object's x position
with R^2 0.16 from it, 0.7 from 2x2 cells), so motion direction needs the
cells. The sequence is frame by frame ``[frame, cell (0,0), (0,1), ...]``;
the clip vector is still pooled over the frame positions only, so an
untrained encoder stays exactly mean pooling. ``cells = 0`` (checkpoints
from before it) is the CLS-only input.

``standardize`` (with ``cls_only``): the encoder mixes each input slot (the
frame embedding, each cell) standardised by the training set's per-dimension
mean and std (buffers ``in_mean`` / ``in_std``, set by ``fit_inputs`` and
saved with the weights) and maps its output back, and the head reads the
pooled embedding standardised the same way. A frozen backbone's embeddings
can share one dominant direction (the toy backbone's frame embeddings differ
by ~2% between clips), which leaves what distinguishes them too small to
learn from; standardised, an untrained encoder is still the identity.

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
    # set by training for retrieval (None/False: the plain STORM compressor)
    cls_only: bool = False  # mixes unit frame embeddings only (what the index stores per frame)
    window: int | None = Field(None, ge=1)  # frames encoded together (the trained clip length); None: all
    text_dim: int | None = Field(None, gt=0)  # a linear head into this text space
    text_model: str | None = None  # the text model's spec key whose queries the head's vectors answer
    backbone: str | None = None  # the visual model's spec key the compressor was trained on
    # with cls_only: each frame also feeds cells x cells unit pooled patch cells after its frame embedding
    # (the index then stores them per sampled frame); 0: the frame embedding only (older checkpoints)
    cells: int = Field(0, ge=0)
    # with cls_only: the encoder and the head see each input slot (frame embedding, each cell) standardised
    # by the training set's per-dimension mean and std (buffers in_mean / in_std, saved with the weights)
    standardize: bool = False

    @property
    def d_inner(self) -> int:
        return self.expand * self.dim

    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.dim / 16)


@dataclass
class CompressedClip:
    embedding: torch.Tensor  # (dim,) L2-normalised, comparable with encode_texts
    vector: torch.Tensor  # the retrieval vector: head(pooled) in the text space when trained with one, else embedding
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
        # a linear probe from the pooled clip embedding into the text space (n_layers=0: mean pooling + probe)
        self.head = nn.Linear(self.config.dim, self.config.text_dim) if self.config.text_dim else None
        if self.config.standardize:
            if not self.config.cls_only:
                raise ValueError("standardize needs cls_only (fixed input slots: the frame embedding and its cells)")
            slots = 1 + self.config.cells ** 2
            self.register_buffer("in_mean", torch.zeros(slots, self.config.dim))
            self.register_buffer("in_std", torch.ones(slots, self.config.dim))

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

    @property
    def query_role(self) -> str:
        """The registry role whose query embedding ``vector`` answers: "text" with a head, else "visual"."""
        return "text" if self.head is not None else "visual"

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Retrieval vectors (unit) of pooled embeddings (..., dim): through the head when there is one
        (on the pooled embedding standardised like a frame embedding, with ``standardize``)."""
        if self.head is None:
            return F.normalize(pooled, dim=-1)
        if self.config.standardize:
            pooled = (pooled - self.in_mean[0]) / self.in_std[0]
        return F.normalize(self.head(pooled), dim=-1)

    def fit_inputs(self, x: torch.Tensor) -> None:
        """Set the standardisation (``standardize``) from training inputs: (n, T, dim) frame embeddings or
        (n, T, 1 + cells^2, dim) frames + cells, as ``embed_sequences`` takes them."""
        if not self.config.standardize:
            return
        x = x.float()
        x = (x[:, :, None] if x.dim() == 3 else x)[:, :, : self.in_mean.shape[0]]
        x = F.normalize(x, dim=-1).reshape(-1, x.shape[2], x.shape[3])
        with torch.no_grad():
            std = x.std(0)
            self.in_mean.copy_(x.mean(0))
            self.in_std.copy_(std.clamp_min(1e-3 * float(std.mean()) + 1e-12))

    def _mix(self, seq: torch.Tensor, n_tok: int) -> torch.Tensor:
        """``encode`` of (B, L, dim) sequences of frames of ``n_tok`` slots, in the standardised space
        when ``standardize`` (and back: an untrained encoder stays the identity)."""
        if not self.config.standardize:
            return self.encode(seq)
        B, L, dim = seq.shape
        mu = self.in_mean[:n_tok].repeat(L // n_tok, 1)
        sd = self.in_std[:n_tok].repeat(L // n_tok, 1)
        return self.encode((seq - mu) / sd) * sd + mu

    def spec_dict(self, source: str) -> dict[str, Any]:
        """What a temporal vector index records of this compressor: file hash, backbone, pooling, text space."""
        import hashlib

        if getattr(self, "_spec", None) is not None and self._spec["ref"] == source:
            return self._spec
        digest = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            digest.update(k.encode())
            digest.update(v.detach().cpu().contiguous().numpy().tobytes())
        c = self.config
        self._spec = {"role": "compressor", "ref": source, "model_id": f"compressor:{digest.hexdigest()[:16]}",
                      "dim": c.text_dim or c.dim, "preprocessing": {
                          "backbone": c.backbone, "text_model": c.text_model, "layers": c.n_layers,
                          "pooling": f"{'cls' if c.cls_only else 'grid'}"
                                     f"{f' + {c.cells}x{c.cells} cells' if c.cells else ''}, "
                                     f"window {c.window or 'all'}, mean of unit CLS"}}
        return self._spec  # weights do not change once loaded (training builds a new spec per save)

    @property
    def needs_cells(self) -> int:
        """Cells per side each frame must bring besides its embedding (0: the frame embedding alone)."""
        return self.config.cells if self.config.cls_only else 0

    def frame_inputs(self, frame_vecs: Any, frame_cells: Any = None) -> torch.Tensor:
        """The per-frame input this compressor was trained on: (T, dim) frame embeddings, or with ``cells``
        (T, 1 + cells^2, dim) = each frame's embedding followed by its ``frame_cells`` (T, cells^2, dim)."""
        vecs = torch.as_tensor(np.asarray(frame_vecs, np.float32)) if not torch.is_tensor(frame_vecs) else frame_vecs
        k = self.needs_cells
        if not k:
            return vecs
        if frame_cells is None:
            raise ValueError(f"this compressor was trained on frames with {k}x{k} patch cells; none were given")
        cells = torch.as_tensor(np.asarray(frame_cells, np.float32)) if not torch.is_tensor(frame_cells) \
            else frame_cells
        if cells.shape != (vecs.shape[0], k * k, vecs.shape[-1]):
            raise ValueError(f"frame cells must be ({vecs.shape[0]}, {k * k}, {vecs.shape[-1]}), "
                             f"got {tuple(cells.shape)}")
        return torch.cat([vecs[:, None].to(cells.dtype), cells], 1)

    def encode_frames(self, frame_vecs: np.ndarray, times: Any, frame_cells: np.ndarray | None = None) -> np.ndarray:
        """The temporal vector of one clip from its stored unit frame embeddings (T, dim) (index time),
        with their pooled patch cells (T, cells^2, dim) when the compressor was trained on them."""
        clip = self.compress(self.frame_inputs(frame_vecs, frame_cells), times, cls_only=True)
        return clip.vector.float().cpu().numpy()

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
        if self.needs_cells and P == self.needs_cells ** 2:
            grid = (self.needs_cells, self.needs_cells)  # already pooled: frame_inputs
        if grid is None:
            grid = _square_grid(P) if P else (0, 0)
        elif grid[0] * grid[1] != P:
            raise ValueError(f"grid {grid} does not hold {P} patch tokens")
        cls_only = cls_only or self.config.cls_only
        k = self.needs_cells
        if k:  # frame embedding + its k x k cells: given as such, or pooled here from a full token grid
            if P != k * k:
                if P == 0:
                    raise ValueError(f"this compressor was trained on frames with {k}x{k} patch cells; "
                                     "only frame embeddings were given")
                tokens = torch.cat([tokens[:, :1], pool_cells(tokens[:, 1:], grid, k)], 1)
            x = tokens
        else:
            x = tokens[:, :1] if cls_only or P == 0 else tokens
        x = x.to(self.device, torch.float32)
        if self.config.cls_only:  # trained on unit frame embeddings (what the index stores)
            x = F.normalize(x, dim=-1)
        n_tok = x.shape[1]

        # frame by frame, CLS then patches row-major: one sequence (per window when trained on windows)
        enc = self._encode_windows(x, self.config.window or T)

        cls = F.normalize(enc[:, 0], dim=-1)
        pooled = _time_mean(cls, 0)
        embedding = F.normalize(pooled, dim=0)
        vector = self.project(pooled)

        tp, sp, with_patches = self._pools(T, grid, n_tok > 1 and not self.config.cls_only)
        if self.config.window:
            tp = self.config.window  # a group is a window: its token is that sub-window's own encoding
        out, spans, cells = [], [], []
        for g0 in range(0, T, tp):
            grp = enc[g0 : g0 + tp].mean(0)  # (n_tok, dim)
            if self.config.cls_only:  # the same pooling as the clip vector, so a group scores like a clip
                grp = _time_mean(cls[g0 : g0 + tp], 0)[None]
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
        return CompressedClip(embedding, vector, reduced, spans, cells, tokens_in, int(reduced.shape[0]))

    def _encode_windows(self, x: torch.Tensor, w: int) -> torch.Tensor:
        """(T, n_tok, dim) -> encoded, each run of ``w`` frames as its own sequence (full runs batched)."""
        T, n_tok, dim = x.shape
        full = (T // w) * w
        parts = []
        if full:
            parts.append(self._mix(x[:full].reshape(T // w, w * n_tok, dim), n_tok).reshape(full, n_tok, dim))
        if full < T:
            parts.append(self._mix(x[full:].reshape(1, (T - full) * n_tok, dim), n_tok).reshape(T - full, n_tok, dim))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def embed_sequences(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched CLS-only forward for training: B clips of T frames (B, T, dim), or with ``cells``
        (B, T, 1 + cells^2, dim) (``frame_inputs`` per clip) -> (embedding, vector).

        The same numbers as ``forward(..., cls_only=True)`` clip by clip, in one pass.
        """
        x = x.to(self.device, torch.float32)
        if x.dim() == 3:
            x = x[:, :, None]
        if self.needs_cells and x.shape[2] != 1 + self.needs_cells ** 2:
            raise ValueError(f"this compressor expects (B, T, {1 + self.needs_cells ** 2}, dim) frame inputs, "
                             f"got {tuple(x.shape)}")
        x = x[:, :, :1 + self.needs_cells ** 2] if self.needs_cells else x[:, :, :1]
        if self.config.cls_only:
            x = F.normalize(x, dim=-1)
        B, T, n_tok, dim = x.shape
        w = min(self.config.window or T, T)
        full = (T // w) * w
        parts = [self._mix(x[:, :full].reshape(B * (T // w), w * n_tok, dim), n_tok).reshape(B, full, n_tok, dim)]
        if full < T:
            parts.append(self._mix(x[:, full:].reshape(B, (T - full) * n_tok, dim), n_tok)
                         .reshape(B, T - full, n_tok, dim))
        pooled = _time_mean(F.normalize(torch.cat(parts, 1)[:, :, 0], dim=-1), 1)
        return F.normalize(pooled, dim=-1), self.project(pooled)

    def group_vectors(self, clip: CompressedClip) -> list[tuple[tuple[float, float], torch.Tensor]]:
        """(span, retrieval vector) of each group's CLS token: what inspect scores sub-windows with."""
        with torch.inference_mode():
            return [(span, self.project(tok.float())) for span, cell, tok in zip(clip.spans, clip.cells, clip.tokens)
                    if cell is None]

    def compress(self, tokens: torch.Tensor, times: Any, cls_only: bool = False,
                 frames_in: int | None = None, grid: tuple[int, int] | None = None) -> CompressedClip:
        """``forward`` under ``torch.inference_mode()`` (the test-time path)."""
        with torch.inference_mode():
            return self.forward(tokens, times, cls_only=cls_only, frames_in=frames_in, grid=grid)

    def compress_images(self, visual: Any, images: Sequence[np.ndarray], times: Any,
                        cls_only: bool = False) -> CompressedClip:
        """Sample, encode and compress one clip's frames, with the input the compressor was trained on:
        frame embeddings (``cls_only``), frame embeddings + pooled cells (``cells``, one forward pass:
        ``visual.encode_images_cells``), else token grids (``visual.encode_image_tokens``).

        Frames beyond ``max_frames`` are dropped before the image encoder runs.
        """
        t_all = np.asarray(times, np.float64).reshape(-1)
        keep = self.sample_indices(len(images))
        kept = [images[i] for i in keep]
        grid = None
        if self.needs_cells:
            vecs, cells = visual.encode_images_cells(kept, self.needs_cells)
            toks = self.frame_inputs(vecs, cells)
        elif self.config.cls_only:
            toks = torch.from_numpy(visual.encode_images(kept))
        else:
            toks, grid = visual.encode_image_tokens(kept), visual.grid
        return self.compress(toks, t_all[keep], cls_only=cls_only, frames_in=len(images), grid=grid)

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


def _time_mean(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The mean over frames, accumulated in float64: mean pooling gives a clip and its time reversal the
    very same vector (a float32 sum in another order differs in the last bits, which a standardised
    head would magnify into a spurious preference)."""
    return x.double().mean(dim).to(x.dtype) if x.dtype != torch.float64 else x.mean(dim)


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


def pool_cells(patches: torch.Tensor, grid: tuple[int, int], k: int) -> torch.Tensor:
    """(..., rows*cols, dim) row-major patch tokens -> (..., k*k, dim): means over a k x k split of the
    grid (``adaptive_avg_pool2d``'s regions; edge regions overlap by a row where the grid does not divide)."""
    rows, cols = grid
    lead, dim = patches.shape[:-2], patches.shape[-1]
    g = patches.reshape(-1, rows, cols, dim).permute(0, 3, 1, 2)
    out = F.adaptive_avg_pool2d(g, k).permute(0, 2, 3, 1).reshape(*lead, k * k, dim)
    return out


def temporal_query(registry: Any, query: str, index_key: str | None) -> np.ndarray | None:
    """The query vector for a temporal index built with ``index_key``, or None when the library's trained
    compressor (or the text model its head maps into) is not the one those vectors came from."""
    from .spec import ModelSpec

    comp = registry.trained_compressor()
    if comp is None or ModelSpec(**comp.spec_dict(registry.compressor_source())).key != index_key:
        return None
    model = registry.get(comp.query_role)
    if model is None:
        return None
    if comp.query_role == "text":
        if comp.config.text_model and model.spec.key != comp.config.text_model:
            return None
        return model.encode([query])[0]
    return model.encode_texts([query])[0]
