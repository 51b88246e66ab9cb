"""course_lib.attention at the edges: block_state's documented contract, and special values
(±inf, nan, subnormals, huge scores, empty and size-1 rows) compared NaN-aware with torch.softmax
and SDPA.

Conventions pinned here: a softmax row whose scores are all -inf is nan, as ``torch.softmax``
(0/0); +inf or nan anywhere in a row makes the row nan, as ``torch.softmax``. The attention paths
never see an empty row (top-left causal masks leave key 0 to every query).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib.attention import (
    SoftmaxState,
    attention_ref,
    block_state,
    flash_attention,
    flash_attention_torch,
    merge_states,
    online_softmax,
)
from course_lib.runtime import triton_available

INF, NAN = float("inf"), float("nan")
SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -3.0, INF, -INF, NAN, 5e-324, 1e300, -1e300, 1.7976931348623157e308,
                           -1.7976931348623157e308])
SCORE = st.one_of(SPECIAL, st.floats(-50, 50), st.just(-INF))


# --- block_state: the contract as documented -----------------------------------------------------------


def test_block_state_contract_of_issue_13():
    """s (..., n) and v (..., n, D) give acc (..., D): row r is softmax-weighted v[r]."""
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    st_ = block_state(s, v)
    assert st_.m.shape == st_.l.shape == (2,) and st_.acc.shape == (2, 4)
    expected = torch.stack([torch.softmax(s[r], -1) @ v[r] for r in range(2)])  # (2, 4)
    torch.testing.assert_close(st_.acc / st_.l[:, None], expected, atol=1e-12, rtol=1e-12)


def test_block_state_broadcasts_one_value_block_over_the_rows_of_a_tile():
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64)  # (B, H, bm, bn)
    v = torch.randn(2, 3, 7, 4, generator=gen, dtype=torch.float64)  # (B, H, bn, D): shared by the bm rows
    st_ = block_state(s, v[:, :, None])
    assert st_.acc.shape == (2, 3, 5, 4)
    torch.testing.assert_close(st_.acc / st_.l[..., None], torch.softmax(s, -1) @ v, atol=1e-12, rtol=1e-12)
    one_d = block_state(s[0, 0, 0], v[0, 0])  # s (n,), v (n, D): acc (D,)
    assert one_d.acc.shape == (4,)


@pytest.mark.parametrize("s_shape, v_shape", [((2, 3), (2, 4, 4)), ((2, 3), (3,)), ((2, 3), (5, 3, 4)),
                                              ((4, 2, 3), (3, 3, 4))])
def test_block_state_refuses_values_that_do_not_fit(s_shape, v_shape):
    with pytest.raises(ValueError, match=r"v must .*got s"):
        block_state(torch.zeros(s_shape), torch.zeros(v_shape))


def test_block_state_empty_and_masked_blocks():
    empty = block_state(torch.zeros(3, 0), torch.zeros(3, 0, 2))
    assert torch.equal(empty.m, torch.full((3,), -INF)) and torch.equal(empty.l, torch.zeros(3))
    assert torch.equal(empty.acc, torch.zeros(3, 2))
    masked = block_state(torch.full((2, 4), -INF), torch.ones(2, 4, 2))
    assert torch.equal(masked.m, torch.full((2,), -INF)) and torch.equal(masked.l, torch.zeros(2))
    assert not masked.acc.isnan().any()


# --- online softmax: torch.softmax's semantics, special values included ---------------------------------


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(SCORE, min_size=0, max_size=9), min_size=1, max_size=3).filter(
    lambda rows: len({len(r) for r in rows}) == 1), block_size=st.integers(1, 10))
def test_online_softmax_matches_torch_softmax_with_special_values(rows, block_size):
    x = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(rows[0]))
    torch.testing.assert_close(online_softmax(x, block_size), torch.softmax(x, -1), atol=1e-12, rtol=1e-12,
                               equal_nan=True)


@pytest.mark.parametrize("row, expected", [
    ([-INF, -INF, -INF], [NAN, NAN, NAN]),  # fully masked: 0/0, as torch.softmax
    ([INF, 1.0], [NAN, NAN]),  # inf - inf
    ([NAN, 1.0], [NAN, NAN]),
    ([-INF, 2.0, -INF], [0.0, 1.0, 0.0]),
    ([1e308, 1e308], [0.5, 0.5]),  # no overflow: everything is relative to the max
    ([5e-324, 0.0], [0.5, 0.5]),
])
def test_online_softmax_edge_rows(row, expected):
    x = torch.tensor(row, dtype=torch.float64)
    for block_size in (1, 2, 3):
        got = online_softmax(x, block_size)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), equal_nan=True)
        torch.testing.assert_close(got, torch.softmax(x, -1), equal_nan=True)


def test_online_softmax_size_zero_and_one():
    assert online_softmax(torch.zeros(3, 0)).shape == (3, 0)
    assert online_softmax(torch.zeros(0, 4)).shape == (0, 4)
    assert torch.equal(online_softmax(torch.tensor([[-7.0]])), torch.tensor([[1.0]]))


@settings(max_examples=40, deadline=None)
@given(row=st.lists(SCORE, min_size=1, max_size=8), cut=st.integers(0, 8))
def test_merge_of_two_parts_is_the_state_of_the_whole(row, cut):
    s = torch.tensor(row, dtype=torch.float64)
    v = torch.arange(len(row) * 2, dtype=torch.float64).reshape(len(row), 2)
    cut = min(cut, len(row))
    whole = block_state(s, v)
    merged = merge_states(block_state(s[:cut], v[:cut]), block_state(s[cut:], v[cut:]))
    for a, b in ((merged.m, whole.m), (merged.l, whole.l), (merged.acc, whole.acc)):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, equal_nan=True)


def test_merging_two_empty_states_stays_empty_and_finite():
    empty = SoftmaxState(torch.tensor([-INF]), torch.tensor([0.0]), torch.zeros(1, 3))
    both = merge_states(empty, empty)
    assert both.m.item() == -INF and both.l.item() == 0 and torch.equal(both.acc, torch.zeros(1, 3))


# --- the tiled attention against SDPA, special values in q and k ------------------------------------------


@settings(max_examples=25, deadline=None)
@given(q_vals=st.lists(st.one_of(SPECIAL, st.floats(-3, 3)), min_size=5 * 2, max_size=5 * 2),
       k_vals=st.lists(st.one_of(SPECIAL, st.floats(-3, 3)), min_size=5 * 2, max_size=5 * 2),
       causal=st.booleans(), block=st.integers(1, 6))
def test_flash_attention_torch_special_scores_match_sdpa(q_vals, k_vals, causal, block):
    """±inf, nan, huge and subnormal entries of q and k (v finite): the same nan pattern and values
    as the spec, and (without a mask) as SDPA's math backend in float64. (SDPA's default CPU kernel differs: its running max skips
    nan, so a query whose only visible score is nan gets 0 there, nan in the math backend.)"""
    q = torch.tensor(q_vals, dtype=torch.float64).reshape(1, 1, 5, 2)
    k = torch.tensor(k_vals, dtype=torch.float64).reshape(1, 1, 5, 2)
    v = torch.arange(10, dtype=torch.float64).reshape(1, 1, 5, 2)
    ours = flash_attention_torch(q, k, v, causal, block_m=block, block_n=block)
    ref = attention_ref(q, k, v, causal)  # the spec: masked scores *replaced* by -inf
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=1e-9, equal_nan=True)
    if not causal:
        with sdpa_kernel(SDPBackend.MATH):
            torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v), ref, atol=1e-9, rtol=1e-9,
                                       equal_nan=True)


def test_a_nan_score_behind_the_causal_mask_does_not_reach_earlier_queries():
    """The course's convention, where it differs from SDPA's math backend on purpose: a masked key
    is removed (``masked_fill``; FlashAttention never even loads it), so a nan score there leaves
    the queries that cannot see it finite. SDPA's math backend *adds* a -inf bias, and
    nan + (-inf) = nan reaches every row."""
    q = torch.zeros(1, 1, 5, 2, dtype=torch.float64)
    k = q.clone()
    k[0, 0, 4, 1] = INF  # score 0 · inf = nan for key 4, which only query 4 sees
    v = torch.arange(10, dtype=torch.float64).reshape(1, 1, 5, 2)
    for ours in (attention_ref(q, k, v, True), flash_attention_torch(q, k, v, True, block_m=2, block_n=2)):
        assert torch.isfinite(ours[0, 0, :4]).all() and ours[0, 0, 4].isnan().all()
    with sdpa_kernel(SDPBackend.MATH):
        assert F.scaled_dot_product_attention(q, k, v, is_causal=True).isnan().all()


# --- empty batches and sequences: SDPA's results -----------------------------------------------------------


@pytest.mark.parametrize("b, t, s", [(0, 3, 5), (2, 0, 5), (2, 3, 0), (1, 0, 0)])
@pytest.mark.parametrize("causal", [False, True])
def test_empty_inputs_follow_sdpa(b, t, s, causal):
    """B = 0 or T = 0: empty outputs; S = 0 (no key): zeros, as SDPA — forward and backward."""
    if causal and s == 0 and t > 0:
        pytest.skip("SDPA's is_causal needs a key for each query")
    impls = {"attention_ref": attention_ref,
             "flash_attention_torch": lambda q, k, v, c: flash_attention_torch(q, k, v, c, block_m=2, block_n=2),
             "flash_attention(torch)": lambda q, k, v, c: flash_attention(q, k, v, c, impl="torch")}
    if triton_available():
        impls["flash_attention(triton)"] = lambda q, k, v, c: flash_attention(q, k, v, c, impl="triton")
    q = torch.randn(b, 2, t, 16, requires_grad=True)
    k, v = (torch.randn(b, 2, s, 16, requires_grad=True) for _ in range(2))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v), allow_unused=True)
    for name, fn in impls.items():
        out = fn(q, k, v, causal)
        assert out.shape == ref.shape, name
        torch.testing.assert_close(out, ref, msg=name)
        grads = torch.autograd.grad(out.sum(), (q, k, v), allow_unused=True)
        for g, rg in zip(grads, ref_grads):
            if g is not None and rg is not None:
                torch.testing.assert_close(g, rg, msg=name)
