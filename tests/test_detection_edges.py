"""course_lib.detection at the edges, against torchvision: cases ported from torchvision's
``test/test_ops.py`` (written anew; each names the upstream test class and method it follows) and
hypothesis property tests whose strategies include 0, ±inf, NaN, subnormals, the largest finite
values and size-0 dimensions, compared NaN-aware, forward and backward.

Places this audit changed (issue 13), each with the input that exposed it:

* ``roi_pool`` — a NaN feature won its bin (``torch.argmax`` picks NaN; torchvision's ``value > max``
  skips it): ``x = arange(16).reshape(1, 1, 4, 4)``, ``x[0, 0, 0, 1] = nan``, box ``(0, 0, 0, 3, 3)``,
  output 2: bin (0, 0) gave nan, torchvision 5. A bin of only NaN / -inf gave nan / -inf,
  torchvision ``-FLT_MAX``.
* ``roi_align`` — padding sample points were zeroed by multiplication, so a NaN they read leaked
  into the bin: ``x = arange(36).reshape(1, 1, 6, 6)``, ``x[0, 0, 5, 5] = nan``, boxes
  ``(0, 0, 0, 1, 1)`` and ``(0, 0, 0, 5, 5)``, output 1, adaptive sampling: the first box gave nan,
  torchvision 3.5. Out-of-map points are now 0 by ``torch.where`` as well (a deliberate difference,
  see ``test_roi_align_out_of_map_points_read_zero_not_the_first_cell``).
* ``generate_anchors`` — a feature map with a side of 0 raised "must be an int in [1, inf]"; it now
  has no cells and no anchors (``generate_anchors([(0, 5)], [(16, 16)], [(32,)], [(1.0,)])``).
* ``batched_nms`` — not changed, documented: it is torchvision's per-category path; torchvision's
  coordinate trick (small inputs) differs under rounding (``test_batched_nms_is_per_category_...``).

Tests for the ordinary inputs: ``tests/test_detection.py``, ``tests/test_detection_roi.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops.boxes import _batched_nms_vanilla

from course_lib.detection import (
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    decode_boxes,
    generate_anchors,
    nms,
    remove_small_boxes,
    roi_align,
    roi_pool,
)
from course_lib.detection.roi import FLT_LOWEST

SPECIAL = [0.0, -0.0, 1.0, float("inf"), float("-inf"), float("nan"), 1e-45, 5e-324, 3.4e38, -3.4e38, 1.7e308]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal in shape, dtype and value, nan == nan."""
    return (a.shape == b.shape and a.dtype == b.dtype
            and torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)))


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


# --- box ops: TestBoxIou, TestBoxArea ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.float64])
def test_box_iou_and_area_on_torchvision_cases(dtype):
    """test_ops.py::TestBoxIou::test_iou / TestBoxArea::test_box_area: a box with itself, a box inside
    another, a half overlap; then empty inputs (TestBoxIou's 0-box case)."""
    boxes = torch.tensor([[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]).to(dtype)
    assert same(box_iou(boxes, boxes), torchvision.ops.box_iou(boxes, boxes))
    assert same(box_area(boxes), torchvision.ops.box_area(boxes))
    for n, m in [(0, 3), (3, 0), (0, 0)]:
        a, b = boxes[:n], boxes[:m]
        assert same(box_iou(a, b), torchvision.ops.box_iou(a, b)) and box_iou(a, b).shape == (n, m)
    assert same(box_area(boxes[:0]), torchvision.ops.box_area(boxes[:0]))


def test_box_iou_degenerate_boxes():
    """Degenerate boxes: zero width, zero height, a point, x1 > x2 (inverted), as torchvision."""
    boxes = torch.tensor([[5.0, 5, 5, 9], [2, 3, 8, 3], [4, 4, 4, 4], [8, 8, 2, 2], [0, 0, 10, 10]])
    assert same(box_iou(boxes, boxes), torchvision.ops.box_iou(boxes, boxes))
    assert math.isnan(box_iou(boxes[2:3], boxes[2:3]).item())  # 0 / 0: two points


@st.composite
def special_boxes(draw, max_n: int = 5):
    n = draw(st.integers(0, max_n))
    values = st.one_of(st.sampled_from(SPECIAL), st.floats(-100, 100, allow_nan=False, width=64))
    rows = draw(st.lists(st.lists(values, min_size=4, max_size=4), min_size=n, max_size=n))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return torch.tensor(rows, dtype=dtype).reshape(n, 4)


@settings(max_examples=60, deadline=None)
@given(special_boxes(), special_boxes())
def test_box_iou_special_values_match_torchvision(a, b):
    """0, ±inf, nan, subnormals and the largest finite values in the coordinates, NaN-aware."""
    if a.dtype != b.dtype:
        b = b.to(a.dtype)
    assert same(box_iou(a, b), torchvision.ops.box_iou(a, b))
    assert same(box_area(a), torchvision.ops.box_area(a))


# --- NMS: TestNMS ----------------------------------------------------------------------------------------


def test_nms_on_empty_input():
    """test_ops.py::TestNMS (empty boxes): 0 boxes keep nothing, int64."""
    for boxes in (torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.float64)):
        keep = nms(boxes, torch.zeros(0, dtype=boxes.dtype), 0.5)
        assert same(keep, torchvision.ops.nms(boxes, torch.zeros(0, dtype=boxes.dtype), 0.5))
    assert same(batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5),
                torchvision.ops.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5))


