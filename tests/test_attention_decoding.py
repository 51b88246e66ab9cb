"""course_lib.attention.decoding: bottom-right causal masks and split-K decoding against SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    attention_ref,
    bottom_right_causal_mask,
    decode_attention,
    merge_states,
    split_kv_states,
)


def _qkv(t, s, d=8, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 3, t, d, generator=gen, dtype=dtype), torch.randn(2, 3, s, d, generator=gen, dtype=dtype),
            torch.randn(2, 3, s, d, generator=gen, dtype=dtype))


def test_bottom_right_mask_against_a_loop_and_top_left():
    t, s = 3, 7
    mask = bottom_right_causal_mask(t, s)
    assert mask.tolist() == [[j <= i + s - t for j in range(s)] for i in range(t)]
    assert torch.equal(bottom_right_causal_mask(5, 5), torch.ones(5, 5).tril().bool())  # T == S: the two agree
    assert bottom_right_causal_mask(1, 4).all()  # one new token sees the whole cache
    with pytest.raises(ValueError, match=r"t \(new queries\) must be <= s .* got t=4, s=3"):
        bottom_right_causal_mask(4, 3)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 6), extra=st.integers(0, 40), n_splits=st.integers(1, 12), causal=st.booleans())
def test_split_k_equals_sdpa_for_any_split(t, extra, n_splits, causal):
    s = t + extra
    q, k, v = _qkv(t, s, seed=t * 100 + extra)
    mask = bottom_right_causal_mask(t, s) if causal else None
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = decode_attention(q, k, v, n_splits=min(n_splits, s), causal=causal)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)


def test_one_query_top_left_sees_only_key_zero_bottom_right_sees_all():
    q, k, v = _qkv(1, 50)
    top_left = attention_ref(q, k, v, causal=True)  # SDPA's is_causal: query 0 sees key 0 only
    torch.testing.assert_close(top_left, v[:, :, :1])
    torch.testing.assert_close(decode_attention(q, k, v, n_splits=7), attention_ref(q, k, v, causal=False))


def test_states_merge_in_any_order_and_chunks_can_be_empty_for_a_row():
    q, k, v = _qkv(4, 9)
    states = split_kv_states(q, k, v, n_splits=9)  # one key per chunk: query 0 cannot see the last 3
    assert len(states) == 9 and torch.isinf(states[-1].m[..., 0]).all()
    forward, backward = states[0], states[-1]
    for st_ in states[1:]:
        forward = merge_states(forward, st_)
    for st_ in reversed(states[:-1]):
        backward = merge_states(backward, st_)
    torch.testing.assert_close(forward.acc / forward.l[..., None], backward.acc / backward.l[..., None])


def test_low_precision_and_bad_arguments():
    q, k, v = (x.half() for x in _qkv(2, 30))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bottom_right_causal_mask(2, 30))
    out = decode_attention(q, k, v, n_splits=4)
    assert out.dtype == torch.float16 and (out.float() - ref).abs().max() < 2e-3
    q, k, v = _qkv(2, 5)
    with pytest.raises(ValueError, match=r"n_splits must be an int in \[1, 5\]; got 6"):
        decode_attention(q, k, v, n_splits=6)
    with pytest.raises(ValueError, match=r"t \(new queries\) must be <= s"):
        decode_attention(*_qkv(6, 5))
