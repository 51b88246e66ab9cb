"""course_lib.detection.roi: roi_pool and roi_align against torchvision.ops, forward and backward
w.r.t. the features, on awkward boxes; gradcheck in float64; RoI Align's sample points against a
per-point loop transcribed from the kernel."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.detection import roi_align, roi_align_sample_points, roi_pool, rois_from_boxes

TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}


def features(n: int, c: int, h: int, w: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def awkward_rois(dtype: torch.dtype) -> torch.Tensor:
    """(batch, x1, y1, x2, y2): inside, partly outside, fully outside, tiny, sub-cell, a line, whole map."""
    return torch.tensor([
        [0, 1.0, 2.0, 9.0, 7.0],
        [1, -3.0, -2.0, 5.0, 6.0],  # partly outside (top-left)
        [1, 10.5, 8.25, 40.0, 30.0],  # partly outside (bottom-right)
        [0, 50.0, 50.0, 60.0, 70.0],  # fully outside
        [1, 4.0, 4.0, 4.2, 4.1],  # tiny
        [0, 2.5, 2.5, 2.5, 9.5],  # zero width
        [2, 0.0, 0.0, 12.0, 10.0],  # the whole map
        [2, 7.49, 3.5, 11.5, 6.51],  # half-pixel edges (rounding in roi_pool)
    ], dtype=dtype)


def compare(ours, theirs, x, rois, *args):
    """Forward and backward (w.r.t. the features) of two ops agree."""
    tol = TOLERANCE[x.dtype]
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    out1, out2 = ours(x1, rois, *args), theirs(x2, rois, *args)
    torch.testing.assert_close(out1, out2, **tol)
    grad = torch.randn(out1.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    (g1,), (g2,) = torch.autograd.grad(out1, x1, grad), torch.autograd.grad(out2, x2, grad)
    torch.testing.assert_close(g1, g2, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("output_size", [(7, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.3])
def test_roi_pool_matches_torchvision(output_size, spatial_scale, dtype):
    x = features(3, 2, 10, 12, dtype)
    compare(roi_pool, torchvision.ops.roi_pool, x, awkward_rois(dtype), output_size, spatial_scale)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("output_size", [(7, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_roi_align_matches_torchvision(output_size, spatial_scale, sampling_ratio, aligned):
    x = features(3, 2, 10, 12, torch.float64)
    compare(roi_align, torchvision.ops.roi_align, x, awkward_rois(torch.float64), output_size, spatial_scale,
            sampling_ratio, aligned)


@pytest.mark.parametrize("op", ["pool", "align"])
def test_list_of_boxes_and_non_contiguous_features(op):
    x = features(2, 17, 9, 13, torch.float32).transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous
    assert not x.is_contiguous()
    boxes = [torch.tensor([[0.0, 0.0, 5.0, 4.0], [3.3, 1.7, 12.0, 8.9]]), torch.zeros(0, 4),
             torch.tensor([[-2.0, 3.0, 4.0, 11.0]])]
    x = torch.cat([x, x[:1]])  # 3 images; the middle one has no boxes
    ours, theirs = (roi_pool, torchvision.ops.roi_pool) if op == "pool" else (roi_align, torchvision.ops.roi_align)
    compare(ours, theirs, x, boxes, (3, 2), 1.0)
    assert rois_from_boxes(boxes)[:, 0].tolist() == [0.0, 0.0, 2.0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(-1, 3), st.booleans(), st.integers(0, 10**6))
def test_roi_align_random_boxes(ph, pw, sampling_ratio, aligned, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 8, 11, generator=gen, dtype=torch.float64)
    xy = torch.rand(5, 2, generator=gen, dtype=torch.float64) * 30 - 8
    wh = torch.rand(5, 2, generator=gen, dtype=torch.float64) * 20
    rois = torch.cat([torch.randint(0, 2, (5, 1), generator=gen).double(), xy, xy + wh], 1)
    compare(roi_align, torchvision.ops.roi_align, x, rois, (ph, pw), 0.5, sampling_ratio, aligned)
    compare(roi_pool, torchvision.ops.roi_pool, x, rois, (ph, pw), 0.5)


def test_gradcheck_float64():
    x = features(2, 2, 6, 7, torch.float64).requires_grad_()
    rois = torch.tensor([[0, 0.3, 0.7, 4.2, 5.1], [1, -1.0, 2.0, 6.5, 4.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (3, 2), 1.0, -1, True), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 2), 0.7, 2, False), (x,))
    # max pooling: differentiable away from ties, which random features do not have
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 1.0), (x,))


def test_roi_pool_gradient_goes_to_the_first_maximum():
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)  # all ties: the first cell in row-major order wins
    roi_pool(x, [torch.tensor([[1.0, 1.0, 3.0, 3.0]])], (1, 1)).sum().backward()
    assert x.grad[0, 0].nonzero().tolist() == [[1, 1]]


def _sample_points_loop(box, ph, pw, scale, sampling_ratio, aligned):
    """The kernel's loops (torchvision roi_align_kernel.cpp), one point at a time."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - offset for v in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / ph, rw / pw
    gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph)
    gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw)
    ys = [[y1 + p * bh + (i + 0.5) * bh / gh for i in range(gh)] for p in range(ph)]
    xs = [[x1 + p * bw + (i + 0.5) * bw / gw for i in range(gw)] for p in range(pw)]
    return ys, xs