@pytest.mark.parametrize("iou", [0.2, 0.5, 0.8])
def test_nms_iou_exactly_at_the_threshold(iou):
    """test_ops.py::TestNMS::test_nms_ref's `_create_tensors_with_iou`: pairs built to have IoU == the
    threshold are *kept* (the comparison is strict), here with exact float arithmetic."""
    # [0, 0, 10, 10] and [0, 0, 10, h]: IoU = h / 10
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10 * iou]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    assert box_iou(boxes[:1], boxes[1:]).item() == iou
    assert nms(boxes, scores, iou).tolist() == [0, 1] == torchvision.ops.nms(boxes, scores, iou).tolist()
    assert nms(boxes, scores, math.nextafter(iou, 0)).tolist() == [0]


def test_nms_many_way_score_tie():
    """Many equal scores: the stable order decides (torchvision sorts stably); 40 identical boxes keep the first."""
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 40)
    scores = torch.full((40,), 0.5)
    assert nms(boxes, scores, 0.5).tolist() == [0] == torchvision.ops.nms(boxes, scores, 0.5).tolist()
    gen = torch.Generator().manual_seed(0)
    boxes = torch.randint(0, 20, (200, 2), generator=gen).float().repeat(1, 2) + torch.tensor([0.0, 0, 8, 8])
    scores = torch.randint(0, 3, (200,), generator=gen).float()  # three scores for 200 boxes
    assert torch.equal(nms(boxes, scores, 0.3), torchvision.ops.nms(boxes, scores, 0.3))


@st.composite
def special_nms_case(draw):
    boxes = draw(special_boxes(max_n=8))
    n = len(boxes)
    score = st.one_of(st.sampled_from([0.0, 0.5, 1.0, float("inf"), float("-inf"), 1e-45]),
                      st.floats(0, 1, width=32))
    scores = torch.tensor(draw(st.lists(score, min_size=n, max_size=n)), dtype=boxes.dtype)
    threshold = draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
    idxs = torch.tensor(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=torch.int64)
    return boxes, scores, threshold, idxs


