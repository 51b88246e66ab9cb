"""course_lib.temperature (chapter 0) against torch.softmax; its widget moved headlessly."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.temperature import entropy, softmax, temperature_view, temperature_widget


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-6), (torch.float64, 1e-12), (torch.float16, 1e-3)])
@pytest.mark.parametrize("shape", [(1,), (17,), (3, 97), (2, 5, 257)])
def test_matches_torch(dtype, atol, shape):
    x = (20 * torch.randn(shape, generator=torch.Generator().manual_seed(0))).to(dtype)
    for t in (0.3, 1.0, 4.0):
        assert torch.allclose(softmax(x, t), torch.softmax(x / t, dim=-1), atol=atol)


def test_non_contiguous_and_extreme_inputs():
    x = torch.randn(8, 6).t()
    assert not x.is_contiguous()
    assert torch.allclose(softmax(x), torch.softmax(x, dim=-1))
    big = torch.tensor([1e4, 1e4 + 1, float("-inf")])
    assert torch.allclose(softmax(big), torch.softmax(big, dim=-1))
    assert softmax(big)[2] == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20), st.floats(0.05, 20))
def test_rows_sum_to_one(values, t):
    p = softmax(torch.tensor(values, dtype=torch.float64), t)
    assert torch.all(p >= 0) and abs(p.sum().item() - 1) < 1e-12


def test_entropy():
    assert entropy(torch.tensor([1.0, 0.0])).item() == 0
    assert entropy(torch.full((4,), 0.25, dtype=torch.float64)).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_bad_input():
    with pytest.raises(TypeError, match="logits must have a floating-point dtype; got torch.int64"):
        softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"temperature must be a number in \(0.0, inf\]; got -1"):
        softmax(torch.zeros(3), -1)
    with pytest.raises(ValueError, match="logits must have"):
        softmax(torch.tensor(1.0))
    with pytest.raises(TypeError, match="logits must be Tensor; got list"):
        softmax([1.0, 2.0])


def test_view_and_widget():
    cold, hot = temperature_view(0.2).caption, temperature_view(5.0).caption
    assert "T = 0.20" in cold and "T = 5.00" in hot and cold != hot
    w = temperature_widget()
    before_caption, before_image = w.caption.value, bytes(w.image.value)
    w.controls["temperature"].value = 0.2
    assert w.caption.value != before_caption and bytes(w.image.value) != before_image
    assert "&#x27; range&#x27;: 0.999" in w.caption.value  # T = 0.2: nearly all mass on the top token


SPECIALS = [0.0, -0.0, 1.0, float("inf"), float("-inf"), float("nan"), 5e-324, 3.4e38, 1e4]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_special_values_and_empty_dims_match_torch(data):
    """Issue 13's kind: 0, ±inf, NaN, subnormals, the largest values, size-0 and size-1 dims."""
    rows, cols = data.draw(st.sampled_from([0, 1, 2])), data.draw(st.sampled_from([0, 1, 2, 3]))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    vals = data.draw(st.lists(st.one_of(st.sampled_from(SPECIALS), st.floats(-50, 50)), min_size=rows * cols,
                              max_size=rows * cols))
    logits = torch.tensor(vals, dtype=dtype).reshape(rows, cols)
    t = data.draw(st.sampled_from([0.1, 1.0, 3.0, float("inf")]))
    ours, ref = softmax(logits, t), torch.softmax(logits / t, dim=-1)
    assert ours.shape == ref.shape and torch.allclose(ours, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    p = torch.softmax(logits, dim=-1)
    assert torch.allclose(entropy(p), torch.special.entr(p).sum(-1), equal_nan=True)


def test_documented_edges_pinned():
    """The docstring's promises: all -inf -> nan, +inf -> nan, empty last dim -> empty, 0·log 0 = 0."""
    assert torch.isnan(softmax(torch.tensor([float("-inf"), float("-inf")]))).all()
    assert torch.isnan(softmax(torch.tensor([float("inf"), 1.0]))).any()
    assert softmax(torch.zeros(2, 0)).shape == (2, 0)
    assert entropy(torch.tensor([0.0, 1.0])).item() == 0.0
    assert entropy(torch.tensor([5e-324, 1.0], dtype=torch.float64)).item() > 0  # a subnormal p is not rounded to 0


def test_state_is_pure_and_needs_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys; from course_lib.temperature import temperature_state; s = temperature_state(0.5); "
            "assert abs(sum(s.probs) - 1) < 1e-12 and s.entropy < s.max_entropy; "
            "print([m for m in ('matplotlib', 'ipywidgets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
