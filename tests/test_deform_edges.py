"""course_lib.deform at the edges, against torchvision.ops.deform_conv2d: batch 0 and 33, offset
groups, masks, non-contiguous inputs (torchvision's own TestDeformConv cases, written anew), and
special values — ±inf, nan, subnormals, large values, infinite offsets — compared NaN-aware.

Upstream: ``test/test_ops.py::TestDeformConv`` in pytorch/vision (``get_fn_args``,
``test_forward``, ``test_backward``, ``test_wrong_sizes``). Each ported test names the one it
comes from.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.deform import bilinear_sample, deform_conv2d, sampling_positions

INF, NAN = float("inf"), float("nan")


def _tv_args(batch: int, contiguous: bool, dtype: torch.dtype = torch.float64, seed: int = 0) -> dict:
    """The configuration of torchvision's ``TestDeformConv.get_fn_args``: 6 input channels, 2 output
    channels, 2 weight groups, 3 offset groups, a 3×2 kernel, stride (2, 1), padding (1, 0),
    dilation (2, 1) on a 5×4 input; non-contiguous variants by the same permutations."""
    gen = torch.Generator().manual_seed(seed)
    c_in, c_out, weight_groups, offset_groups = 6, 2, 2, 3
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w) = (3, 2), (2, 1), (1, 0), (2, 1), (5, 4)
    h_out = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    w_out = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    x = torch.rand(batch, c_in, h, w, generator=gen, dtype=dtype)
    offset = torch.randn(batch, offset_groups * 2 * kh * kw, h_out, w_out, generator=gen, dtype=dtype)
    mask = torch.randn(batch, offset_groups * kh * kw, h_out, w_out, generator=gen, dtype=dtype)
    weight = torch.randn(c_out, c_in // weight_groups, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(c_out, generator=gen, dtype=dtype)
    if not contiguous:  # the same permutations as upstream
        x = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
        offset = offset.permute(1, 3, 0, 2).contiguous().permute(2, 0, 3, 1)
        mask = mask.permute(1, 3, 0, 2).contiguous().permute(2, 0, 3, 1)
        weight = weight.permute(3, 2, 0, 1).contiguous().permute(2, 3, 1, 0)
    return {"input": x, "offset": offset, "weight": weight, "bias": bias, "mask": mask,
            "stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw)}


# --- ported from TestDeformConv ---------------------------------------------------------------------


@pytest.mark.parametrize("batch", [0, 33])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("with_mask", [True, False])
def test_forward_batch_0_and_33(batch, contiguous, with_mask):
    """TestDeformConv.test_forward: batch 0 and 33, contiguous or not, with and without mask."""
    args = _tv_args(batch, contiguous)
    if not with_mask:
        args["mask"] = None
    ours, theirs = deform_conv2d(**args), tvo.deform_conv2d(**args)
    assert ours.shape == theirs.shape == (batch, 2, 2, 3)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("batch", [0, 33])
@pytest.mark.parametrize("contiguous", [True, False])
def test_backward_gradcheck_batch_0_and_33(batch, contiguous):
    """TestDeformConv.test_backward: gradcheck (fast mode, as upstream) with and without mask."""
    args = _tv_args(batch, contiguous)
    leaves = [args[name].requires_grad_() for name in ("input", "offset", "mask", "weight", "bias")]
    fixed = {"stride": args["stride"], "padding": args["padding"], "dilation": args["dilation"]}

    def with_mask(x, offset, mask, weight, bias):
        return deform_conv2d(x, offset, weight, bias, mask=mask, **fixed)

    def without_mask(x, offset, weight, bias):
        return deform_conv2d(x, offset, weight, bias, **fixed)

    assert torch.autograd.gradcheck(with_mask, leaves, nondet_tol=1e-5, fast_mode=True)
    assert torch.autograd.gradcheck(without_mask, [leaves[0], leaves[1], leaves[3], leaves[4]],
                                    nondet_tol=1e-5, fast_mode=True)


def test_batch_0_input_of_issue_13():
    """x (0, 1, 3, 3), offset (0, 18, 1, 1), weight (1, 1, 3, 3): an empty (0, 1, 1, 1) and gradcheck."""
    x = torch.zeros(0, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    offset = torch.zeros(0, 18, 1, 1, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    out = deform_conv2d(x, offset, weight)
    assert out.shape == tvo.deform_conv2d(x, offset, weight).shape == (0, 1, 1, 1)
    assert torch.autograd.gradcheck(deform_conv2d, (x, offset, weight))
    out.sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.zeros_like(weight))
    y, _ = sampling_positions(offset.detach(), (3, 3))
    assert y.shape == (0, 1, 9, 1, 1)


@pytest.mark.parametrize("change, match", [
    ({"offset": torch.zeros(1, 35, 3, 3, dtype=torch.float64)}, r"offset.shape\[1\] must be"),
    ({"offset": torch.zeros(1, 36, 3, 3, dtype=torch.float64)}, r"offset must have shape"),
    ({"mask": torch.zeros(1, 17, 2, 3, dtype=torch.float64)}, r"mask must have shape"),
    ({"weight": torch.zeros(2, 4, 3, 2, dtype=torch.float64)}, r"weight.shape\[1\]"),
    ({"offset": torch.zeros(1, 48, 2, 3, dtype=torch.float64),
      "mask": torch.zeros(1, 24, 2, 3, dtype=torch.float64)}, r"offset_groups = .* = 4 must divide"),
])
def test_wrong_sizes(change, match):
    """TestDeformConv.test_wrong_sizes: each wrong offset, mask or weight shape is refused, by name."""
    args = {**_tv_args(1, True), **change}
    with pytest.raises(ValueError, match=match):
        deform_conv2d(**args)
    with pytest.raises(RuntimeError):  # torchvision refuses them too
        tvo.deform_conv2d(**args)


# --- special values ---------------------------------------------------------------------------------


def test_inf_pixel_reaches_only_the_outputs_that_blend_it():
    """A masked corner is *replaced* by zero, not multiplied by it: an inf in pixel (0, 0) — the
    index outside corners read — must not turn every output into nan (inf · 0)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 5, 5, generator=gen, dtype=torch.float64)
    x[0, 0, 0, 0] = INF
    weight = torch.randn(1, 1, 3, 3, generator=gen, dtype=torch.float64)
    offset = torch.full((1, 18, 3, 3), 3.0, dtype=torch.float64)  # many points in the padding
    ours, theirs = deform_conv2d(x, offset, weight), tvo.deform_conv2d(x, offset, weight)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10, equal_nan=True)
    assert torch.isfinite(ours).all()


