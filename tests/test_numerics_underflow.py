"""Activation-gradient underflow (Micikevicius et al. 2018, Figure 3): the capture and the histogram."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_lib.numerics.experiment import (
    TrainConfig,
    activation_gradients,
    make_model,
    underflow_histogram,
)


def test_fractions_on_known_magnitudes():
    g = torch.tensor([2.0**-30, -(2.0**-25), 2.0**-25 * (1 + 2.0**-20), 2.0**-20, -(2.0**-10), 60000.0, 0.0, 0.0])
    h = underflow_histogram(g, (1.0, 2.0, 2.0**-30))
    assert (h.total, h.nonzero, h.fmt) == (8, 6, "fp16")
    # Scale 1: 2^-30 and the tie 2^-25 flush; 2^-25(1 + 2^-20) rounds up to 2^-24; 2^-20 is subnormal.
    assert h.flushed[0] == 2 / 6 and h.subnormal[0] == 2 / 6 and h.overflowed[0] == 0.0
    # Scale 2: only 2^-29 flushes; 2^-24 (exactly the smallest subnormal), 2^-24(1 + 2^-20) and
    # 2^-19 are subnormal; 120000 overflows (>= 65520).
    assert h.flushed[1] == 1 / 6 and h.subnormal[1] == 3 / 6 and h.overflowed[1] == 1 / 6
    assert h.flushed[2] == 5 / 6 and h.overflowed[2] == 0.0  # 60000 · 2^-30 ≈ 2^-14.1: subnormal
    assert h.loss_scales == (1.0, 2.0, 2.0**-30) and h.amax == 60000.0 and h.max_safe_scale == 1.0


def test_histogram_bins_by_power_of_two():
    g = torch.tensor([2.0**-30, 1.5 * 2.0**-30, 2.0**-29 * (1 - 2.0**-23), 3.0, -4.0, 0.0])
    h = underflow_histogram(g)
    assert h.log2_edges.tolist() == list(range(-30, 4))  # bins [2^-30, 2^-29) ... [2^2, 2^3)
    assert h.counts[0] == 3 and h.counts[-2] == 1 and h.counts[-1] == 1  # 2^-29(1-eps) is still in bin -30
    assert int(h.counts.sum()) == h.nonzero == 5


def test_flushed_fraction_is_the_histogram_mass_below_minus_25():
    """What the notebook asserts: the flushed fraction is the mass of the bins left of 2^-25 (no ties)."""
    gen = torch.Generator().manual_seed(0)
    g = torch.exp2(torch.empty(20_000).uniform_(-40, 0, generator=gen))  # log-uniform magnitudes
    for k in (0, 3, 10):
        h = underflow_histogram(g, (2.0**k,))
        below = int(h.counts[h.log2_edges[1:] + k <= -25].sum())
        assert h.flushed[0] == below / h.nonzero


@pytest.mark.parametrize("dtype, fmt", [(torch.float16, "fp16"), (torch.bfloat16, "bf16")])
def test_fractions_agree_with_torchs_cast(dtype, fmt):
    gen = torch.Generator().manual_seed(1)
    top = 127 if fmt == "bf16" else 20  # up to FP32's range; the scale 2^8 pushes some beyond it
    g = torch.exp2(torch.empty(50_000, dtype=torch.float64).uniform_(-150, top, generator=gen)).float()
    g = g * torch.where(torch.rand(50_000, generator=gen) < 0.5, -1.0, 1.0)
    ties = torch.tensor([2.0**-25, 65520.0, 65519.0, 2.0**-25 * (1 + 2.0**-23),  # FP16's rounding ties
                         2.0**-14 - 2.0**-25, 2.0**-14 - 2.0**-25 * (1 + 2.0**-10)])  # and at its smallest normal
    g = torch.cat([g, ties])
    for scale in (1.0, 2.0**-8, 2.0**8):
        h = underflow_histogram(g, (scale,), fmt=fmt)
        cast = (g.double() * scale).to(dtype)
        nz = g != 0
        assert h.flushed[0] == (cast[nz] == 0).double().mean().item()
        assert h.overflowed[0] == cast[nz].isinf().double().mean().item()
        tiny = torch.finfo(dtype).smallest_normal
        assert h.subnormal[0] == ((cast[nz] != 0) & (cast[nz].abs() < tiny)).double().mean().item()


def test_e4m3_overflow_follows_round_to_nearest_even():
    # 464 = 448 + ulp/2 is a tie that goes to 448 (even mantissa 110): not an overflow; E5M2's max
    # 57344 has an odd mantissa, so its tie 61440 does overflow.
    h = underflow_histogram(torch.tensor([464.0, 464.0 * (1 + 2.0**-20)]), fmt="fp8_e4m3")
    assert h.overflowed == (0.5,)
    h = underflow_histogram(torch.tensor([61440.0, 61439.0]), fmt="fp8_e5m2")
    assert h.overflowed == (0.5,)


def test_max_safe_scale_is_the_largest_power_of_two():
    for amax, want in ((1.0, 2.0**15), (65504.0, 1.0), (65505.0, 0.5), (2.0**-30, 2.0**45), (3e-5, 2.0**31)):
        h = underflow_histogram(torch.tensor([amax, amax / 3]))
        assert h.max_safe_scale == want, amax
        assert h.amax * want <= 65504.0 < h.amax * want * 2


def test_nothing_nonzero_gives_nan_fractions():
    for g in (torch.zeros(0), torch.zeros(3)):
        h = underflow_histogram(g, (1.0, 8.0))
        assert all(math.isnan(f) for f in h.flushed + h.subnormal + h.overflowed)
        assert h.counts.numel() == 0 and h.nonzero == 0 and h.total == g.numel()
        assert h.amax == 0.0 and h.max_safe_scale == math.inf


def test_underflow_histogram_bad_input():
    g = torch.tensor([1e-9, 1.0])
    with pytest.raises(ValueError, match="grads must be finite"):
        underflow_histogram(torch.tensor([math.inf, 1.0]))
    with pytest.raises(ValueError, match="grads must be finite"):
        underflow_histogram(torch.tensor([math.nan]))
    with pytest.raises(ValueError, match=r"loss_scales\[1\] must be a number in \(0.0, inf\]; got 0"):
        underflow_histogram(g, (1.0, 0))
    with pytest.raises(ValueError, match="loss_scales must hold at least one scale"):
        underflow_histogram(g, ())
    with pytest.raises(ValueError, match="fmt must be one of 'fp16', 'bf16', 'fp8_e4m3', 'fp8_e5m2'; got 'fp32'"):
        underflow_histogram(g, fmt="fp32")
    with pytest.raises(TypeError, match="grads must be Tensor"):
        underflow_histogram([1e-9, 1.0])
    with pytest.raises(TypeError, match="grads must have a floating-point dtype"):
        underflow_histogram(torch.tensor([1, 2]))


def test_activation_gradients_match_retain_grad():
    model = make_model(7, 3, TrainConfig(hidden=17, depth=2, seed=3))
    x, y = torch.randn(13, 7), torch.randint(0, 3, (13,))
    got = activation_gradients(model, x, y)
    assert list(got) == ["0", "1", "2", "3", "4"]  # Linear, ReLU, Linear, ReLU, Linear
    outs, h = [], x
    for layer in model:  # the reference: keep each output's .grad
        h = layer(h)
        h.retain_grad()
        outs.append(h)
    F.cross_entropy(h, y).backward()
    for (name, g), out in zip(got.items(), outs):
        assert g.dtype == torch.float32 and torch.equal(g, out.grad.flatten()), name
    torch.testing.assert_close(got["4"], ((F.softmax(h, 1) - F.one_hot(y, 3)) / 13).detach().flatten())  # dL/dlogits


def test_activation_gradients_leave_parameter_grads_alone_and_concatenate_reuse():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act = nn.Linear(4, 4), nn.Tanh()

        def forward(self, x):
            return self.act(self.lin(self.act(x)))  # act called twice

    model = Twice()
    x = torch.randn(5, 4, requires_grad=True)  # the first tanh's output needs grad only through x
    got = activation_gradients(model, x, torch.randint(0, 4, (5,)))
    assert got["act"].shape == (40,) and got["lin"].shape == (20,)
    assert all(p.grad is None for p in model.parameters())


def test_activation_gradients_bad_input():
    with pytest.raises(TypeError, match="model must be Module"):
        activation_gradients(lambda x: x, torch.randn(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="model must have leaf modules whose outputs require grad"):
        activation_gradients(nn.Identity(), torch.randn(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        activation_gradients(nn.Linear(3, 2), torch.ones(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
