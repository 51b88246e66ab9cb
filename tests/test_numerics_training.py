"""DynamicLossScaler against torch.amp.GradScaler; master weights; autocast; the experiment."""

import math

import pytest
import torch
from torch import nn

from course_lib import runtime
from course_lib.numerics import DynamicLossScaler, MasterWeights, autocast, autocast_dtype, update_scale
from course_lib.numerics.experiment import TrainConfig, flushed_fraction, gradients, make_model, train

# A scripted run: "ok" = finite gradients, "inf"/"nan" = one gradient entry overflowed.
SCRIPT = ["ok", "ok", "ok", "inf", "ok", "ok", "ok", "ok", "nan", "nan", "ok", "ok", "ok", "ok", "ok", "ok",
          "inf", "ok", "ok", "ok", "ok", "ok", "ok", "ok"]


def run_script(scaler, script, true_grad):
    """Feed ``scaler`` (ours or GradScaler) scaled gradients per the script; return scales and skips."""
    param = nn.Parameter(torch.ones(5))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scales, skipped = [], []
    for kind in script:
        before = param.detach().clone()
        scaler.scale((param.detach() * true_grad).sum())  # GradScaler sets its scale up on first use
        grad = true_grad * float(scaler.get_scale())  # what backward of scaler.scale(loss) gives
        if kind != "ok":
            grad[2] = math.inf if kind == "inf" else math.nan
        param.grad = grad.float()
        scaler.step(optimizer)
        scaler.update()
        scales.append(float(scaler.get_scale()))
        skipped.append(bool(torch.equal(param.detach(), before)))
    return scales, skipped, param.detach()


@pytest.mark.parametrize("kwargs", [
    dict(init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3),
    dict(init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=1),
    dict(init_scale=1000.0, growth_factor=3.0, backoff_factor=0.3, growth_interval=2),  # float32 rounding matters
    dict(init_scale=2.0**126, growth_factor=2.0, backoff_factor=0.5, growth_interval=1),  # growth would overflow
])
def test_scaler_matches_grad_scaler(kwargs):
    true_grad = torch.tensor([0.5, -1.25, 3.0, 1e-3, 7.0]) * 2.0**-10  # finite even at scale 2^127
    ours = run_script(DynamicLossScaler(**kwargs), SCRIPT, true_grad)
    ref = run_script(torch.amp.GradScaler("cpu", **kwargs), SCRIPT, true_grad)
    assert ours[0] == ref[0], "scale histories differ"
    assert ours[1] == ref[1], "skipped steps differ"
    assert ours[1] == [k != "ok" for k in SCRIPT]
    assert torch.equal(ours[2], ref[2])


def test_scaler_records_history_and_scales_in_float32():
    scaler = DynamicLossScaler(init_scale=8.0, growth_interval=2)
    loss = torch.tensor(60000.0, dtype=torch.float16)
    assert scaler.scale(loss).dtype == torch.float32 and scaler.scale(loss).item() == 480000.0  # no FP16 overflow
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    for g in ([8.0, 8.0], [math.inf, 0.0], [8.0, 8.0], [8.0, 8.0]):
        p.grad = torch.tensor(g)
        assert scaler.step(opt) == math.isfinite(g[0])
        scaler.update()
    assert scaler.scales == [8.0, 8.0, 4.0, 4.0] and scaler.skipped == [False, True, False, False]
    assert scaler.get_scale() == 8.0 and scaler.get_growth_tracker() == 0


def test_update_scale_rule():
    assert update_scale(65536.0, 7, True) == (32768.0, 0)
    assert update_scale(65536.0, 0, False, growth_interval=2) == (65536.0, 1)
    assert update_scale(65536.0, 1, False, growth_interval=2) == (131072.0, 0)
    assert update_scale(2.0**127, 0, False, growth_interval=1) == (2.0**127, 0)  # 2^128 is inf in float32


def test_scaler_misuse_and_bad_arguments():
    scaler = DynamicLossScaler()
    with pytest.raises(RuntimeError, match="update\\(\\) needs a step first"):
        scaler.update()
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    opt = torch.optim.SGD([p], lr=1.0)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="has already been called on this optimizer"):
        scaler.unscale_(opt)
    with pytest.raises(ValueError, match="growth_factor must be a number in \\(1.0, inf\\]"):
        DynamicLossScaler(growth_factor=0.5)
    with pytest.raises(ValueError, match="backoff_factor must be a number in \\(0.0, 1.0\\]"):
        DynamicLossScaler(backoff_factor=2.0)
    with pytest.raises(TypeError, match="growth_interval must be an int"):
        DynamicLossScaler(growth_interval=2.5)
    with pytest.raises(TypeError, match="outputs must have a floating-point dtype"):
        scaler.scale(torch.tensor(3))


