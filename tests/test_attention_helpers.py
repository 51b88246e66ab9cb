"""Shared by tests/test_attention*.py: inputs, the SDPA oracle and the tolerance table per dtype.

Imported as ``from test_attention_helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
The tests at the bottom check that the oracle check itself can fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

# Absolute/relative tolerances against the float64 SDPA oracle. float16 uses the relative rule
# instead (STYLE rule 13): the error may be at most 2x that of torch's own SDPA in float16.
TOLERANCE = {
    torch.float64: {"atol": 1e-10, "rtol": 1e-8},
    torch.float32: {"atol": 2e-5, "rtol": 1e-4},
}
HALF_FACTOR, HALF_FLOOR = 2.0, 1e-4  # error <= 2 x SDPA's fp16 error + a floor for exact cases


def qkv(b: int, h: int, t: int, d: int, dtype=torch.float32, s: int | None = None, seed: int = 0,
        layout: str = "contiguous") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random q (B, H, T, D), k, v (B, H, S, D); ``layout="bthd"`` gives non-contiguous views of a
    (B, T, H, D) buffer, as a model's projections produce them."""
    gen = torch.Generator().manual_seed(seed)
    s = t if s is None else s
    if layout == "bthd":
        q = torch.randn(b, t, h, d, generator=gen).transpose(1, 2)  # (B, H, T, D), non-contiguous
        k, v = torch.randn(2, b, s, h, d, generator=gen).transpose(2, 3).unbind(0)  # (B, H, S, D)
        assert not q.is_contiguous() and not k.is_contiguous()
    else:
        q = torch.randn(b, h, t, d, generator=gen)
        k, v = torch.randn(2, b, h, s, d, generator=gen).unbind(0)
    return tuple(x.to(dtype).requires_grad_() for x in (q, k, v))


def outputs_and_grads(fn, q, k, v, causal, seed: int = 1):
    """``(O, dq, dk, dv)`` of ``fn(q, k, v, causal)`` for a fixed random upstream gradient (float64 seed)."""
    o = fn(q, k, v, causal)
    g = torch.randn(o.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(o.dtype)
    return (o, *torch.autograd.grad(o, (q, k, v), g))


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def assert_matches_sdpa(fn, q, k, v, causal):
    """Output and q, k, v gradients of ``fn`` against SDPA in float64, with the dtype's tolerance."""
    ours = outputs_and_grads(fn, q, k, v, causal)
    up = [x.detach().double().requires_grad_() for x in (q, k, v)]
    oracle = outputs_and_grads(sdpa, *up, causal)
    names = ("output", "dq", "dk", "dv")
    if q.dtype in TOLERANCE:
        for name, a, b in zip(names, ours, oracle):
            assert torch.allclose(a.double(), b, **TOLERANCE[q.dtype]), \
                f"{name}: max error {(a.double() - b).abs().max().item():.3g}"
        return
    same = [x.detach().requires_grad_() for x in (q, k, v)]
    theirs = outputs_and_grads(sdpa, *same, causal)
    for name, a, t, b in zip(names, ours, theirs, oracle):
        err, err_torch = (a.double() - b).abs().max().item(), (t.double() - b).abs().max().item()
        assert err <= HALF_FACTOR * err_torch + HALF_FLOOR, f"{name}: error {err:.3g} vs SDPA's {err_torch:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_the_oracle_rejects_wrong_attention(dtype):
    q, k, v = qkv(1, 2, 33, 16, dtype)
    assert_matches_sdpa(sdpa, q, k, v, True)  # SDPA against itself passes
    with pytest.raises(AssertionError, match="output"):  # a slightly wrong scale fails
        assert_matches_sdpa(lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c, scale=0.26),
                            q, k, v, True)
    with pytest.raises(AssertionError, match="dk"):  # a wrong gradient (the output is right) fails
        assert_matches_sdpa(lambda q, k, v, c: sdpa(q, k.detach() + 0 * k, v, c), q, k, v, True)