@pytest.mark.parametrize("value", [INF, -INF, 1e308])
def test_infinite_and_huge_offsets_read_zero_like_torchvision(value):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    offset = torch.zeros(1, 18, 3, 3, dtype=torch.float64)
    offset[0, 4, 1, 1] = value  # dy of tap 2 at output (1, 1)
    offset[0, 7, 0, 2] = value  # dx of tap 3 at output (0, 2)
    offset.requires_grad_()
    ours, theirs = deform_conv2d(x, offset, weight), tvo.deform_conv2d(x, offset, weight)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)
    ours.sum().backward()
    assert torch.isfinite(x.grad).all() and offset.grad[0, 4, 1, 1] == 0 and offset.grad[0, 7, 0, 2] == 0


def test_nan_offset_gives_nan_where_it_reads_and_nowhere_else():
    """A deliberate difference: torchvision's CPU kernel casts floor(nan) to an int (undefined; it
    crashed here), so it is not called. Here a nan position makes only its own output nan."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 1, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 1, 3, 3, generator=gen, dtype=torch.float64)
    offset = torch.zeros(1, 18, 3, 3, dtype=torch.float64)
    offset[0, 4, 1, 1] = NAN
    out = deform_conv2d(x, offset, weight)
    nan = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    nan[0, 0, 1, 1] = True
    assert torch.equal(out.isnan(), nan)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()  # the nan point sends no gradient to any pixel


def test_nan_features_propagate_like_torchvision():
    """NaN features: nan in a pixel appears in exactly the outputs whose points blend it."""
    gen = torch.Generator().manual_seed(3)
    args = _tv_args(2, True)
    args["input"] = args["input"].clone()
    args["input"][0, 1, 2, 1] = NAN
    args["input"][1, 4, 0, 0] = NAN
    args["offset"] = 0.5 * torch.randn(args["offset"].shape, generator=gen, dtype=torch.float64)
    ours, theirs = deform_conv2d(**args), tvo.deform_conv2d(**args)
    assert ours.isnan().any() and not ours.isnan().all()
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10, equal_nan=True)


SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -2.5, INF, -INF, NAN, 5e-324, 2.2e-308, 1e300, -1e300])
PIXEL = st.one_of(SPECIAL, st.floats(-10, 10))
OFFSET = st.one_of(st.sampled_from([0.0, -1.0, 1.0, 0.5, -0.5, 4.0, -4.0, 5e-324, INF, -INF, 1e300]),
                   st.floats(-5, 5))


@settings(max_examples=40, deadline=None)
@given(pixels=st.lists(PIXEL, min_size=2 * 4 * 4, max_size=2 * 4 * 4),
       offsets=st.lists(OFFSET, min_size=18 * 2 * 2, max_size=18 * 2 * 2),
       use_mask=st.booleans(), batch=st.sampled_from([0, 1]))
def test_special_values_match_torchvision(pixels, offsets, use_mask, batch):
    """Forward, and the gradients of input, weight and bias, NaN-aware, for special pixel values
    and special offsets (no nan offsets: torchvision's kernel is undefined there)."""
    x = torch.tensor(pixels, dtype=torch.float64).reshape(1, 2, 4, 4)[:batch].requires_grad_()
    offset = torch.tensor(offsets, dtype=torch.float64).reshape(1, 18, 2, 2)[:batch]
    weight = torch.linspace(-1, 1, 2 * 2 * 9, dtype=torch.float64).reshape(2, 2, 3, 3).requires_grad_()
    bias = torch.tensor([0.5, -0.25], dtype=torch.float64, requires_grad=True)
    mask = torch.linspace(0, 2, 9 * 4, dtype=torch.float64).reshape(1, 9, 2, 2)[:batch] if use_mask else None
    grad_out = torch.ones(batch, 2, 2, 2, dtype=torch.float64)
    results = []
    for fn in (deform_conv2d, tvo.deform_conv2d):
        out = fn(x, offset, weight, bias, mask=mask)
        grads = torch.autograd.grad(out, (x, weight, bias), grad_out)
        results.append((out.detach(), *grads))
    for name, ours, theirs in zip(("out", "d input", "d weight", "d bias"), *results):
        torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=1e-9, equal_nan=True, msg=name)