@pytest.mark.parametrize("box, size, scale, ratio, aligned", [
    ((1.0, 2.0, 9.0, 7.0), (2, 3), 1.0, -1, False),
    ((0.3, 0.2, 0.5, 0.4), (1, 1), 1.0, -1, False),  # smaller than a cell: stretched to one
    ((0.3, 0.2, 0.5, 0.4), (1, 1), 1.0, 2, True),
    ((-6.0, 4.0, 30.0, 29.0), (7, 7), 0.25, -1, True),
])
def test_sample_points_match_kernel_loops(box, size, scale, ratio, aligned):
    ys, xs = roi_align_sample_points(box, size, scale, ratio, aligned)
    loop_ys, loop_xs = _sample_points_loop(box, *size, scale, ratio, aligned)
    assert torch.allclose(ys, torch.tensor(loop_ys, dtype=torch.float64))
    assert torch.allclose(xs, torch.tensor(loop_xs, dtype=torch.float64))


def test_sample_points_give_roi_align_by_hand():
    """Averaging a linear map f(y, x) = y + 10x at the sample points is roi_align's output."""
    h, w = 9, 11
    f = (torch.arange(h, dtype=torch.float64)[:, None] + 10 * torch.arange(w, dtype=torch.float64)[None])[None, None]
    box = (1.2, 2.7, 8.9, 6.3)  # inside the map, where bilinear interpolation of a linear map is exact
    ys, xs = roi_align_sample_points(box, (2, 3), aligned=True)
    expected = ys.mean(1)[:, None] + 10 * xs.mean(1)[None, :]  # (2, 3)
    out = roi_align(f, [torch.tensor([box], dtype=torch.float64)], (2, 3), aligned=True)
    assert torch.allclose(out[0, 0], expected)


@pytest.mark.parametrize("call, kind, match", [
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(2, 4), 2), ValueError, r"must have shape \(K, 5\)"),
    (lambda: roi_align(torch.zeros(1, 4, 4), torch.zeros(2, 5), 2), ValueError, "input must have 4 dims"),
    (lambda: roi_pool(torch.zeros(1, 1, 4, 4), torch.zeros(2, 5, dtype=torch.float64), 2), TypeError,
     "input, boxes must have the same dtype"),
    (lambda: roi_pool(torch.zeros(1, 1, 4, 4), torch.tensor([[1.0, 0, 0, 1, 1]]), 2), ValueError,
     r"batch indices must be in \[0, 0\]"),
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(2, 5), (2, 0)), ValueError,
     r"output_size\[1\] must be an int in \[1, inf\]; got 0"),
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(2, 5), 2, spatial_scale=0), ValueError,
     r"spatial_scale must be a number in \(0"),
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), "boxes", 2), TypeError, "boxes must be a Tensor"),
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), [torch.zeros(2, 3)], 2), ValueError, r"boxes\[0\] must have shape"),
    (lambda: roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(2, 5), 2, aligned=1), TypeError, "aligned must be bool"),
])
def test_roi_errors(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


# --- the notebook's experiments (course_lib.detection.experiment) ------------------------------------


def test_aligned_true_removes_the_half_cell_bias():
    from course_lib.detection.experiment import aligned_bias

    bias = aligned_bias(positions=5)
    assert bias.aligned.abs().max() < 1e-12  # reads the value that belongs at each bin's centre
    assert torch.allclose(bias.legacy, torch.full_like(bias.legacy, 0.5))  # half a cell: 8 px at stride 16


def test_roi_pooling_lags_a_moving_box_and_roi_align_follows_it():
    from course_lib.detection.experiment import shift_errors

    errors = shift_errors(max_shift=16)
    assert max(errors["RoI pooling"]) > 0.5
    assert max(errors["RoI Align (aligned=True)"]) < 1e-9 and max(errors["RoI Align (aligned=False)"]) < 1e-9


def test_average_precision_by_hand():
    """VOC all-point AP: TP, FP (no overlap), TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP = 5/6;
    a second detection of a matched box is a false positive; nothing detected is AP 0; no gt is nan."""
    from course_lib.detection.experiment import average_precision

    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])}]
    det = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 30, 30]]),
            "scores": torch.tensor([0.9, 0.8, 0.7])}]
    assert average_precision(det, gt) == pytest.approx(5 / 6)
    dup = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]]), "scores": torch.tensor([0.9, 0.8])}]
    assert average_precision(dup, gt) == pytest.approx(0.5)  # recall 1/2 at precision 1, then a FP
    assert average_precision([{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)}], gt) == 0.0
    perfect = [{"boxes": gt[0]["boxes"], "scores": torch.tensor([0.5, 0.5])}]
    assert average_precision(perfect, gt) == 1.0
    assert average_precision(det, gt, iou_threshold=0.9) == pytest.approx(0.5 * 1.0)  # (21..30) has IoU 0.81
    assert math.isnan(average_precision(det, [{"boxes": torch.zeros(0, 4)}]))
    with pytest.raises(ValueError, match="one entry per image"):
        average_precision(det, gt * 2)
