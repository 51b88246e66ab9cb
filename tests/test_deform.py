"""course_lib.deform: bilinear sampling and deform_conv2d against torchvision.ops (forward and all
five gradients), against F.conv2d and a per-element loop, the layer, the offsets and the experiment."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.deform import (
    DeformConv2d,
    bilinear_neighbours,
    bilinear_sample,
    deform_conv2d,
    offset_field,
    output_size,
    random_offsets,
    rotation_offsets,
    sampling_positions,
    scale_offsets,
)
from course_lib.deform.experiment import dilation_task, learn_scale, plain_conv_best_fit, scale_sweep

TOL = {torch.float64: {"atol": 1e-12, "rtol": 1e-10}, torch.float32: {"atol": 1e-4, "rtol": 1e-4}}


# --- a slow per-element loop, transcribed from the paper (eq. 2-4) -----------------------------------


def _pixel(img, r, c):
    h, w = img.shape
    return img[r, c] if 0 <= r < h and 0 <= c < w else 0.0


def _loop_deform_conv(input, offset, weight, bias, stride, padding, dilation, mask):
    inp = input
    b, c_in, h, w = inp.shape
    c_out, c_in_g, kh, kw = weight.shape
    groups, k = c_in // c_in_g, kh * kw
    _, n_off, h_out, w_out = offset.shape
    og = n_off // (2 * k)
    out = torch.zeros(b, c_out, h_out, w_out, dtype=inp.dtype)
    for n in range(b):
        for o in range(c_out):
            g = o // (c_out // groups)
            for y in range(h_out):
                for x in range(w_out):
                    acc = 0.0 if bias is None else bias[o].item()
                    for cg in range(c_in_g):
                        c = g * c_in_g + cg
                        gg = c // (c_in // og)
                        for i in range(kh):
                            for j in range(kw):
                                kk = gg * k + i * kw + j
                                py = y * stride - padding + i * dilation + offset[n, 2 * kk, y, x].item()
                                px = x * stride - padding + j * dilation + offset[n, 2 * kk + 1, y, x].item()
                                y0, x0 = math.floor(py), math.floor(px)
                                ly, lx = py - y0, px - x0
                                v = ((1 - ly) * (1 - lx) * _pixel(inp[n, c], y0, x0)
                                     + (1 - ly) * lx * _pixel(inp[n, c], y0, x0 + 1)
                                     + ly * (1 - lx) * _pixel(inp[n, c], y0 + 1, x0)
                                     + ly * lx * _pixel(inp[n, c], y0 + 1, x0 + 1))
                                m = 1.0 if mask is None else mask[n, kk, y, x].item()
                                acc += weight[o, cg, i, j].item() * m * float(v)
                    out[n, o, y, x] = acc
    return out


# --- awkward cases: (B, C_in, H, W, C_out, kh, kw, stride, padding, dilation, groups, offset_groups, mask)

CASES = [
    (1, 2, 7, 9, 3, 3, 3, 1, 1, 1, 1, 1, True),
    (3, 4, 7, 9, 4, 3, 2, 2, 1, 2, 2, 2, False),
    (2, 3, 1, 1, 2, 1, 1, 1, 0, 1, 1, 1, True),
    (1, 3, 1, 1, 5, 3, 3, 1, 1, 1, 1, 3, False),  # 1×1 image, 3×3 kernel: all but the centre tap pad
    (2, 6, 7, 9, 4, 3, 3, 2, 2, 2, 2, 3, True),
    (3, 4, 5, 6, 6, 2, 3, 1, 0, 1, 2, 4, True),
    (1, 5, 17, 4, 5, 3, 1, 2, 1, 1, 5, 1, True),  # depthwise
]


def _make(case, dtype, offset_std=2.0, seed=0):
    b, c, h, w, co, kh, kw, s, p, d, g, og, m = case
    gen = torch.Generator().manual_seed(seed)
    h_out, w_out = output_size(h, kh, s, p, d), output_size(w, kw, s, p, d)
    inp = torch.randn(b, c, h, w, generator=gen, dtype=dtype)
    offset = offset_std * torch.randn(b, 2 * og * kh * kw, h_out, w_out, generator=gen, dtype=dtype)
    weight = torch.randn(co, c // g, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(co, generator=gen, dtype=dtype)
    mask = torch.rand(b, og * kh * kw, h_out, w_out, generator=gen, dtype=dtype) if m else None
    return {"input": inp, "offset": offset, "weight": weight, "bias": bias, "mask": mask,
            "stride": s, "padding": p, "dilation": d}


def _five_gradients(fn, args, grad_out):
    leaves = {k: v.detach().clone().requires_grad_() for k, v in args.items()
              if isinstance(v, torch.Tensor)}
    out = fn(**{**args, **leaves})
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
    return out.detach(), dict(zip(leaves, grads))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-k{c[5]}{c[6]}")
def test_forward_and_all_gradients_match_torchvision(case, dtype):
    args = _make(case, dtype)
    ref = tvo.deform_conv2d(**args)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    ours, g_ours = _five_gradients(deform_conv2d, args, grad_out)
    theirs, g_theirs = _five_gradients(tvo.deform_conv2d, args, grad_out)
    torch.testing.assert_close(ours, theirs, **TOL[dtype])
    assert set(g_ours) == {"input", "offset", "weight", "bias"} | ({"mask"} if case[-1] else set())
    for name in g_ours:
        torch.testing.assert_close(g_ours[name], g_theirs[name], **TOL[dtype], msg=f"grad of {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_offsets_far_outside_the_image_give_zero_and_match_torchvision(dtype):
    args = _make(CASES[1], dtype, offset_std=10.0)  # most points land in the padding or beyond
    args["offset"][0, :, 0, 0] = 1e4  # one output position reads nothing at all
    ref = tvo.deform_conv2d(**args)
    grad_out = torch.ones_like(ref)
    ours, g_ours = _five_gradients(deform_conv2d, args, grad_out)
    _, g_theirs = _five_gradients(tvo.deform_conv2d, args, grad_out)
    torch.testing.assert_close(ours, ref, **TOL[dtype])
    torch.testing.assert_close(ours[0, :, 0, 0], args["bias"], **TOL[dtype])  # only the bias is left
    for name in g_ours:
        torch.testing.assert_close(g_ours[name], g_theirs[name], **TOL[dtype], msg=f"grad of {name}")
    assert g_ours["offset"][0, :, 0, 0].abs().max() == 0


def test_matches_a_per_element_loop_from_the_paper():
    for case in (CASES[1], CASES[3], CASES[5]):
        args = _make(case, torch.float64, offset_std=1.5)
        torch.testing.assert_close(deform_conv2d(**args), _loop_deform_conv(**args), atol=1e-12, rtol=1e-10)


def test_non_contiguous_inputs():
    args = _make(CASES[0], torch.float64)
    nc = {"input": args["input"].transpose(2, 3).contiguous().transpose(2, 3),  # channels-last-like strides
          "offset": torch.cat([args["offset"], args["offset"]], 1)[:, ::2],  # every other channel
          "weight": args["weight"].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
          "bias": torch.stack([args["bias"], args["bias"]], 1)[:, 0],
          "mask": args["mask"].transpose(2, 3).contiguous().transpose(2, 3)}
    assert not any(t.is_contiguous() for t in nc.values())
    nc["offset"] = torch.cat([args["offset"][:, :, None], args["offset"][:, :, None]], 2)[:, :, 0]
    assert not nc["offset"].is_contiguous()
    kw = {"stride": 1, "padding": 1, "dilation": 1}
    torch.testing.assert_close(deform_conv2d(**nc, **kw), tvo.deform_conv2d(**args), atol=1e-12, rtol=1e-10)


def test_gradcheck_float64():
    args = _make((1, 2, 4, 5, 2, 2, 3, 1, 1, 1, 1, 2, True), torch.float64, offset_std=0.7)
    # the sampled value is only piecewise linear in the offsets: keep them 0.1 away from integers
    gen = torch.Generator().manual_seed(2)
    args["offset"] = (torch.randint(-2, 2, args["offset"].shape, generator=gen)
                      + 0.1 + 0.8 * torch.rand(args["offset"].shape, generator=gen, dtype=torch.float64))
    leaves = [args[k].requires_grad_() for k in ("input", "offset", "weight", "bias", "mask")]

    def f(inp, off, w, b, m):
        return deform_conv2d(inp, off, w, b, 1, 1, 1, m)

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(1, 2))
def test_zero_offsets_and_unit_mask_are_conv2d(b, c, h, w, kh, kw, stride, padding, dilation):
    if h + 2 * padding < dilation * (kh - 1) + 1 or w + 2 * padding < dilation * (kw - 1) + 1:
        return
    gen = torch.Generator().manual_seed(h * 100 + w)
    x = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    wt = torch.randn(3, c, kh, kw, generator=gen, dtype=torch.float64)
    ref = F.conv2d(x, wt, stride=stride, padding=padding, dilation=dilation)
    off = torch.zeros(b, 2 * kh * kw, *ref.shape[2:], dtype=torch.float64)
    mask = torch.ones(b, kh * kw, *ref.shape[2:], dtype=torch.float64)
    for m in (None, mask):
        torch.testing.assert_close(deform_conv2d(x, off, wt, None, stride, padding, dilation, m), ref,
                                   atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("k, d", [(3, 2), (3, 3), (5, 2), (1, 4)])
def test_scale_offsets_make_a_dilated_conv(k, d):
    x = torch.randn(2, 3, 11, 8, generator=torch.Generator().manual_seed(k * d), dtype=torch.float64)
    wt = torch.randn(4, 3, k, k, dtype=torch.float64)
    ref = F.conv2d(x, wt, padding=d * (k - 1) // 2, dilation=d)
    off = offset_field(scale_offsets(k, k, d), 2, *ref.shape[2:])
    torch.testing.assert_close(deform_conv2d(x, off, wt, padding=(k - 1) // 2), ref, atol=1e-12, rtol=1e-10)
    if k > 1 and d > 1:
        assert not torch.allclose(F.conv2d(x, wt, padding=(k - 1) // 2), ref)  # the plain grid is not it


def test_rotation_by_90_degrees_rotates_the_kernel():
    x = torch.randn(1, 2, 9, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    wt = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    off = offset_field(rotation_offsets(3, 3, 90), 1, 9, 7)
    # tap (i, j) now reads where tap R(i, j) used to: the kernel rotated the other way
    ref = F.conv2d(x, torch.rot90(wt, 1, dims=(2, 3)), padding=1)
    torch.testing.assert_close(deform_conv2d(x, off, wt, padding=1), ref, atol=1e-12, rtol=1e-10)
    assert torch.allclose(rotation_offsets(3, 3, 0), torch.zeros(18, dtype=torch.float64))
    assert random_offsets(3, 3, 4, 5, std=0.0).abs().max() == 0 and random_offsets(3, 3, 4, 5).shape == (1, 18, 4, 5)


def test_bilinear_sample_against_grid_sample_and_zero_outside():
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, 5, 7, generator=gen, dtype=torch.float64)
    y = 7 * torch.rand(2, 4, 6, generator=gen, dtype=torch.float64) - 1.5  # includes outside points
    x = 9 * torch.rand(2, 4, 6, generator=gen, dtype=torch.float64) - 1.5
    # grid_sample with align_corners=True maps -1..1 to pixel centres 0..size-1; zeros padding
    grid = torch.stack([2 * x / 6 - 1, 2 * y / 4 - 1], -1)  # (2, 4, 6, 2) as (x, y)
    ref = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(bilinear_sample(img, y, x), ref, atol=1e-12, rtol=1e-10)
    far = bilinear_sample(img[:1], torch.tensor([[-1.0, 5.0, 2.0, 1e6]], dtype=torch.float64),
                          torch.tensor([[2.0, 3.0, -1.0, 0.0]], dtype=torch.float64))
    assert far.shape == (1, 3, 4) and far.abs().max() == 0  # on or beyond the border: exactly 0


@settings(max_examples=50, deadline=None)
@given(st.floats(-5, 5), st.floats(-5, 5))
def test_bilinear_weights_are_a_partition_of_unity_that_interpolates(y, x):
    nb = bilinear_neighbours(torch.tensor(y, dtype=torch.float64), torch.tensor(x, dtype=torch.float64))
    assert torch.isclose(nb.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (nb.weights >= -1e-15).all()
    # the weighted corners reproduce the point itself (bilinear interpolation is exact on linear functions)
    assert abs((nb.weights * nb.rows).sum().item() - y) < 1e-9 and abs((nb.weights * nb.cols).sum().item() - x) < 1e-9


def test_sampling_positions_layout():
    off = torch.zeros(1, 2 * 2 * 6, 2, 3, dtype=torch.float64)  # 2 offset groups, 2×3 kernel
    off[0, 2 * (6 + 4), 1, 2] = 0.25  # group 1, tap 4 = (i=1, j=1): dy
    off[0, 2 * (6 + 4) + 1, 1, 2] = -0.5  # dx
    y, x = sampling_positions(off, (2, 3), stride=2, padding=1, dilation=3)
    assert y.shape == (1, 2, 6, 2, 3)
    assert (y[0, 1, 4, 1, 2].item(), x[0, 1, 4, 1, 2].item()) == (1 * 2 - 1 + 1 * 3 + 0.25, 2 * 2 - 1 + 1 * 3 - 0.5)
    assert (y[0, 0, 4, 1, 2].item(), x[0, 0, 4, 1, 2].item()) == (4.0, 6.0)


def test_output_size_matches_conv2d():
    for size, k, s, p, d in [(1, 1, 1, 0, 1), (7, 3, 2, 1, 1), (9, 3, 2, 0, 2), (17, 5, 3, 2, 2)]:
        assert output_size(size, k, s, p, d) == F.conv2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1),
                                                         stride=s, padding=p, dilation=d).shape[2]


# --- the layer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("modulated, offset_groups, groups", [(True, 1, 1), (False, 2, 2), (True, 4, 1)])
def test_layer_starts_as_a_plain_conv_and_matches_torchvision(modulated, offset_groups, groups):
    torch.manual_seed(0)
    layer = DeformConv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=groups, offset_groups=offset_groups,
                         modulated=modulated).double()
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    plain = F.conv2d(x, layer.weight, layer.bias, stride=2, padding=1, groups=groups)
    torch.testing.assert_close(layer(x), plain, atol=1e-12, rtol=1e-10)
    with torch.no_grad():  # now give it non-trivial offsets and masks
        layer.offset_conv.weight.normal_(0, 0.3)
        layer.offset_conv.bias.normal_(0, 0.5)
    offset, mask = layer.offsets_and_mask(x)
    assert offset.shape == (2, 2 * offset_groups * 9, 5, 4) and (mask is None) != modulated
    tv = tvo.DeformConv2d(4, 6, 3, stride=2, padding=1, groups=groups).double()
    tv.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    ours = layer(x)
    ref = tv(x, offset, mask)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    assert not torch.allclose(ours, plain)
    ours.square().sum().backward()
    assert layer.offset_conv.weight.grad.abs().sum() > 0  # the offsets are learned through the sampling


# --- bad input ----------------------------------------------------------------------------------------


def _ok():
    return {"input": torch.zeros(2, 4, 7, 9), "offset": torch.zeros(2, 18, 7, 9), "weight": torch.zeros(6, 4, 3, 3),
            "padding": 1}


@pytest.mark.parametrize("change, error, match", [
    ({"offset": torch.zeros(2, 17, 7, 9)}, ValueError, r"offset.shape\[1\] must be 2·offset_groups·kh·kw.*got offset "
     r"shape \(2, 17, 7, 9\)"),
    ({"offset": torch.zeros(2, 18, 5, 9)}, ValueError,
     r"offset must have shape .* = \(2, 18, 7, 9\).*got \(2, 18, 5, 9\)"),
    ({"offset": torch.zeros(1, 18, 7, 9)}, ValueError, r"offset must have shape"),
    ({"offset": torch.zeros(2, 54, 7, 9)}, ValueError, r"offset_groups = .* = 3 must divide input's 4 channels"),
    ({"weight": torch.zeros(6, 3, 3, 3)}, ValueError, r"weight.shape\[1\] .* must divide input's 4 channels"),
    ({"weight": torch.zeros(5, 2, 3, 3)}, ValueError, r"weight.shape\[0\] .* divisible by groups = 2 .* got 5"),
    ({"mask": torch.zeros(2, 18, 7, 9)}, ValueError, r"mask must have shape .* = \(2, 9, 7, 9\); got \(2, 18, 7, 9\)"),
    ({"bias": torch.zeros(5)}, ValueError, r"bias must have shape \(6,\)"),
    ({"input": torch.zeros(4, 7, 9)}, ValueError, r"input must have 4 dims"),
    ({"input": torch.zeros(2, 4, 7, 9, dtype=torch.int64)}, TypeError, r"input must have a floating-point dtype"),
    ({"weight": torch.zeros(6, 4, 3, 3, dtype=torch.float64)}, TypeError, r"must have the same dtype"),
    ({"offset": [0.0]}, TypeError, r"offset must be Tensor"),
    ({"stride": 0}, ValueError, r"stride must be an int in \[1, inf\]; got 0"),
    ({"padding": (1, 2, 3)}, ValueError, r"padding must be an int or a pair"),
    ({"padding": 0, "dilation": 5}, ValueError, r"kernel spans 11 pixels .* padded input has only 7"),
])
def test_bad_input_is_a_clear_error(change, error, match):
    with pytest.raises(error, match=match):
        deform_conv2d(**{**_ok(), **change})


def test_bad_sampling_and_layer_arguments():
    img = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"y and x must have the same shape; got y \(2, 5\) and x \(2, 6\)"):
        bilinear_sample(img, torch.zeros(2, 5), torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"B = input.shape\[0\] = 2; got \(3, 5\)"):
        bilinear_sample(img, torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"groups = 3 must divide in_channels = 4"):
        DeformConv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match=r"offset_groups = 3 must divide in_channels = 4"):
        DeformConv2d(4, 6, 3, offset_groups=3)
    with pytest.raises(TypeError, match=r"kernel_size must be an int; got float"):
        DeformConv2d(4, 6, 3.0)


# --- the experiment -------------------------------------------------------------------------------------


def test_experiment_a_scale_of_two_is_exact_and_is_learned():
    task = dilation_task(n=4)
    plain = plain_conv_best_fit(task)
    errors = scale_sweep(task, [1.0, 1.5, 2.0, 2.5])
    assert errors[2] < 1e-25 < plain  # the dilated grid is exact; no plain 3x3 conv is
    assert errors[0] > plain > 0.01  # the plain grid with the target's own weights is worse than the best plain fit
    assert errors[1] > errors[2] < errors[3]
    history = learn_scale(task, start=1.0, steps=60)
    assert len(history) == 61 and history[0][0] == 1.0 and math.isclose(history[0][1], errors[0], rel_tol=1e-9)
    assert abs(history[-1][0] - 2.0) < 0.02 and history[-1][1] < 1e-3 * history[0][1]