@settings(max_examples=80, deadline=None)
@given(special_nms_case())
def test_nms_special_values_match_torchvision(case):
    """Boxes with 0, ±inf, nan, subnormal and huge coordinates; scores with ties, ±inf and subnormals
    (NaN scores are left out: torchvision's CPU sort order for them is not specified)."""
    boxes, scores, threshold, idxs = case
    assert same(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    assert same(batched_nms(boxes, scores, idxs, threshold), _batched_nms_vanilla(boxes, scores, idxs, threshold))


def test_batched_nms_is_per_category_not_the_coordinate_trick():
    """The deliberate difference (nms.py's docstring): for small inputs torchvision shifts each category's
    boxes by idx * (max coordinate + 1) and runs one NMS; the shift rounds away a subnormal width here, so
    its answer differs from its own per-category path (used above 4000 boxes on the CPU). course_lib is
    the per-category definition."""
    boxes = torch.tensor([[0.0, 0, 0, 0], [0, 0, 0, 0], [-1, 0, 0, 1], [-1e-210, 0, 0, 1]], dtype=torch.float64)
    scores, idxs = torch.zeros(4, dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    assert batched_nms(boxes, scores, idxs, 0.0).tolist() == [0, 1, 2]  # IoU(2, 3) = 1e-210 > 0: suppressed
    assert _batched_nms_vanilla(boxes, scores, idxs, 0.0).tolist() == [0, 1, 2]
    assert torchvision.ops.batched_nms(boxes, scores, idxs, 0.0).tolist() == [0, 1, 2, 3]  # the trick's rounding


# --- RoI pooling: TestRoIPool -----------------------------------------------------------------------------


def _upstream_rois(dtype: torch.dtype) -> torch.Tensor:
    # the boxes of test_ops.py::RoIOpTester::test_forward: whole map, partial, corner, second image
    return torch.tensor([[0, 0, 0, 9, 9], [0, 0, 5, 4, 9], [0, 5, 5, 9, 9], [1, 0, 0, 9, 9]], dtype=dtype)


@pytest.mark.parametrize("op, tv", [(roi_pool, torchvision.ops.roi_pool), (roi_align, torchvision.ops.roi_align)],
                         ids=["pool", "align"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_ops_on_upstream_forward_case(op, tv, dtype):
    """test_ops.py::RoIOpTester::test_forward (TestRoIPool, TestRoIAlign): x (2, C, 10, 10), pool 5 x 5."""
    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0), dtype=dtype)
    rois = _upstream_rois(dtype)
    for size, scale in [(5, 1.0), ((5, 4), 0.5), (1, 2.0)]:
        assert close(op(x, rois, size, scale), tv(x, rois, size, scale))


@pytest.mark.parametrize("op, tv", [(roi_pool, torchvision.ops.roi_pool), (roi_align, torchvision.ops.roi_align)],
                         ids=["pool", "align"])
def test_roi_ops_on_empty_batches_and_no_boxes(op, tv):
    """Batch of 0 images and 0 boxes (torchvision's empty-input cases): an empty (K, C, PH, PW), and a
    backward that gives zeros."""
    for n, k in [(0, 0), (2, 0)]:
        x = torch.rand(n, 3, 5, 5, dtype=torch.float64, requires_grad=True)
        rois = torch.zeros(k, 5, dtype=torch.float64)
        out = op(x, rois, (2, 3), 1.0)
        assert out.shape == tv(x, rois, (2, 3), 1.0).shape == (0, 3, 2, 3)
        (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True, materialize_grads=True)
        assert grad.shape == x.shape and not grad.any()
    # list form with an image that has no boxes
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    boxes = [torch.zeros(0, 4, dtype=torch.float64), torch.tensor([[0.0, 0, 3, 3]], dtype=torch.float64)]
    assert close(op(x, boxes, 2, 1.0), tv(x, boxes, 2, 1.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_pool_nan_and_minus_inf_features(dtype):
    """NaN features (torchvision's NaN cases): the kernel's `value > max` never picks NaN or -inf; a bin
    holding nothing else is -FLT_MAX, with no gradient — forward and backward as torchvision."""
    x = torch.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = float("nan")
    x[0, 0, 3, 0] = float("-inf")
    rois = torch.tensor([[0, 0, 0, 3, 3], [0, 0, 0, 1, 0]], dtype=dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = roi_pool(x1, rois, 2), torchvision.ops.roi_pool(x2, rois, 2)
    assert same(out1, out2) and out1[0, 0, 0, 0].item() == 5.0
    up = torch.rand_like(out1)
    assert same(torch.autograd.grad(out1, x1, up)[0], torch.autograd.grad(out2, x2, up)[0])
    for fill in (float("nan"), float("-inf")):
        allbad = torch.full((1, 2, 4, 4), fill, dtype=dtype, requires_grad=True)
        out = roi_pool(allbad, rois[:1], 2)
        assert same(out, torchvision.ops.roi_pool(allbad, rois[:1], 2))
        assert bool((out == FLT_LOWEST).all())
        assert not torch.autograd.grad(out.sum(), allbad)[0].any()


# --- RoI Align: TestRoIAlign ------------------------------------------------------------------------------


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 5])
def test_roi_align_aligned_and_sampling_ratio_on_upstream_case(aligned, sampling_ratio):
    """test_ops.py::TestRoIAlign::test_forward, parametrised over `aligned` and `sampling_ratio`, with
    a box smaller than a cell (aligned=True keeps it small; False stretches it to one cell)."""
    x = torch.rand(2, 2, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rois = torch.cat([_upstream_rois(torch.float64), torch.tensor([[1, 3.2, 3.3, 3.6, 3.5]], dtype=torch.float64)])
    assert close(roi_align(x, rois, 3, 1.0, sampling_ratio, aligned),
                 torchvision.ops.roi_align(x, rois, 3, 1.0, sampling_ratio, aligned), 1e-10, 1e-12)


def test_roi_align_nan_features_stay_where_torchvision_reads_them():
    """NaN features: a NaN propagates to every bin that samples next to it (0 * nan = nan, as the
    kernel), and no further — padding points of a smaller box no longer read it."""
    x = torch.arange(36, dtype=torch.float64).reshape(1, 1, 6, 6)
    x[0, 0, 5, 5] = float("nan")
    rois = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 5, 5], [0, 0.5, 0.5, 4.5, 4.5]], dtype=torch.float64)
    for ratio in (-1, 2):
        ours, theirs = roi_align(x, rois, 1, 1.0, ratio), torchvision.ops.roi_align(x, rois, 1, 1.0, ratio)
        assert same(ours, theirs)
    assert roi_align(x, rois, 1, 1.0, -1)[0].item() == 3.5  # was nan: a padding point read x[5, 5]


def test_roi_align_out_of_map_points_read_zero_not_the_first_cell():
    """The deliberate difference (roi.py's docstring): torchvision computes an out-of-map sample point
    as 0 * input[b, c, 0, 0], so a NaN there poisons a box lying wholly outside the map; here it is 0."""
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    outside = torch.tensor([[0, 10, 10, 12, 12]], dtype=torch.float64)
    assert same(roi_align(x, outside, 2), torchvision.ops.roi_align(x, outside, 2))  # finite map: both 0
    x[0, 0, 0, 0] = float("nan")
    assert torchvision.ops.roi_align(x, outside, 2).isnan().all()
    assert torch.equal(roi_align(x, outside, 2), torch.zeros(1, 1, 2, 2, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SPECIAL[:6] + [1e-45, 3e38]), st.integers(0, 15), st.integers(1, 3),
       st.sampled_from([-1, 1, 2]), st.booleans(), st.integers(0, 10**6))
def test_roi_ops_with_one_special_feature_match_torchvision(value, where, size, ratio, aligned, seed):
    """One special value (0, ±inf, nan, subnormal, near the float32 maximum) at a random cell that is not
    the first (see the deliberate difference above), boxes inside the map; forward NaN-aware."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 2, 4, 4, generator=gen, dtype=torch.float64)
    x[0, 1].view(-1)[max(where, 1)] = value
    xy = torch.rand(3, 2, generator=gen, dtype=torch.float64) * 2.5
    rois = torch.cat([torch.zeros(3, 1, dtype=torch.float64), xy, xy + 0.1 + torch.rand(3, 2, generator=gen,
                                                                                       dtype=torch.float64)], 1)
    assert same(roi_pool(x, rois, size), torchvision.ops.roi_pool(x, rois, size))
    assert close(roi_align(x, rois, size, 1.0, ratio, aligned),
                 torchvision.ops.roi_align(x, rois, size, 1.0, ratio, aligned), 1e-10, 1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(1, 3), st.integers(0, 10**6))
def test_roi_ops_backward_with_size_zero_and_one_dims_match_torchvision(k, c, seed):
    """Size-0 and size-1 dimensions (K = 0 boxes, C = 1 channel, a 1 x 1 output); gradients w.r.t. the
    features equal torchvision's."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64)
    xy = torch.rand(k, 2, generator=gen, dtype=torch.float64) * 4
    rois = torch.cat([torch.randint(0, 2, (k, 1), generator=gen).double(), xy, xy + 0.5 + 2 * torch.rand(
        k, 2, generator=gen, dtype=torch.float64)], 1)
    for ours, theirs in [(roi_pool, torchvision.ops.roi_pool), (roi_align, torchvision.ops.roi_align)]:
        for size in (1, (2, 3)):
            x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
            out1, out2 = ours(x1, rois, size, 1.0), theirs(x2, rois, size, 1.0)
            assert close(out1, out2, 1e-10, 1e-12)
            up = torch.randn(out1.shape, generator=gen, dtype=torch.float64)
            g1 = torch.autograd.grad(out1, x1, up, allow_unused=True, materialize_grads=True)[0]
            g2 = torch.autograd.grad(out2, x2, up, allow_unused=True, materialize_grads=True)[0]
            assert close(g1, g2, 1e-10, 1e-12)


# --- box encoding and clipping: BoxCoder, TestBoxConversion/clip_boxes_to_image, remove_small_boxes ------


@settings(max_examples=60, deadline=None)
@given(special_boxes(max_n=6), st.integers(1, 60), st.integers(1, 60), st.sampled_from([0.0, 1.0, 5.0]))
def test_clip_and_remove_small_special_values_match_torchvision(boxes, height, width, min_size):
    assert same(clip_boxes(boxes, (height, width)), torchvision.ops.clip_boxes_to_image(boxes, (height, width)))
    assert same(remove_small_boxes(boxes, min_size), torchvision.ops.remove_small_boxes(boxes, min_size))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5).flatmap(lambda n: st.tuples(special_boxes(max_n=0) if n == 0 else st.just(n),
                                                     st.lists(st.lists(st.one_of(st.sampled_from(SPECIAL),
                                                              st.floats(-3, 3, width=64)), min_size=4, max_size=4),
                                                              min_size=n, max_size=n))),
       st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
