"""The visual role: an open_clip model that embeds frames and text queries
into one space (frame search, clip vectors, text-to-video retrieval)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vdisc.errors import ModelUnavailable

from . import hub
from .spec import ModelSpec

SETTING = "VDISC_VISUAL_MODEL (or --visual-model)"
PROBE_FRAME_HW = (360, 640)  # a decoded frame at the default max_side, for sizing GPU batches


@dataclass
class VisualModel:
    spec: ModelSpec
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    dtype: Any
    batch_size: int = 32

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings of RGB uint8 frames, shape (N, dim)."""
        import torch

        out = []
        for i in range(0, len(images), self.batch_size):
            batch = self.pixels(images[i : i + self.batch_size])
            with torch.inference_mode():
                feats = self.model.encode_image(batch.to(self.device, self.dtype))
            out.append(_normalise(feats))
        return np.concatenate(out) if out else np.zeros((0, self.spec.dim), np.float32)

    def encode_images_cells(self, images: list[Any], cells: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """``encode_images`` plus, from the same forward pass, each frame's patch tokens averaged over a
        ``cells`` x ``cells`` split of the patch grid (after ``ln_post`` and ``proj``, like
        ``encode_image_tokens``), L2-normalised: shapes (N, dim) and (N, cells^2, dim), float32.

        The frame embeddings are ``encode_images``' own (the vision tower's output is read with a hook on
        its transformer), so the frame index does not change when the cells are asked for too.
        What a clip compressor trained with ``cells`` needs per frame at index time.
        """
        import torch
        import torch.nn.functional as F

        visual = self.model.visual
        for attr in ("transformer", "ln_post"):
            if not hasattr(visual, attr):
                raise ModelUnavailable(f"visual model {self.spec.ref} is not an open_clip VisionTransformer")
        rows, cols = self.grid
        seen: list[Any] = []
        hook = visual.transformer.register_forward_hook(lambda _m, _i, out: seen.append(out))
        vecs, cell_out = [], []
        try:
            for i in range(0, len(images), self.batch_size):
                batch = self.pixels(images[i : i + self.batch_size])
                seen.clear()
                with torch.inference_mode():
                    feats = self.model.encode_image(batch.to(self.device, self.dtype))
                    x = seen[-1]
                    x = x[0] if isinstance(x, tuple) else x
                    prefix = x.shape[1] - rows * cols  # CLS (and any register tokens) before the patches
                    patches = visual.ln_post(x[:, prefix:]).float()
                    g = patches.reshape(-1, rows, cols, patches.shape[-1]).permute(0, 3, 1, 2)
                    pooled = F.adaptive_avg_pool2d(g, cells).flatten(2).transpose(1, 2)  # (n, cells^2, width)
                    if visual.proj is not None:
                        pooled = pooled @ visual.proj.float()
                vecs.append(_normalise(feats))
                cell_out.append(F.normalize(pooled, dim=-1).cpu().numpy().astype(np.float32))
        finally:
            hook.remove()
        if not vecs:
            return np.zeros((0, self.spec.dim), np.float32), np.zeros((0, cells * cells, self.spec.dim), np.float32)
        return np.concatenate(vecs), np.concatenate(cell_out)

    @property
    def grid(self) -> tuple[int, int]:
        """The patch grid (rows, cols) of the vision tower's token output."""
        gs = getattr(self.model.visual, "grid_size", None)
        if gs is None:
            raise ModelUnavailable(f"visual model {self.spec.ref} has no patch grid (not an open_clip ViT)")
        return int(gs[0]), int(gs[1])

    def encode_image_tokens(self, images: list[np.ndarray]) -> Any:
        """Per-frame token grids in the joint embedding space, float32 on ``device``.

        Shape (N, 1 + P, dim): index 0 is the pooled/CLS embedding exactly as
        ``encode_image`` computes it (unnormalised); 1..P are the patch tokens
        (row-major over ``grid``) after ``ln_post`` and the same ``proj``.
        open_clip's own ``output_tokens`` returns patch tokens *before* ``proj``
        (width-d, not embed-d), so the trunk is run here piecewise instead.
        """
        import torch

        visual = self.model.visual
        for attr in ("_embeds", "transformer", "_pool", "ln_post"):
            if not hasattr(visual, attr):
                raise ModelUnavailable(f"visual model {self.spec.ref} is not an open_clip VisionTransformer")
        if getattr(visual, "attn_pool", None) is not None:
            raise ModelUnavailable(f"visual model {self.spec.ref} uses attentional pooling; no patch tokens")
        rows, cols = self.grid
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = self.pixels(images[i : i + self.batch_size])
            with torch.inference_mode():
                x = visual.transformer(visual._embeds(batch.to(self.device, self.dtype)))
                pooled, _ = visual._pool(x)
                # Patch tokens always get ln_post (open_clip skips it for them
                # when final_ln_after_pool; keep them on the same footing).
                patches = visual.ln_post(x[:, 1:])
                if visual.proj is not None:
                    pooled, patches = pooled @ visual.proj, patches @ visual.proj
            out.append(torch.cat([pooled[:, None], patches], 1).float())
        if not out:
            return torch.zeros((0, 1 + rows * cols, self.spec.dim), device=self.device)
        tokens = torch.cat(out)
        if tokens.shape[1] != 1 + rows * cols:
            raise ModelUnavailable(f"visual model {self.spec.ref} returned {tokens.shape[1]} tokens, grid {rows}x{cols}")
        return tokens

    def pixels(self, images: list[Any]) -> Any:
        """The model's input tensor (N, 3, S, S) for RGB uint8 frames (H x W x 3 arrays or tensors).

        The whole batch is resized, cropped and normalised as tensors on the
        model's device (a GPU does it for the frames it embeds), with the
        preprocessing stored with the model: its size, mean, std and bicubic,
        antialiased resizing of the shortest side (or a squash). Other resize
        modes go through the model's own PIL transform, one frame at a time.
        """
        import torch

        cfg = getattr(self.model.visual, "preprocess_cfg", None) or {}
        if cfg.get("resize_mode", "shortest") not in ("shortest", "squash") or not images:
            from PIL import Image

            frames = [im.cpu().numpy() if hasattr(im, "cpu") else im for im in images]
            return torch.stack([self.preprocess(Image.fromarray(np.asarray(im))) for im in frames])
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        size = cfg.get("size", self.model.visual.image_size)
        size = (size, size) if isinstance(size, int) else tuple(size)
        mode = InterpolationMode(cfg.get("interpolation", "bicubic"))
        frames = [torch.as_tensor(im if hasattr(im, "permute") else np.asarray(im), device=self.device)
                  .permute(2, 0, 1) for im in images]
        # frames of one video share a size: one resize for the batch (else one per size)
        groups = [torch.stack(frames)] if len({f.shape for f in frames}) == 1 else [f[None] for f in frames]
        out = []
        for x in groups:
            if cfg.get("resize_mode", "shortest") == "squash":
                x = TF.resize(x, list(size), interpolation=mode, antialias=True)
            else:
                x = TF.center_crop(TF.resize(x, [min(size)], interpolation=mode, antialias=True), list(size))
            out.append(x)
        batch = torch.cat(out).float().div_(255.0)
        mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), device=self.device)
        std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), device=self.device)
        return (batch - mean[:, None, None]) / std[:, None, None]

    def bytes_per_frame(self, frame_hw: tuple[int, int] = PROBE_FRAME_HW, n: int = 8) -> int:
        """Peak CUDA memory one frame costs on its way through ``pixels`` and ``encode_image``, measured
        on ``n`` blank frames of ``frame_hw`` (the decoded size; default ``max_side`` 640 at 16:9)."""
        import torch

        dev = torch.device(self.device)
        frames = [torch.zeros((*frame_hw, 3), dtype=torch.uint8, device=dev) for _ in range(n)]
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        with torch.inference_mode():
            self.model.encode_image(self.pixels(frames).to(self.device, self.dtype))
        torch.cuda.synchronize(dev)
        return int((torch.cuda.max_memory_allocated(dev) - base) // n) + frame_hw[0] * frame_hw[1] * 3

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings of text queries, shape (N, dim)."""
        import torch

        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[i : i + self.batch_size]).to(self.device)
            with torch.inference_mode():
                feats = self.model.encode_text(tokens)
            out.append(_normalise(feats))
        return np.concatenate(out) if out else np.zeros((0, self.spec.dim), np.float32)


def _normalise(feats: Any) -> np.ndarray:
    x = feats.float().cpu().numpy()
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def load(ref: str, device: str, dtype: Any, batch_size: int = 32) -> VisualModel:
    """Load an open_clip model from ``NAME@TAG``, ``hf-hub:org/x`` or a directory.

    Directories hold ``open_clip_config.json`` plus weights (open_clip's own
    ``local-dir:`` layout), so the preprocessing travels with the weights.
    """
    import open_clip

    kind, target = hub.split_ref(ref)
    revision = None
    if kind == "dir":
        path = hub.local_dir(target, "visual", SETTING)
        name, pretrained, revision = f"local-dir:{path}", None, hub.fingerprint(path)
    elif kind == "hub":
        path = hub.snapshot(target, "visual", SETTING)
        name, pretrained, revision = f"local-dir:{path}", None, path.name
    else:
        arch, _, tag = target.partition("@")
        if arch not in open_clip.list_models():
            raise ModelUnavailable(f"unknown open_clip model {arch!r}; fix {SETTING}")
        name, pretrained = arch, None
        if tag:
            cfg = open_clip.get_pretrained_cfg(arch, tag)
            if not cfg or not cfg.get("hf_hub"):
                raise ModelUnavailable(f"open_clip has no hub weights for {arch}@{tag}; fix {SETTING}")
            repo = cfg["hf_hub"].strip("/")
            snap = hub.snapshot(repo, "visual", SETTING, allow_patterns=["open_clip_*", "*.json", "*.txt"])
            pretrained = _checkpoint(snap, ref)
            revision = snap.name
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except ModelUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - bad config or weights
        raise ModelUnavailable(f"visual model {ref} failed to load: {str(exc).splitlines()[0]}; fix {SETTING}") from None
    model.eval()
    if device.startswith("cuda"):
        model = model.to(dtype)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    dim = int(model.encode_text(tokenizer(["x"]).to(device)).shape[-1])
    spec = ModelSpec(
        role="visual",
        ref=ref,
        model_id=name if kind != "dir" else f"local-dir:{Path(target).name}",
        revision=revision,
        dim=dim,
        preprocessing={k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()},
    )
    vm = VisualModel(spec, model, preprocess, tokenizer, device, next(model.parameters()).dtype, batch_size)
    if device.startswith("cuda"):
        vm.batch_size = _gpu_batch_size(vm, batch_size)
    return vm


def _gpu_batch_size(vm: VisualModel, default: int) -> int:
    """The batch that fits the GPU's free memory (device.gpu_batch_size), measured once at load."""
    from .device import cuda_batch_size

    try:
        per_frame = vm.bytes_per_frame()
    except Exception:  # noqa: BLE001 - measuring failed (out of memory already?): keep the setting
        return default
    return cuda_batch_size(vm.device, default, per_frame)


def _checkpoint(snap: Path, ref: str) -> str:
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin"):
        if (snap / name).is_file():
            return str(snap / name)
    raise ModelUnavailable(f"no open_clip weights found in {snap} for {ref}; fix {SETTING}")
