"""Selective scan (the S6 recurrence of Mamba) in plain PyTorch, for any device.

The recurrence
--------------
For every batch element ``b`` and channel ``d`` (``dim``) a state
``h`` of size ``N`` is carried along the sequence::

    dA_t = delta_t * A                    # (N,), <= 0 because A < 0, delta > 0
    h_t  = exp(dA_t) * h_{t-1} + delta_t * B_t * u_t
    y_t  = <C_t, h_t> + D * u_t
    y_t  = y_t * silu(z_t)                # when a gate z is given

``delta`` gets ``delta_bias`` added and then ``softplus`` when asked, exactly as
in mamba-ssm. Argument shapes and names follow mamba-ssm's
``selective_scan_fn`` so the same weights run on its CUDA kernel:

* ``u``, ``delta``, ``z``: ``(batch, dim, L)``
* ``A``: ``(dim, N)`` (real)
* ``B``, ``C``: ``(batch, N, L)`` (input dependent), ``(batch, G, N, L)``
  (``G`` groups of ``dim // G`` channels) or ``(dim, N)`` (constant)
* ``D``, ``delta_bias``: ``(dim,)``

The output has ``u``'s dtype; the arithmetic runs in float32 (float64 when
``u`` is float64).

Two forms, and why
------------------
``"lean"`` (inference)
    A step loop that keeps only the running state ``h`` of shape
    ``(batch, dim, N)``; per chunk of ``_LEAN_CHUNK`` steps it precomputes the
    decays and inputs of that chunk, so nothing of size ``(batch, dim, L, N)``
    ever exists. On the CPU it is as fast as any parallel form (the parallel
    forms do ``log T`` times more arithmetic to buy parallelism a CPU does not
    have) and its memory does not grow with ``L``: see
    ``benchmarks/scan_speed.py``.
``"chunked"`` (training)
    Autograd through a step loop records a few tiny ops per time step, and the
    backward pass then walks ``L`` steps of tiny kernels one at a time: slow.
    The chunked form splits ``L`` into chunks of ``chunk`` steps (64). Inside a
    chunk all steps are computed at once by a log-depth (Hillis-Steele)
    doubling scan over the log-decays: after level ``k`` every position holds
    the recurrence over the last ``2k`` steps, and the decay over a window is
    ``exp(w)`` with ``w`` the window sum of ``dA`` (itself built by doubling, so
    it is a sum of non-positive numbers -- no cancellation of large cumulative
    sums and never an ``exp`` of a positive number, so nothing overflows; long
    decays just underflow to 0 with zero gradient). The state entering the
    chunk is added with ``exp(cumsum(dA))``, also ``<= 1``. Only the state
    ``(batch, dim, N)`` is carried from one chunk to the next; the graph holds
    ``O(batch * dim * chunk * N * log chunk)`` per chunk. Its forward+backward
    is faster than autograd through the lean loop, at a few times its memory
    (measured with ``benchmarks/scan_speed.py``; figures in README.md,
    "Benchmarks"). A hand-written backward (reverse adjoint scan, like
    mamba-ssm's kernel) would be the next step if training on CPU matters.
``"cuda"``
    mamba-ssm's fused kernel when it is installed and the tensors are on CUDA.
``"auto"``
    ``"cuda"`` if possible, else ``"chunked"`` when autograd will record
    (grad mode on and some input requires grad), else ``"lean"``.
    :func:`scan_mode` tells which.

:func:`selective_scan_reference` is the plain sequential loop, kept as the
ground truth for tests (run it in float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_scan", "selective_scan_reference", "scan_mode", "MODES"]

MODES = ("auto", "reference", "lean", "chunked", "cuda")

#: chunk length of the training scan (a power of two keeps the doubling tight)
CHUNK = 64
#: steps whose decays/inputs the lean loop precomputes at once
_LEAN_CHUNK = 64


def _mamba_cuda_fn():
    """mamba-ssm's fused selective scan, or None when it is not installed."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a broken CUDA extension build
        return None
    return selective_scan_fn


