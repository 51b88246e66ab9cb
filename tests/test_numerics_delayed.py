"""Delayed (amax-history) FP8 scaling against Transformer Engine's rule, by hand and at the edges."""

import math

import pytest
import torch

from course_lib.numerics import DelayedScaler, DelayedScaling, delayed_scale_update, fp8_dequantize, round_to
from course_lib.numerics.experiment import fp8_scaling_trace

FP32_MAX = torch.finfo(torch.float32).max


def te_reference(amax_history, scale, fp8_max, margin, algo):
    """Transformer Engine's Python fallback, transcribed (``transformer_engine/pytorch/quantization.py``:
    ``_default_get_amax_and_update_history``, ``_update_amax_history``, ``_default_sf_compute``).

    One change, to the default CUDA kernel's arithmetic (``delayed_scaling.cu``): TE's Python writes
    ``(fp8_max / amax) / 2**margin`` with a Python float on the left, which torch computes as
    ``amax.reciprocal() * fp8_max`` (``Tensor.__rtruediv__``: two roundings) and which overflows to
    inf (then FP32's max) before the margin is applied; the kernel divides once,
    ``(fp8_max · 2^-margin) / amax``, and so does this transcription.
    """
    history = amax_history.clone()
    amax = torch.max(history, dim=0).values if algo == "max" else history[0].clone()
    if history.shape[0] > 1:
        history = torch.roll(history, -1, 0)
    history[0].fill_(0.0)
    sf = torch.tensor(fp8_max * 2.0**-margin) / amax
    sf = torch.where(amax > 0.0, sf, scale)
    sf = torch.where(torch.isfinite(amax), sf, scale)
    sf = torch.where(torch.isinf(sf), torch.full_like(sf, FP32_MAX), sf)
    return history, sf


def run(amaxes, **recipe):
    """Quantize tensors whose amax follows ``amaxes``; return the scale each step used, and the scaler."""
    scaler = DelayedScaler(DelayedScaling(**recipe))
    used = []
    for a in amaxes:
        _, s = scaler.quantize(torch.tensor([a, -a / 2]))
        scaler.update()
        used.append(s.item())
    return used, scaler


def test_hand_computed_sequence():
    amaxes = [1.0, 2.0, 8.0, 1.0, 1.0, 1.0]
    # "max" over 3 steps: step t uses max(amax[t-3 .. t-1]); step 0 uses TE's initial scale 1.
    used, scaler = run(amaxes, amax_history_len=3)
    assert used == [1.0, 448.0, 224.0, 56.0, 56.0, 56.0] and scaler.scale.item() == 448.0
    assert scaler.amax_history.tolist() == [0.0, 1.0, 1.0]  # slot 0 free for the next step
    used, _ = run(amaxes, amax_history_len=3, amax_compute_algo="most_recent")
    assert used == [1.0, 448.0, 224.0, 56.0, 448.0, 448.0]
    used, _ = run(amaxes, amax_history_len=3, margin=2)  # a quarter of the scale: 4x headroom
    assert used == [1.0, 112.0, 56.0, 14.0, 14.0, 14.0]
    used, _ = run(amaxes, amax_history_len=2, fmt="fp8_e5m2")
    assert used == [1.0, 57344.0, 28672.0, 7168.0, 7168.0, 57344.0]


def test_history_rolls_as_transformer_engine():
    used, scaler = run([1.0, 2.0, 3.0, 4.0], amax_history_len=3)
    # After each update: [0, older, ..., the step just done]; the oldest falls out of slot 1.
    assert scaler.amax_history.tolist() == [0.0, 3.0, 4.0]
    h, s = delayed_scale_update(torch.tensor([5.0, 1.0, 2.0, 3.0]), torch.tensor(1.0), 448.0)
    assert h.tolist() == [0.0, 2.0, 3.0, 5.0] and torch.equal(s, torch.tensor(448.0) / 5.0)  # float32