def test_decode_special_deltas_match_box_coder(case, weights):
    """Deltas with 0, ±inf, nan, subnormal and huge values on ordinary anchors (dw, dh are clamped above
    at log(1000/16) only, as BoxCoder: -inf gives a zero-size box, nan stays nan)."""
    from torchvision.models.detection._utils import BoxCoder

    n_or_empty, rows = case
    n = 0 if isinstance(n_or_empty, torch.Tensor) else n_or_empty
    deltas = torch.tensor(rows, dtype=torch.float64).reshape(n, 4)
    anchors = torch.tensor([[0.0, 0, 16, 32], [5, 5, 9, 7], [-8, -8, 8, 8], [1, 2, 3, 4], [0, 0, 1, 1]],
                           dtype=torch.float64)[:n]
    ours = decode_boxes(anchors, deltas, weights)
    theirs = BoxCoder(weights).decode_single(deltas, anchors)
    assert same(ours, theirs)


def test_anchors_of_an_empty_feature_map_are_empty_as_anchor_generator():
    """A feature map of height or width 0 has no cells, so no anchors. AnchorGenerator.forward cannot say
    (it derives the stride as image_size // 0 and raises ZeroDivisionError); its grid_anchors, given the
    strides as here, returns the same empty grid."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    generator = AnchorGenerator(((32,),), ((1.0,),))
    generator.set_cell_anchors(torch.float32, torch.device("cpu"))
    for shape in [(0, 5), (3, 0)]:
        ours = generate_anchors([shape], [(16, 16)], [(32,)], [(1.0,)])
        theirs = generator.grid_anchors([list(shape)], [[torch.tensor(16), torch.tensor(16)]])[0]
        assert ours.shape == (0, 4) and same(ours, theirs)
