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
    The chunked form is an ``autograd.Function`` with a hand-written backward,
    the reverse adjoint scan of mamba-ssm's kernel: the forward runs the step
    loop over chunks of ``chunk`` steps (64), computing each chunk's decays
    ``exp(delta A)`` (``<= 1``: nothing overflows; long decays underflow to 0)
    and inputs at once, time-leading so that a step is one contiguous slice;
    the backward walks the chunks from the end, runs the adjoint
    ``g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}`` as a reverse step loop and
    then gets every gradient (u, delta, A, B, C) as one product and reduction
    over the chunk. Nothing is recorded per step. Up to ``SAVE_STATES``
    elements the forward keeps its decays and states for the backward; beyond,
    it keeps one state per chunk and the backward recomputes the chunk's
    (memory ``O(batch * dim * chunk * N)`` plus a state per chunk). Its
    forward+backward is several times faster than autograd through the step
    loop on the CPU (``benchmarks/scan_backward.py``; figures in README.md).
    The log-depth doubling scan differentiated by autograd that this form
    replaced is kept as ``_scan_doubling`` for that benchmark.
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


def _scan_doubling(u, delta, A, B, C, dtype, chunk=CHUNK):
    """Chunked parallel scan (doubling over log-decays) differentiated by autograd; returns (y, last
    state). The training form before the hand-written backward; kept for ``benchmarks/scan_backward.py``."""
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


