"""course_lib.attention: the reference, online softmax and the PyTorch tiling against SDPA;
the public ``flash_attention`` and its errors. Triton kernels: tests/test_attention_triton.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_attention_helpers import assert_matches_sdpa, qkv, sdpa

from course_lib.attention import (
    FlashAttention,
    SoftmaxState,
    attention_ref,
    block_state,
    flash_attention,
    flash_attention_torch,
    merge_states,
    online_softmax,
)
from course_lib.attention.flash_torch import FlashAttentionTorch
from course_lib.runtime import triton_available, triton_device

IMPLS = ["torch", pytest.param("triton", marks=pytest.mark.skipif(not triton_available(), reason="needs triton"))]

# --- the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, s", [(1, 1), (17, 17), (13, 29), (29, 13)])
def test_reference_matches_sdpa(t, s, causal):
    q, k, v = qkv(2, 3, t, 16, torch.float64, s=s)
    assert_matches_sdpa(attention_ref, q, k, v, causal)


def test_reference_scale():
    q, k, v = qkv(1, 2, 9, 16, torch.float64)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert torch.allclose(attention_ref(q, k, v, scale=0.3), expected)


# --- online softmax ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 3, 16, 1000])
def test_online_softmax_matches_torch(block_size):
    x = 30 * torch.randn(4, 97, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[1, 5:] = float("-inf")  # a row with masked tail
    assert torch.allclose(online_softmax(x, block_size), torch.softmax(x, -1), atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.integers(1, 12))
def test_online_softmax_rows_sum_to_one(values, block_size):
    p = online_softmax(torch.tensor(values, dtype=torch.float64), block_size)
    assert torch.all(p >= 0) and abs(p.sum().item() - 1) < 1e-12
    assert torch.allclose(p, torch.softmax(torch.tensor(values, dtype=torch.float64), -1), atol=1e-13)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 10**6))
def test_merge_is_exact_in_any_split_and_order(n, cut, seed):
    """Merging the states of s[:cut] and s[cut:] (either order) equals the state of all of s."""
    gen = torch.Generator().manual_seed(seed)
    s = 10 * torch.randn(3, n, generator=gen, dtype=torch.float64)
    v = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    cut = min(cut, n)
    a, b, whole = block_state(s[:, :cut], v[:cut]), block_state(s[:, cut:], v[cut:]), block_state(s, v)
    for merged in (merge_states(a, b), merge_states(b, a)):
        assert torch.allclose(merged.m, whole.m)
        assert torch.allclose(merged.acc / merged.l[:, None], torch.softmax(s, -1) @ v, atol=1e-12)


def test_merge_with_empty_state_is_identity_and_has_no_nan():
    empty = SoftmaxState(torch.tensor([float("-inf")]), torch.tensor([0.0]), torch.zeros(1, 2))
    full = SoftmaxState(torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([[1.0, 4.0]]))
    merged = merge_states(empty, full)
    assert torch.equal(merged.m, full.m) and torch.equal(merged.l, full.l) and torch.equal(merged.acc, full.acc)
    both_empty = merge_states(empty, empty)
    assert not torch.isnan(both_empty.l).any() and both_empty.l.item() == 0


def test_online_softmax_bad_input():
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        online_softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"block_size must be an int in \[1, inf\]; got 0"):
        online_softmax(torch.zeros(3), 0)
    with pytest.raises(ValueError, match="a.m and b.m must have the same shape"):
        merge_states(SoftmaxState(torch.zeros(2), torch.ones(2)), SoftmaxState(torch.zeros(3), torch.ones(3)))
    with pytest.raises(TypeError, match="both be tensors or both be None"):
        merge_states(SoftmaxState(torch.zeros(1), torch.ones(1)),
                     SoftmaxState(torch.zeros(1), torch.ones(1), torch.ones(1, 2)))


# --- the PyTorch tiling -------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, d, blocks",
                         [(1, 16, (64, 64)), (17, 32, (8, 5)), (100, 64, (32, 16)), (257, 40, (64, 64))])
def test_torch_path_matches_sdpa_fp32(t, d, blocks, causal):
    q, k, v = qkv(2, 2, t, d)
    assert_matches_sdpa(lambda *a: flash_attention_torch(*a, block_m=blocks[0], block_n=blocks[1]), q, k, v, causal)


@pytest.mark.parametrize("causal", [False, True])
def test_torch_path_fp16_and_cross_attention(causal):
    q, k, v = qkv(1, 2, 100, 64, torch.float16)
    assert_matches_sdpa(lambda *a: flash_attention_torch(*a, block_m=32, block_n=16), q, k, v, causal)
    q, k, v = qkv(1, 2, 20, 16, torch.float64, s=45)  # T != S: top-left causal alignment, as SDPA
    assert_matches_sdpa(lambda *a: flash_attention_torch(*a, block_m=8, block_n=16), q, k, v, causal)


def test_torch_path_non_contiguous_inputs():
    q, k, v = qkv(2, 3, 33, 16, layout="bthd")
    assert_matches_sdpa(lambda *a: flash_attention_torch(*a, block_m=16, block_n=8), q, k, v, True)


@pytest.mark.parametrize("causal", [False, True])
def test_torch_function_gradcheck_float64(causal):
    q, k, v = qkv(1, 2, 7, 3, torch.float64, s=6)
    assert torch.autograd.gradcheck(lambda q, k, v: FlashAttentionTorch.apply(q, k, v, causal, 0.7, 3, 2), (q, k, v))


def test_torch_path_saves_only_linear_memory():
    q, k, v = qkv(1, 1, 64, 16)
    o = flash_attention_torch(q, k, v)
    saved = o.grad_fn.saved_tensors
    assert all(t.numel() <= 64 * 16 for t in saved)  # q, k, v, O, L: nothing N x N


# --- the public function ----------------------------------------------------------------------------


def test_flash_attention_impls_and_module_agree():
    q, k, v = (x.to(triton_device()) for x in qkv(1, 2, 40, 16))  # the Triton path's device: GPU or CPU
    expected = sdpa(q, k, v, True)
    for impl in ("torch", "triton") if triton_available() else ("torch",):
        assert torch.allclose(flash_attention(q, k, v, causal=True, impl=impl), expected, atol=2e-6)
        module = FlashAttention(causal=True, impl=impl)
        assert torch.allclose(module(q, k, v), expected, atol=2e-6) and f"impl='{impl}'" in repr(module)


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_inputs_are_named(impl):
    q, k, v = qkv(1, 2, 8, 16)
    with pytest.raises(ValueError, match=r"k has D=32 \(dim 3\) but an earlier argument has D=16"):
        flash_attention(q, torch.zeros(1, 2, 8, 32), v, impl=impl)
    with pytest.raises(ValueError, match=r"v has S=5 \(dim 2\) but an earlier argument has S=8"):
        flash_attention(q, k, torch.zeros(1, 2, 5, 16), impl=impl)
    with pytest.raises(ValueError, match=r"q must have 4 dims \(B, H, T, D\); got shape \(2, 8, 16\)"):
        flash_attention(q[0], k, v, impl=impl)
    with pytest.raises(TypeError, match="q, k, v must have the same dtype; got q is torch.float32, k is torch.float64"):
        flash_attention(q, k.double(), v, impl=impl)
    with pytest.raises(ValueError, match="q, k, v must be on the same device; got q on cpu, k on meta"):
        flash_attention(q, k.to("meta"), v, impl=impl)
    with pytest.raises(TypeError, match="q must have a floating-point dtype; got torch.int64"):
        flash_attention(q.long(), k.long(), v.long(), impl=impl)
    with pytest.raises(TypeError, match="k must be Tensor; got list"):
        flash_attention(q, [1.0], v, impl=impl)
    with pytest.raises(ValueError, match=r"scale must be a number in \(0.0, inf\]; got -1"):
        flash_attention(q, k, v, scale=-1, impl=impl)
    with pytest.raises(ValueError, match=r"need at least one feature \(D >= 1\)"):
        flash_attention(q[..., :0], k[..., :0], v[..., :0], impl=impl)


def test_bad_impl_and_block_sizes():
    q, k, v = qkv(1, 1, 8, 16)
    with pytest.raises(ValueError, match="impl must be one of 'triton', 'torch'; got 'cuda'"):
        flash_attention(q, k, v, impl="cuda")
    with pytest.raises(ValueError, match=r"block_m must be an int in \[1, inf\]; got 0"):
        flash_attention_torch(q, k, v, block_m=0)
    with pytest.raises(TypeError, match="block_n must be an int; got float"):
        flash_attention_torch(q, k, v, block_n=2.0)