@settings(max_examples=40, deadline=None)
@given(pixels=st.lists(PIXEL, min_size=9, max_size=9), y=OFFSET, x=OFFSET)
def test_bilinear_sample_special_values_match_torchvision(pixels, y, x):
    """One point on a 3×3 image: deform_conv2d with a 1×1 kernel samples exactly it."""
    img = torch.tensor(pixels, dtype=torch.float64).reshape(1, 1, 3, 3)
    ours = bilinear_sample(img, torch.tensor([[1.0 + y]], dtype=torch.float64),
                           torch.tensor([[1.0 + x]], dtype=torch.float64))  # (1, 1, 1)
    offset = torch.tensor([y, x], dtype=torch.float64).reshape(1, 2, 1, 1) + 1.0  # tap (0, 0) reads (1 + y, 1 + x)
    theirs = tvo.deform_conv2d(img, offset, torch.ones(1, 1, 1, 1, dtype=torch.float64), stride=3)  # one output
    torch.testing.assert_close(ours.reshape(()), theirs.reshape(()), atol=1e-12, rtol=1e-12, equal_nan=True)


# --- the modulation mask: the paper's range and the course's ------------------------------------------------


def test_mask_ranges_paper_and_course():
    """The paper's Δm = sigmoid ∈ [0, 1] starts at 0.5 (a fresh layer is half a conv); the course's
    default 2·sigmoid ∈ (0, 2) starts at 1 (a fresh layer is exactly the conv). deform_conv2d itself
    takes any real mask, as torchvision does."""
    import torch.nn.functional as F

    from course_lib.deform import DeformConv2d

    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    course, paper = DeformConv2d(4, 3, 3, padding=1).double(), DeformConv2d(4, 3, 3, padding=1, mask_scale=1.0).double()
    paper.load_state_dict(course.state_dict())
    plain = F.conv2d(x, course.weight, course.bias, padding=1)
    torch.testing.assert_close(course(x), plain)
    torch.testing.assert_close(paper(x), 0.5 * (plain - course.bias[:, None, None]) + course.bias[:, None, None])
    with torch.no_grad():
        for layer in (course, paper):
            layer.offset_conv.weight.normal_(0, 3.0)  # large logits: the mask approaches its bounds
    (_, m_course), (_, m_paper) = course.offsets_and_mask(x), paper.offsets_and_mask(x)
    # (sigmoid rounds to exactly 0 or 1 for large logits: the closed ranges hold in floating point)
    assert 0 <= m_course.min() and m_course.max() <= 2 and m_course.max() > 1.9
    assert 0 <= m_paper.min() and m_paper.max() <= 1 and m_paper.max() > 0.95
    args = _tv_args(2, True)
    args["mask"] = 3 * args["mask"]  # negative and > 1: no clamp, in either library
    assert args["mask"].min() < 0 and args["mask"].max() > 1
    torch.testing.assert_close(deform_conv2d(**args), tvo.deform_conv2d(**args), atol=1e-12, rtol=1e-10)
    assert "mask_scale=1.0" in repr(paper)