def _bc_t(X: torch.Tensor, sl: slice, dim: int) -> torch.Tensor:
    """B or C for the steps in ``sl``, time-leading: broadcastable to ``(T, batch, dim, N)``."""
    if X.dim() == 2:  # (dim, N): constant over time
        return X[None, None]
    if X.dim() == 3:  # (batch, N, L)
        return X[:, :, sl].permute(2, 0, 1).unsqueeze(2)
    return X[..., sl].permute(3, 0, 1, 2).repeat_interleave(dim // X.shape[1], dim=2)  # (batch, G, N, L)


def _reduce_bc_t(g: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """The gradient of B or C in its own layout (for a chunk's steps) from ``g`` (T, batch, dim, N),
    the gradient of what ``_bc_t`` broadcast it to."""
    if X.dim() == 2:  # (dim, N)
        return g.sum((0, 1))
    if X.dim() == 3:  # (batch, N, T)
        return g.sum(2).permute(1, 2, 0)
    T, b, d, N = g.shape  # (batch, G, N, T)
    G = X.shape[1]
    return g.reshape(T, b, G, d // G, N).sum(3).permute(1, 2, 3, 0)


def _chunk_inputs(u, delta, A, B, sl, dim):
    """A chunk's decays ``a = exp(delta A)`` and inputs ``x = delta u B``, time-leading (T, batch, dim, N)
    and contiguous (each step is one contiguous slice), with its delta and u (T, batch, dim)."""
    dl = delta[:, :, sl].permute(2, 0, 1)
    uu = u[:, :, sl].permute(2, 0, 1)
    a = torch.exp(dl.unsqueeze(-1) * A)
    x = (dl * uu).unsqueeze(-1) * _bc_t(B, sl, dim)
    return a, x.contiguous(), dl, uu


def _steps(a: torch.Tensor, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + x_t over a chunk's steps (time-leading), from ``h``: all states."""
    hs = torch.empty_like(x)
    for t in range(x.shape[0]):
        h = torch.addcmul(x[t], a[t], h, out=hs[t])
    return hs


#: up to this many elements (batch * dim * L * N) the forward keeps its decays and states for the
#: backward; longer sequences keep one state per chunk and recompute the chunk's (memory O(chunk))
SAVE_STATES = 1 << 23


class _ChunkedScan(torch.autograd.Function):
    """The recurrence with a hand-written backward (the reverse adjoint scan of mamba-ssm's kernel).

    Forward: per chunk of ``chunk`` steps, decays ``a = exp(delta A)`` and inputs ``x = delta u B`` for
    the chunk at once (time-leading, so a step is one contiguous slice), then the step loop. Backward,
    chunk by chunk from the end: the adjoint ``g_t = C_t dy_t + a_{t+1} g_{t+1}`` is a reverse step
    loop, and every gradient is then one product and reduction over the chunk. The chunk's decays and
    states are kept from the forward up to ``SAVE_STATES`` elements, else recomputed from the state
    entering the chunk (memory O(batch dim chunk N) plus one state per chunk). Autograd records
    nothing per step.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk):
        batch, dim, L = u.shape
        keep = batch * dim * L * A.shape[1] <= SAVE_STATES
        h = u.new_zeros(batch, dim, A.shape[1])
        y = u.new_empty(batch, dim, L)
        starts, saved = [], []
        for c0 in range(0, L, chunk):
            sl = slice(c0, min(c0 + chunk, L))
            a, x, _, _ = _chunk_inputs(u, delta, A, B, sl, dim)
            starts.append(h)
            hs = _steps(a, x, h)
            y[:, :, sl] = (hs * _bc_t(C, sl, dim)).sum(-1).permute(1, 2, 0)
            h = hs[-1]
            if keep:
                saved += [a, hs]
        ctx.save_for_backward(u, delta, A, B, C, *starts, *saved)
        ctx.chunk, ctx.n = chunk, len(starts)
        return y, h.clone()

    @staticmethod
    def backward(ctx, gy, gh):
        u, delta, A, B, C, *rest = ctx.saved_tensors
        starts, saved = rest[: ctx.n], rest[ctx.n :]
        chunk = ctx.chunk
        batch, dim, L = u.shape
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)
        gA = torch.zeros_like(A)
        gB = torch.zeros_like(B)
        gC = torch.zeros_like(C)
        carry = gh if gh is not None else u.new_zeros(batch, dim, A.shape[1])  # a_{t+1} g_{t+1}
        if gy is None:
            gy = torch.zeros_like(u)
        for ci in range(ctx.n - 1, -1, -1):
            sl = slice(ci * chunk, min((ci + 1) * chunk, L))
            T = sl.stop - sl.start
            if saved:
                a, hs = saved[2 * ci], saved[2 * ci + 1]
                dl = delta[:, :, sl].permute(2, 0, 1)
                uu = u[:, :, sl].permute(2, 0, 1)
            else:
                a, x, dl, uu = _chunk_inputs(u, delta, A, B, sl, dim)
                hs = _steps(a, x, starts[ci])
                del x
            gyt = gy[:, :, sl].permute(2, 0, 1).unsqueeze(-1)  # (T, b, d, 1)
            Bt, Ct = _bc_t(B, sl, dim), _bc_t(C, sl, dim)
            g = (gyt * Ct).contiguous()  # becomes the adjoint g_t in place
            ag = torch.empty_like(g)  # a_t g_t
            for t in range(T - 1, -1, -1):
                g[t] += carry
                carry = torch.mul(a[t], g[t], out=ag[t])
            # y_t = <C_t, h_t>: dC = dy h; x = delta u B: dx = g; a = exp(delta A): d(delta A) = g a h_{t-1}
            gCt = gyt * hs
            gx_du = (g * Bt).sum(-1)  # d/d(delta u), (T, b, d)
            gBt = g.mul_((dl * uu).unsqueeze(-1))  # g is done with
            carry = carry.clone()  # a view of ag[0], which becomes ga below
            ga = ag
            ga[1:] *= hs[:-1]
            ga[0] *= starts[ci]
            gdelta[:, :, sl] = (gx_du * uu + (ga * A).sum(-1)).permute(1, 2, 0)
            gu[:, :, sl] = (gx_du * dl).permute(1, 2, 0)
            gA += torch.einsum("tbdn,tbd->dn", ga, dl)
            if B.dim() == 2:
                gB += _reduce_bc_t(gBt, B)
            else:
                gB[..., sl] = _reduce_bc_t(gBt, B)
            if C.dim() == 2:
                gC += _reduce_bc_t(gCt, C)
            else:
                gC[..., sl] = _reduce_bc_t(gCt, C)
        return gu, gdelta, gA, gB, gC, None


def _scan_chunked(u, delta, A, B, C, dtype, chunk=CHUNK):
    """The training form: ``_ChunkedScan`` (hand-written backward); returns (y, last state)."""
    batch, dim, L = u.shape
    uu = u.to(dtype)
    if L == 0:
        return uu.new_zeros(batch, dim, 0), uu.new_zeros(batch, dim, A.shape[1])
    y, h = _ChunkedScan.apply(uu, delta.to(dtype), A.to(dtype), B.to(dtype), C.to(dtype), chunk)
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
