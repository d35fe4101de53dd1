"""The selective scan: lean and chunked forms against the sequential reference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from vdisc.index.models.scan import scan_mode, selective_scan, selective_scan_reference


def _inputs(batch, dim, L, N, seed=0, dtype=torch.float32, bc="batch", groups=2):
    g = torch.Generator().manual_seed(seed)

    def rn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    u = rn(batch, dim, L)
    delta_raw = rn(batch, dim, L)
    A = -torch.exp(rn(dim, N))
    if bc == "batch":
        B, C = rn(batch, N, L), rn(batch, N, L)
    elif bc == "group":
        B, C = rn(batch, groups, N, L), rn(batch, groups, N, L)
    else:  # constant (dim, N)
        B, C = rn(dim, N), rn(dim, N)
    D, z, delta_bias = rn(dim), rn(batch, dim, L), rn(dim) * 0.5
    cast = {k: v.to(dtype) for k, v in dict(u=u, delta_raw=delta_raw, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias).items()}
    return cast


def _args(x, *, softplus, use_D, use_z, use_bias):
    """(args, kwargs) for selective_scan; without softplus delta is softplus'd up front."""
    delta = x["delta_raw"] if softplus else F.softplus(x["delta_raw"])
    kw = dict(
        D=x["D"] if use_D else None,
        z=x["z"] if use_z else None,
        delta_bias=x["delta_bias"] if use_bias else None,
        delta_softplus=softplus,
    )
    return (x["u"], delta, x["A"], x["B"], x["C"]), kw


def _ref64(args, kw):
    return selective_scan_reference(*(a.double() for a in args), **{k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})


@pytest.mark.parametrize("L", [1, 7, 63, 64, 65, 128, 130])
@pytest.mark.parametrize("mode", ["lean", "chunked"])
def test_matches_reference_lengths(mode, L):
    x = _inputs(2, 6, L, 5, seed=L)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    y = selective_scan(*args, **kw, mode=mode)
    assert y.shape == (2, 6, L) and y.dtype == torch.float32
    assert (y.double() - _ref64(args, kw)).abs().max().item() < 1e-4


@pytest.mark.parametrize("softplus,use_D,use_z,use_bias", [
    (False, False, False, False),
    (False, True, False, False),
    (False, False, True, False),
    (True, False, False, False),
    (True, False, False, True),
    (False, True, True, False),
    (True, True, True, True),
])
@pytest.mark.parametrize("mode", ["lean", "chunked"])
def test_matches_reference_options(mode, softplus, use_D, use_z, use_bias):
    x = _inputs(3, 5, 70, 4, seed=1)
    args, kw = _args(x, softplus=softplus, use_D=use_D, use_z=use_z, use_bias=use_bias)
    y = selective_scan(*args, **kw, mode=mode)
    assert (y.double() - _ref64(args, kw)).abs().max().item() < 1e-4


@pytest.mark.parametrize("bc", ["group", "const"])
@pytest.mark.parametrize("mode", ["lean", "chunked"])
def test_bc_layouts(mode, bc):
    x = _inputs(2, 6, 67, 4, seed=2, bc=bc)
    args, kw = _args(x, softplus=True, use_D=True, use_z=False, use_bias=False)
    y = selective_scan(*args, **kw, mode=mode)
    assert (y.double() - _ref64(args, kw)).abs().max().item() < 1e-4


@pytest.mark.parametrize("chunk", [1, 3, 16, 50, 256])
def test_chunk_sizes(chunk):
    x = _inputs(1, 4, 100, 3, seed=3)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    y = selective_scan(*args, **kw, mode="chunked", chunk=chunk)
    assert (y.double() - _ref64(args, kw)).abs().max().item() < 1e-4


@pytest.mark.parametrize("mode", ["lean", "chunked"])
def test_float64(mode):
    x = _inputs(2, 4, 97, 8, seed=4, dtype=torch.float64)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    y = selective_scan(*args, **kw, mode=mode)
    assert y.dtype == torch.float64
    assert (y - selective_scan_reference(*args, **kw)).abs().max().item() < 1e-10