@pytest.mark.parametrize("algo", ["max", "most_recent"])
@pytest.mark.parametrize("length", [1, 2, 7, 1024])
def test_update_matches_transformer_engine_python(algo, length):
    gen = torch.Generator().manual_seed(length)
    for trial in range(20):
        history = torch.exp2(torch.empty(length).uniform_(-140, 20, generator=gen))
        history[torch.rand(length, generator=gen) < 0.3] = 0.0
        if trial % 4 == 1:
            history[0] = 0.0
        if trial % 4 == 2:
            history[torch.randint(0, length, (1,), generator=gen)] = math.inf
        if trial % 4 == 3:
            history[:] = 0.0
        scale = torch.tensor(float(trial + 1))
        for margin in (0, 3):
            ours = delayed_scale_update(history, scale, 448.0, margin, algo)
            ref = te_reference(history, scale, 448.0, margin, algo)
            assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1]), (trial, margin)


def test_all_zero_tensor_keeps_the_scale():
    # amax 0 must not give an infinite scale: TE keeps the previous one (1.0 at the start).
    used, scaler = run([0.0, 0.0, 4.0, 0.0, 0.0], amax_history_len=1)
    assert used == [1.0, 1.0, 1.0, 112.0, 112.0] and scaler.scale.item() == 112.0
    q, s = DelayedScaler().quantize(torch.zeros(3, 0))
    assert q.shape == (3, 0) and s.item() == 1.0


def test_tiny_amax_gives_fp32_max_not_inf():
    _, s = delayed_scale_update(torch.tensor([1e-45]), torch.tensor(1.0), 448.0)
    assert s.item() == FP32_MAX


def test_inf_and_nan_inputs():
    scaler = DelayedScaler(DelayedScaling(amax_history_len=2))
    scaler.quantize(torch.tensor([2.0]))
    scaler.update()  # scale 224
    q, s = scaler.quantize(torch.tensor([math.inf, -math.inf, math.nan, 1.0]))
    back = fp8_dequantize(q, s)
    assert back[0] == 448 / 224 and back[1] == -448 / 224 and back[2].isnan() and back[3] == 1.0  # inf clipped
    assert scaler.amax_history[0].isnan()  # amax of a tensor with NaN: torch's amax propagates it
    scaler.update()
    assert scaler.scale.item() == 224.0  # "max" skips NaN entries (CUDA's fmaxf): max(2) keeps 224
    scaler.quantize(torch.tensor([math.inf]))
    scaler.update()
    assert scaler.scale.item() == 224.0  # an inf amax: the previous scale is kept ...
    for _ in range(2):
        scaler.quantize(torch.tensor([4.0]))
        scaler.update()
    assert scaler.scale.item() == 112.0  # ... until the inf leaves the 2-step window
    # most_recent: a NaN amax keeps the previous scale.
    h, s = delayed_scale_update(torch.tensor([math.nan, 1.0]), torch.tensor(7.0), 448.0, 0, "most_recent")
    assert s.item() == 7.0 and h[0] == 0.0 and h[1].isnan()


def test_nan_in_history_is_skipped_by_max_as_in_the_cuda_kernel():
    # TE's CUDA kernel reduces with fmaxf, which skips NaN; its Python fallback's torch.max would not.
    _, s = delayed_scale_update(torch.tensor([math.nan, 2.0, 0.5]), torch.tensor(1.0), 448.0)
    assert s.item() == 224.0
    _, s = delayed_scale_update(torch.tensor([math.nan, math.nan]), torch.tensor(3.0), 448.0)
    assert s.item() == 3.0  # nothing but NaN: amax 0, the scale is kept


def test_quantize_clamps_before_the_cast():
    """Values beyond ±fmt_max are clamped, so torch 2.11 (NaN) and 2.14 (saturate) casts agree."""
    scaler = DelayedScaler(DelayedScaling(amax_history_len=1))
    scaler.quantize(torch.tensor([1.0]))
    scaler.update()  # scale 448: the next tensor's 4.0 lands at 1792
    x = torch.tensor([4.0, -4.0, 1.0, 1.03, 0.5])
    q, s = scaler.quantize(x)
    assert q.dtype == torch.float8_e4m3fn and s.item() == 448.0
    values = q.float().tolist()
    # torch 2.11's convention (overflow="nan") applied to the clamped products gives the same values.
    assert values == [round_to(max(-448.0, min(448.0, v * 448.0)), "fp8_e4m3", overflow="nan") for v in x.tolist()]
    assert values[:2] == [448.0, -448.0] and not any(math.isnan(v) for v in values)