def _cuda_ok(tensors) -> bool:
    ts = [t for t in tensors if isinstance(t, torch.Tensor)]
    return bool(ts) and all(t.is_cuda for t in ts) and _mamba_cuda_fn() is not None


def scan_mode(*tensors) -> str:
    """The mode ``selective_scan(..., mode="auto")`` picks for these inputs."""
    ts = [t for t in tensors if isinstance(t, torch.Tensor)]
    if _cuda_ok(ts):
        return "cuda"
    if torch.is_grad_enabled() and any(t.requires_grad for t in ts):
        return "chunked"
    return "lean"


# ---------------------------------------------------------------- helpers


def _compute_dtype(u: torch.Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _prep_delta(delta, delta_bias, delta_softplus, dtype):
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _check(u, delta, A, B, C):
    if A.is_complex():
        raise NotImplementedError("selective_scan: complex A is not supported")
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must be (batch, dim, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != u.shape[1]:
        raise ValueError(f"A must be (dim, N) with dim={u.shape[1]}, got {tuple(A.shape)}")
    for name, X in (("B", B), ("C", C)):
        if X.dim() not in (2, 3, 4):
            raise ValueError(f"{name} must be (dim, N), (batch, N, L) or (batch, G, N, L), got {tuple(X.shape)}")
        if X.dim() == 4 and u.shape[1] % X.shape[1]:
            raise ValueError(f"{name}: dim {u.shape[1]} is not a multiple of its {X.shape[1]} groups")


def _bc(X: torch.Tensor, sl: slice, dim: int, dtype) -> torch.Tensor:
    """B or C for the steps in ``sl``, broadcastable to ``(batch, dim, T, N)``."""
    X = X.to(dtype)
    if X.dim() == 2:  # (dim, N): constant over time
        return X[None, :, None, :]
    if X.dim() == 3:  # (batch, N, L)
        return X[:, :, sl].transpose(1, 2).unsqueeze(1)
    # (batch, G, N, L): group g serves channels g*dim/G .. (g+1)*dim/G - 1
    Xs = X[..., sl].transpose(2, 3)
    return Xs.repeat_interleave(dim // X.shape[1], dim=1)


def _finish(y, u, D, z, dtype):
    if D is not None:
        y = y + D.to(dtype)[:, None] * u.to(dtype)
    if z is not None:
        y = y * F.silu(z.to(dtype))
    return y.to(u.dtype)


# ------------------------------------------------------------------ forms


def selective_scan_reference(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Plain sequential loop over time: the ground truth (slow; use float64)."""
    _check(u, delta, A, B, C)
    dtype = _compute_dtype(u)
    delta = _prep_delta(delta, delta_bias, delta_softplus, dtype)
    uu, AA = u.to(dtype), A.to(dtype)
    batch, dim, L = u.shape
    h = uu.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(L):
        sl = slice(t, t + 1)
        Bt = _bc(B, sl, dim, dtype)[:, :, 0]
        Ct = _bc(C, sl, dim, dtype)[:, :, 0]
        dt = delta[:, :, t, None]
        h = torch.exp(dt * AA) * h + dt * Bt * uu[:, :, t, None]
        ys.append((h * Ct).sum(-1))
    y = torch.stack(ys, -1) if ys else uu.new_zeros(batch, dim, 0)
    out = _finish(y, u, D, z, dtype)
    return (out, h) if return_last_state else out


def _scan_lean(u, delta, A, B, C, dtype, chunk=_LEAN_CHUNK):
    """Step loop carrying only h; returns (y without D/z, last state)."""
    batch, dim, L = u.shape
    AA = A.to(dtype)
    uu = u.to(dtype)
    h = uu.new_zeros(batch, dim, A.shape[1])
    ys = []
    for c0 in range(0, L, chunk):
        sl = slice(c0, min(c0 + chunk, L))
        dl = delta[:, :, sl]
        a = torch.exp(dl.unsqueeze(-1) * AA[:, None, :])  # (b, d, T, N)
        x = (dl * uu[:, :, sl]).unsqueeze(-1) * _bc(B, sl, dim, dtype)
        hs = []
        for t in range(sl.stop - sl.start):
            h = torch.addcmul(x[:, :, t], a[:, :, t], h)
            hs.append(h)
        ys.append((torch.stack(hs, 2) * _bc(C, sl, dim, dtype)).sum(-1))
    y = torch.cat(ys, -1) if ys else uu.new_zeros(batch, dim, 0)
    return y, h


def _scan_chunked(u, delta, A, B, C, dtype, chunk=CHUNK):
    """Chunked parallel scan (doubling over log-decays); returns (y, last state)."""
    batch, dim, L = u.shape
    AA = A.to(dtype)
    uu = u.to(dtype)
    h = uu.new_zeros(batch, dim, A.shape[1])
    ys = []
    for c0 in range(0, L, chunk):
        sl = slice(c0, min(c0 + chunk, L))
        T = sl.stop - sl.start
        dl = delta[:, :, sl]
        dA = dl.unsqueeze(-1) * AA[:, None, :]  # (b, d, T, N), <= 0
        x = (dl * uu[:, :, sl]).unsqueeze(-1) * _bc(B, sl, dim, dtype)
        # Doubling: before level k, x[t] = recurrence over steps t-k+1..t from a zero
        # state and w[t] = sum of dA over the same window (non-positive).
        w = dA
        k = 1
        while k < T:
            x = torch.cat([x[:, :, :k], x[:, :, k:] + torch.exp(w[:, :, k:]) * x[:, :, :-k]], 2)
            if 2 * k < T:
                w = torch.cat([w[:, :, :k], w[:, :, k:] + w[:, :, :-k]], 2)
            k *= 2
        # State entering the chunk, decayed by exp(cumsum dA) <= 1.
        x = x + torch.exp(dA.cumsum(2)) * h.unsqueeze(2)
        ys.append((x * _bc(C, sl, dim, dtype)).sum(-1))
        h = x[:, :, -1]
    y = torch.cat(ys, -1) if ys else uu.new_zeros(batch, dim, 0)
    return y, h


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    mode="auto",
    return_last_state=False,
    chunk=CHUNK,
):
    """Selective scan with mamba-ssm's ``selective_scan_fn`` conventions.

    ``mode``: ``"auto"`` (see :func:`scan_mode`), ``"reference"``, ``"lean"``,
    ``"chunked"`` or ``"cuda"``. Every form is differentiable, but ``"lean"``
    is meant for no_grad/inference and ``"chunked"`` for training. Returns
    ``y`` of shape ``(batch, dim, L)`` in ``u``'s dtype, or ``(y, last_state)``
    with ``last_state`` ``(batch, dim, N)`` when ``return_last_state``.
    """
    if mode not in MODES:
        raise ValueError(f"selective_scan: mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        mode = scan_mode(u, delta, A, B, C, D, z, delta_bias)
    if mode == "cuda":
        fn = _mamba_cuda_fn()
        if fn is None:
            raise RuntimeError("selective_scan mode='cuda' needs mamba_ssm (pip install mamba-ssm)")
        if not u.is_cuda:
            raise RuntimeError("selective_scan mode='cuda' needs CUDA tensors")
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if mode == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    _check(u, delta, A, B, C)
    dtype = _compute_dtype(u)
    dlt = _prep_delta(delta, delta_bias, delta_softplus, dtype)
    if mode == "lean":
        y, h = _scan_lean(u, dlt, A, B, C, dtype)
    else:
        if chunk < 1:
            raise ValueError(f"selective_scan: chunk must be >= 1, got {chunk}")
        y, h = _scan_chunked(u, dlt, A, B, C, dtype, chunk)
    out = _finish(y, u, D, z, dtype)
    return (out, h) if return_last_state else out