def test_master_weights_keep_updates_fp16_would_lose():
    model = nn.Linear(4, 1, bias=False).half()
    with torch.no_grad():
        model.weight.fill_(1.0)
    master = MasterWeights(model)
    assert all(p.dtype == torch.float32 for p in master.params)
    opt = torch.optim.SGD(master.params, lr=1e-4)
    for _ in range(100):  # each update is 1e-4: below half an FP16 ulp at 1.0 (2^-11 ≈ 4.9e-4)
        master.zero_grad()
        model(torch.ones(1, 4, dtype=torch.float16)).sum().backward()
        master.grads_to_master()
        assert master.params[0].grad.dtype == torch.float32
        opt.step()
        master.master_to_model()
    assert master.params[0][0, 0].item() == pytest.approx(0.99, abs=1e-5)
    assert model.weight[0, 0].item() == torch.tensor(0.99).half().item()  # one rounding of the master
    # The same updates applied to the FP16 weight directly are all rounded away.
    w16 = torch.ones(1, dtype=torch.float16)
    for _ in range(100):
        w16 -= torch.tensor(1e-4, dtype=torch.float16)
    assert w16.item() == 1.0


def test_master_weights_refuse_fp32_models():
    with pytest.raises(TypeError, match="parameter 0 has dtype torch.float32"):
        MasterWeights(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="model must be Module"):
        MasterWeights([torch.zeros(1)])


def test_autocast_picks_bf16_on_cpu_and_fp16_on_cuda():
    assert autocast_dtype("cpu") == torch.bfloat16 and autocast_dtype("cuda") == torch.float16
    assert autocast_dtype() == autocast_dtype(runtime.device())
    with autocast("cpu"):
        out = nn.Linear(3, 2)(torch.randn(4, 3))
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="device type must be one of 'cpu', 'cuda'; got 'meta'"):
        autocast_dtype("meta")


def test_flushed_fraction():
    g = torch.tensor([1e-9, 1e-3, -2e-8, 0.0, 1.0])
    assert flushed_fraction(g) == 0.5  # 1e-9 and 2e-8 are below half of 2^-24; the zero is not counted
    assert flushed_fraction(g, 2.0**16) == 0.0
    assert flushed_fraction(g, dtype=torch.bfloat16) == 0.0  # BF16 has FP32's range
    # Nothing non-zero to lose: 0 of 0 is NaN (torch's mean of an empty tensor), not 0.
    assert math.isnan(flushed_fraction(torch.zeros(0))) and math.isnan(flushed_fraction(torch.zeros(3)))
    assert torch.tensor([]).mean().isnan()
    assert flushed_fraction(torch.tensor([math.inf, 1e-9])) == 0.5  # inf stays inf, not flushed
    with pytest.raises(ValueError, match="loss_scale must be a number in \\(0.0, inf\\]"):
        flushed_fraction(g, 0.0)
    with pytest.raises(TypeError, match="grads must have a floating-point dtype; got torch.int64"):
        flushed_fraction(torch.tensor([1, 0, 3]))
    with pytest.raises(TypeError, match="grads must be"):
        flushed_fraction([1e-9, 1.0])


def test_gradients_are_flat_fp32():
    model = make_model(5, 3, TrainConfig(hidden=7, depth=2))
    g = gradients(model, torch.randn(11, 5), torch.randint(0, 3, (11,)))
    assert g.shape == (sum(p.numel() for p in model.parameters()),) and g.dtype == torch.float32


@pytest.fixture(scope="module")
def blobs():
    gen = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 8, generator=gen)
    y = torch.randint(0, 4, (300,), generator=gen)
    x = centres[y] + torch.randn(300, 8, generator=gen)  # (300, 8)
    return x[:240], y[:240], x[240:], y[240:]


@pytest.mark.parametrize("mode", ["fp32", "fp16", "fp16_master", "autocast"])
def test_train_every_mode_learns(blobs, mode):
    config = TrainConfig(hidden=16, depth=2, steps=60, batch_size=32, lr=0.05, growth_interval=10)
    result = train(mode, *blobs, config)
    assert len(result.losses) == 60 and result.losses[-1] < result.losses[0]
    assert result.accuracy > 0.9
    scaled = mode == "fp16_master" or (mode == "autocast" and runtime.device().type == "cuda")
    assert bool(result.scales) == scaled and len(result.skipped) == (60 if scaled else 0)
    if mode == "fp16_master":
        assert result.skipped[0] and result.scales[1] == result.scales[0] / 2  # 2^16 overflows first