def test_scale_is_moved_to_the_tensors_device_and_is_float32():
    scaler = DelayedScaler()
    q, s = scaler.quantize(torch.randn(5, 3, dtype=torch.bfloat16))
    assert s.dtype == torch.float32 and s.device == q.device and scaler.amax_history.shape == (1024,)


def test_trace_counts_clipping_at_a_spike():
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(257, generator=gen) * (8.0 if t == 5 else 1.0) for t in range(9)]
    trace = fp8_scaling_trace(tensors, DelayedScaling(amax_history_len=4, margin=1))
    s5 = trace.scale[5]
    amaxes = torch.stack([t.abs().max() for t in tensors])  # (9,) float32
    assert s5 == (torch.tensor(224.0) / amaxes[1:5].max()).item()  # margin 1: 448 / 2
    assert trace.clipped[5] == int(((tensors[5].double() * s5).abs() > 464).sum()) > 0
    assert trace.jit_clipped == [0] * 9 and all(c == 0 for t, c in enumerate(trace.clipped) if t != 5)
    assert trace.ideal_scale == (torch.tensor(448.0) / amaxes).tolist()
    assert trace.scale[6:9] == [(torch.tensor(224.0) / amaxes[5]).item()] * 3  # the spike stays in the window
    assert trace.error[5] > 10 * trace.jit_error[5]


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"margin must be an int in \[0, inf\]; got -1"):
        DelayedScaling(margin=-1)
    with pytest.raises(TypeError, match="margin must be an int; got float"):
        DelayedScaling(margin=0.5)
    with pytest.raises(ValueError, match=r"amax_history_len must be an int in \[1, inf\]; got 0"):
        DelayedScaling(amax_history_len=0)
    with pytest.raises(ValueError, match="amax_compute_algo must be one of 'max', 'most_recent'; got 'mean'"):
        DelayedScaling(amax_compute_algo="mean")
    with pytest.raises(ValueError, match="fmt must be one of 'fp8_e4m3', 'fp8_e5m2'; got 'fp16'"):
        DelayedScaling(fmt="fp16")
    with pytest.raises(TypeError, match="recipe must be DelayedScaling"):
        DelayedScaler({"margin": 1})
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        DelayedScaler().quantize(torch.tensor([1, 2]))
    one = torch.tensor(1.0)
    with pytest.raises(ValueError, match="amax_history must have 1 dims"):
        delayed_scale_update(torch.zeros(2, 3), one, 448.0)
    with pytest.raises(ValueError, match="amax_history must hold at least one step"):
        delayed_scale_update(torch.zeros(0), one, 448.0)
    with pytest.raises(ValueError, match="scale must have 0 dims"):
        delayed_scale_update(torch.zeros(2), torch.ones(1), 448.0)
    with pytest.raises(ValueError, match=r"fmt_max must be a number in \(0.0, inf\]; got 0"):
        delayed_scale_update(torch.zeros(2), one, 0)
    with pytest.raises(ValueError, match=r"margin must be an int in \[0, inf\]; got -2"):
        delayed_scale_update(torch.zeros(2), one, 448.0, margin=-2)
    with pytest.raises(ValueError, match="amax_compute_algo must be one of"):
        delayed_scale_update(torch.zeros(2), one, 448.0, amax_compute_algo="min")
    with pytest.raises(ValueError, match="tensors must hold at least one step"):
        fp8_scaling_trace([])
    with pytest.raises(TypeError, match=r"tensors\[1\] must have a floating-point dtype"):
        fp8_scaling_trace([torch.ones(2), torch.ones(2, dtype=torch.long)])
    with pytest.raises(ValueError, match="x must be finite"):
        fp8_scaling_trace([torch.tensor([math.inf])])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(2)
    xs = [torch.randn(97, 3, generator=gen) * (10.0 if t == 3 else 1.0) for t in range(6)]
    results = {}
    for device in ("cpu", "cuda"):
        scaler = DelayedScaler(DelayedScaling(amax_history_len=2))
        out = []
        for x in xs:
            q, s = scaler.quantize(x.to(device))
            scaler.update()
            out.append((fp8_dequantize(q, s).cpu(), s.item()))
        assert scaler.scale.device.type == device and scaler.amax_history.device.type == device
        results[device] = out
    for (a, sa), (b, sb) in zip(results["cpu"], results["cuda"]):
        assert torch.equal(a, b) and sa == sb