def test_strong_decay_is_stable():
    """Huge log-decays (exp(-1000) per chunk) must not overflow to inf/nan."""
    x = _inputs(1, 4, 200, 4, seed=5)
    args, kw = _args(x, softplus=False, use_D=False, use_z=False, use_bias=False)
    u, delta, A, B, C = args
    A = A * 50.0
    delta = delta * 4.0
    for mode in ("lean", "chunked"):
        y = selective_scan(u, delta, A, B, C, mode=mode)
        assert torch.isfinite(y).all()
        ref = selective_scan_reference(u.double(), delta.double(), A.double(), B.double(), C.double())
        assert (y.double() - ref).abs().max().item() < 1e-4


def test_last_state():
    x = _inputs(2, 5, 77, 4, seed=6)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    _, h_ref = selective_scan_reference(*(a.double() for a in args), return_last_state=True,
                                        delta_softplus=True, delta_bias=x["delta_bias"].double())
    for mode in ("lean", "chunked"):
        y, h = selective_scan(*args, **kw, mode=mode, return_last_state=True)
        assert h.shape == (2, 5, 4)
        assert (h.double() - h_ref).abs().max().item() < 1e-4


def test_chunked_gradients_match_reference():
    x = _inputs(2, 3, 21, 4, seed=7)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    weight = torch.randn(2, 3, 21, generator=torch.Generator().manual_seed(8))

    def grads(fn, dtype, **extra):
        leaves = [a.detach().to(dtype).requires_grad_() for a in args]
        kws = {k: (v.detach().to(dtype).requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        y = fn(*leaves, **kws, **extra)
        (y * weight.to(dtype)).sum().backward()
        return [t.grad for t in leaves] + [kws[k].grad for k in ("D", "z", "delta_bias")]

    g_ref = grads(selective_scan_reference, torch.float64)
    for chunk in (4, 64):
        g = grads(selective_scan, torch.float32, mode="chunked", chunk=chunk)
        for name, a, b in zip(names, g, g_ref):
            assert (a.double() - b).abs().max().item() < 1e-4, name


def test_scan_mode_auto():
    x = _inputs(1, 4, 10, 3)
    u, A = x["u"], x["A"].clone().requires_grad_()
    assert scan_mode(u, A) == "chunked"
    with torch.no_grad():
        assert scan_mode(u, A) == "lean"
    with torch.inference_mode():
        assert scan_mode(u, x["A"]) == "lean"
    assert scan_mode(u, x["A"]) == "lean"  # nothing requires grad


def test_auto_dispatch(monkeypatch):
    import vdisc.index.models.scan as scan

    seen = []
    real_lean, real_chunked = scan._scan_lean, scan._scan_chunked
    monkeypatch.setattr(scan, "_scan_lean", lambda *a, **k: seen.append("lean") or real_lean(*a, **k))
    monkeypatch.setattr(scan, "_scan_chunked", lambda *a, **k: seen.append("chunked") or real_chunked(*a, **k))
    x = _inputs(1, 4, 10, 3)
    args, kw = _args(x, softplus=True, use_D=True, use_z=False, use_bias=False)
    A = args[2].clone().requires_grad_()
    selective_scan(args[0], args[1], A, *args[3:], **kw).sum().backward()
    with torch.no_grad():
        selective_scan(args[0], args[1], A, *args[3:], **kw)
    assert seen == ["chunked", "lean"]
    assert A.grad is not None


def test_cuda_mode_without_mamba_raises():
    x = _inputs(1, 2, 5, 2)
    args, kw = _args(x, softplus=True, use_D=False, use_z=False, use_bias=False)
    with pytest.raises(RuntimeError):
        selective_scan(*args, **kw, mode="cuda")
    with pytest.raises(ValueError):
        selective_scan(*args, **kw, mode="bogus")


_MEM_SCRIPT = textwrap.dedent(
    """
    import resource, torch, torch.nn.functional as F
    from vdisc.index.models.scan import selective_scan
    torch.set_num_threads(1)
    b, d, L, N = 1, 64, 20000, 16
    u = torch.randn(b, d, L); delta = F.softplus(torch.randn(b, d, L))
    A = -torch.exp(torch.randn(d, N)); B = torch.randn(b, N, L); C = torch.randn(b, N, L)
    with torch.no_grad():  # warm up allocator / kernels on a short prefix
        selective_scan(u[..., :200], delta[..., :200], A, B[..., :200], C[..., :200], mode="lean")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        y = selective_scan(u, delta, A, B, C, mode="lean")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux-specific")
def test_lean_memory_does_not_scale_with_L_times_N():
    """One (1, 64, 20000, 16) float32 tensor is ~82 MB; lean must stay far below."""
    out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    assert growth_mb < 40, growth_mb


def _mamba_ssm_on_cuda() -> bool:
    if not torch.cuda.is_available():
        return False
    from vdisc.index.models.scan import _mamba_cuda_fn

    return _mamba_cuda_fn() is not None


@pytest.mark.skipif(not _mamba_ssm_on_cuda(), reason="needs CUDA and mamba-ssm (pip install mamba-ssm)")
def test_mamba_ssm_cuda_kernel_matches_the_chunked_scan():
    """auto picks mamba-ssm's fused kernel on CUDA tensors; its output and gradients agree with ours."""
    x = _inputs(2, 64, 300, 16)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)
    cuda = [a.cuda().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a for a in args]
    kw_cuda = {k: (v.cuda().requires_grad_(True) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    assert scan_mode(*cuda) == "cuda"
    ours_in = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in cuda]
    ours_kw = {k: (v.detach().clone().requires_grad_(True) if isinstance(v, torch.Tensor) else v)
               for k, v in kw_cuda.items()}
    theirs = selective_scan(*cuda, **kw_cuda, mode="auto")
    ours = selective_scan(*ours_in, **ours_kw, mode="chunked")
    torch.testing.assert_close(theirs, ours, atol=1e-3, rtol=1e-3)
    theirs.square().sum().backward()
    ours.square().sum().backward()
    for a, b in zip([*cuda, *kw_cuda.values()], [*ours_in, *ours_kw.values()]):
        if isinstance(a, torch.Tensor) and a.grad is not None:
            scale = max(1.0, float(b.grad.abs().max()))
            torch.testing.assert_close(a.grad / scale, b.grad / scale, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("keep_states", [True, False])
@pytest.mark.parametrize("bc", ["batch", "group", "const"])
def test_chunked_backward_every_layout_and_the_last_state(monkeypatch, bc, keep_states):
    """The hand-written backward against autograd through the float64 reference: every B/C layout,
    several chunks, a loss on the last state too, with the forward's states kept or recomputed."""
    import vdisc.index.models.scan as scan

    monkeypatch.setattr(scan, "SAVE_STATES", 1 << 30 if keep_states else 0)
    x = _inputs(2, 4, 23, 3, seed=11, bc=bc)
    args, kw = _args(x, softplus=True, use_D=True, use_z=True, use_bias=True)

    def grads(fn, dtype, **extra):
        leaves = [a.detach().to(dtype).requires_grad_() for a in args]
        kws = {k: (v.detach().to(dtype).requires_grad_() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        y, h = fn(*leaves, **kws, return_last_state=True, **extra)
        (y.sin().sum() + h.square().sum()).backward()
        return [t.grad for t in leaves] + [kws[k].grad for k in ("D", "z", "delta_bias")]

    ref = grads(selective_scan_reference, torch.float64)
    for chunk in (3, 64):
        for a, b in zip(grads(selective_scan, torch.float64, mode="chunked", chunk=chunk), ref):
            assert (a - b).abs().max().item() < 1e-10
        for a, b in zip(grads(selective_scan, torch.float32, mode="chunked", chunk=chunk), ref):
            assert (a.double() - b).abs().max().item() < 1e-4


def test_doubling_form_kept_for_the_benchmark_matches_the_reference():
    import vdisc.index.models.scan as scan

    x = _inputs(2, 5, 70, 4, seed=12, dtype=torch.float64)
    args, _ = _args(x, softplus=False, use_D=False, use_z=False, use_bias=False)
    y, h = scan._scan_doubling(*args, torch.float64)
    y_ref, h_ref = selective_scan_reference(*args, return_last_state=True)
    assert (y - y_ref).abs().max().item() < 1e-10 and (h - h_ref).abs().max().item() < 1e-10