def test_train_bad_arguments(blobs):
    with pytest.raises(ValueError, match="mode must be one of 'fp32', 'fp16', 'fp16_master', 'autocast'; got 'fp8'"):
        train("fp8", *blobs)
    x, y, xe, ye = blobs
    with pytest.raises(ValueError, match="y has N=239"):
        train("fp32", x, y[:-1], xe, ye)
    with pytest.raises(TypeError, match=r"y must have dtype in \(torch.int64, torch.uint8\); got torch.float32"):
        train("fp32", x, y.float(), xe, ye)  # was cross_entropy's error from deep inside torch
    with pytest.raises(TypeError, match="x_eval must have a floating-point dtype; got torch.int64"):
        train("fp32", x, y, xe.long(), ye)
    with pytest.raises(ValueError, match=r"y_eval must hold class labels in \[0, 3\].*to 7"):
        train("fp32", x, y, xe, ye + 4)  # was an index error in the evaluation, after training
    with pytest.raises(ValueError, match="at least one example; got N=0"):
        train("fp32", x[:0], y[:0], xe, ye)
    with pytest.raises(ValueError, match=r"config.batch_size must be an int in \[1, inf\]; got 0"):
        train("fp32", x, y, xe, ye, TrainConfig(batch_size=0))  # was a NaN loss
    with pytest.raises(ValueError, match=r"config.lr must be a number in \(0.0, inf\]"):
        train("fp32", x, y, xe, ye, TrainConfig(lr=-0.1))
    with pytest.raises(TypeError, match="config must be TrainConfig; got dict"):
        train("fp32", x, y, xe, ye, {"steps": 3})


# --- FP8 scaling -----------------------------------------------------------------------------------

def test_fp8_block_scaling_is_per_tensor_scaling_of_each_block():
    from course_lib.numerics import fp8_dequantize, fp8_quantize

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 96, generator=g) * torch.logspace(-3, 3, 96)  # (3, 96), magnitudes across 6 decades
    q, scale = fp8_quantize(x, block=32)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (3, 3, 1)
    for row in range(3):
        for b in range(3):
            piece = x[row, 32 * b:32 * (b + 1)]
            q1, s1 = fp8_quantize(piece)  # per-tensor on the block alone
            assert torch.equal(q[row, 32 * b:32 * (b + 1)].float(), q1.float()) and s1 == scale[row, b, 0]
            assert q1.float().abs().max() == 448.0  # the block's amax maps to E4M3's max
    back = fp8_dequantize(q, scale)
    normal = (x * scale.repeat_interleave(32, 1).reshape(3, 96)).abs() >= 2.0**-6  # scaled into normal range
    assert ((back - x).abs() <= x.abs() * 2.0**-4)[normal].all()  # within half a gap: 3 mantissa bits


def test_fp8_block_scaling_confines_outliers():
    from course_lib.numerics import fp8_dequantize, fp8_quantize

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1024, generator=g)
    outlier = torch.zeros_like(x, dtype=torch.bool)
    outlier[::8, 5] = True
    x[outlier] = 1e4

    def error(block):
        q, s = fp8_quantize(x, block=block)
        return ((fp8_dequantize(q, s) - x).abs() / x.abs())[~outlier].mean().item()

    assert error(128) < error(None) / 2  # per-tensor: one outlier pushes the rest toward the subnormals


def test_fp8_quantize_edges_and_bad_input():
    from course_lib.numerics import fp8_dequantize, fp8_quantize

    q, s = fp8_quantize(torch.zeros(2, 4), block=2)
    assert torch.equal(fp8_dequantize(q, s), torch.zeros(2, 4)) and torch.equal(s, torch.ones(2, 2, 1))
    q, s = fp8_quantize(torch.zeros(0, 4), block=2)
    assert fp8_dequantize(q, s).shape == (0, 4)
    q, s = fp8_quantize(torch.tensor([-1e6, 3.0]), fmt="fp8_e5m2")
    assert fp8_dequantize(q, s)[0].item() == -1e6
    with pytest.raises(ValueError, match="block must divide the last dimension; got block=3 for x.shape\\[-1\\]=4"):
        fp8_quantize(torch.ones(2, 4), block=3)
    with pytest.raises(ValueError, match="x must be finite"):
        fp8_quantize(torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match="fmt must be one of 'fp8_e4m3', 'fp8_e5m2'; got 'fp16'"):
        fp8_quantize(torch.ones(2), fmt="fp16")
    with pytest.raises(ValueError, match="x must have at least one dimension"):
        fp8_quantize(torch.tensor(1.0))
