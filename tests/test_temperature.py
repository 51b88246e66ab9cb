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
