"""course_lib.detection: boxes, anchors, NMS and the RPN's logic against torchvision.
RoI pooling / RoI Align: tests/test_detection_roi.py; widget and exercises: tests/test_detection_view.py."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from course_lib.detection import (
    BBOX_XFORM_CLIP,
    base_anchors,
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    filter_proposals,
    generate_anchors,
    label_anchors,
    match_anchors,
    nms,
    nms_with_suppressors,
    remove_small_boxes,
    rpn_loss,
    sample_anchors,
)


def random_boxes(n: int, seed: int, dtype: torch.dtype = torch.float32, scale: float = 50.0,
                 min_side: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen, dtype=dtype) * scale
    wh = torch.rand(n, 2, generator=gen, dtype=dtype) * scale / 2 + min_side
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, with nan == nan."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(torch.isnan(a), torch.isnan(b)) \
        and torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))


# --- boxes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
@pytest.mark.parametrize("n, m", [(1, 1), (3, 17), (17, 3), (0, 5)])
def test_box_iou_matches_torchvision(n, m, dtype):
    a = random_boxes(n, 0).to(dtype)
    b = random_boxes(m, 1).to(dtype)
    if n and m:  # degenerate boxes: zero area, a point, a copy of the other set's box
        a[0] = torch.tensor([5, 5, 5, 9]).to(dtype)
        b[-1] = a[0]
        if m > 2:
            b[1] = torch.tensor([7, 7, 7, 7]).to(dtype)
    assert same(box_iou(a, b), torchvision.ops.box_iou(a, b))
    assert same(box_area(a), torchvision.ops.box_area(a))


def test_box_iou_of_two_points_is_nan_as_in_torchvision():
    p = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert torch.isnan(box_iou(p, p)).all() and torch.isnan(torchvision.ops.box_iou(p, p)).all()


def test_box_iou_non_contiguous():
    a = random_boxes(9, 2).T.contiguous().T  # a transposed view: strides (1, 9)
    assert not a.is_contiguous()
    assert torch.equal(box_iou(a, a[::2]), torchvision.ops.box_iou(a, a[::2]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 30)] * 4), min_size=1, max_size=8),
       st.lists(st.tuples(*[st.integers(0, 30)] * 4), min_size=1, max_size=8))
def test_iou_is_symmetric_and_in_unit_interval(a, b):
    def boxes(rows):  # sort each corner pair so x1 <= x2, y1 <= y2; add 1 so no area is 0
        t = torch.tensor(rows, dtype=torch.float64)
        return torch.stack([torch.minimum(t[:, 0], t[:, 2]), torch.minimum(t[:, 1], t[:, 3]),
                            torch.maximum(t[:, 0], t[:, 2]) + 1, torch.maximum(t[:, 1], t[:, 3]) + 1], 1)
    a, b = boxes(a), boxes(b)
    iou = box_iou(a, b)
    assert torch.equal(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(len(a), dtype=torch.float64))


def test_clip_and_remove_small_match_torchvision():
    b = random_boxes(17, 3) * 2 - 20  # partly outside
    assert torch.equal(clip_boxes(b, (31, 47)), torchvision.ops.clip_boxes_to_image(b, (31, 47)))
    assert torch.equal(remove_small_boxes(b, 9.0), torchvision.ops.remove_small_boxes(b, 9.0))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 7.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_decode_match_box_coder(weights, dtype):
    # sides >= 1: scale changes stay below the clamp at log(1000/16), so decoding inverts encoding
    anchors, gt = random_boxes(17, 4, dtype, min_side=1.0), random_boxes(17, 5, dtype, min_side=1.0)
    coder = BoxCoder(weights)
    targets = encode_boxes(anchors, gt, weights)
    assert torch.equal(targets, coder.encode_single(gt, anchors))
    deltas = 2 * torch.randn(17, 12, generator=torch.Generator().manual_seed(6), dtype=dtype)  # 3 classes
    assert torch.equal(decode_boxes(anchors, deltas, weights), coder.decode_single(deltas, anchors))
    assert torch.allclose(decode_boxes(anchors, targets, weights), gt, rtol=1e-5, atol=1e-3 if dtype == torch.float32 else 1e-10)


def test_decode_clamps_huge_scales_like_box_coder():
    anchors = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    deltas = torch.tensor([[0.0, 0.0, 50.0, -3.0]])  # exp(50) would be 5e21
    out = decode_boxes(anchors, deltas)
    assert torch.equal(out, BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas, anchors))
    assert math.isclose(out[0, 2] - out[0, 0], 16 * math.exp(BBOX_XFORM_CLIP), rel_tol=1e-5)  # = 1000
    assert math.isclose(out[0, 3] - out[0, 1], 16 * math.exp(-3), rel_tol=1e-5)  # negative side: not clamped


@pytest.mark.parametrize("call, kind, match", [
    (lambda: box_iou(torch.zeros(3, 5), torch.zeros(2, 4)), ValueError, r"boxes1 must have shape \(N, 4\).*\(3, 5\)"),
    (lambda: box_iou([[0, 0, 1, 1]], torch.zeros(2, 4)), TypeError, "boxes1 must be Tensor; got list"),
    (lambda: encode_boxes(torch.zeros(3, 4), torch.zeros(2, 4)), ValueError, "boxes has N=2 .* N=3"),
    (lambda: encode_boxes(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4)), TypeError,
     "reference must have a floating-point dtype"),
    (lambda: encode_boxes(torch.zeros(1, 4), torch.zeros(1, 4), (1.0, 1.0, 0.0, 1.0)), ValueError,
     r"weights\[2\] must be a number in \(0"),
    (lambda: decode_boxes(torch.zeros(3, 4), torch.zeros(3, 6)), ValueError, r"deltas must have shape \(3, 4 \* C\)"),
    (lambda: clip_boxes(torch.zeros(2, 4), (5,)), ValueError, r"size must be \(height, width\)"),
])
def test_box_errors(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


# --- anchors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image, maps, sizes, ratios", [
    ((100, 130), [(7, 9), (3, 4)], ((32, 64), (45, 128)), ((0.5, 1.0, 2.0), (0.3, 1.7))),
    ((64, 64), [(1, 1)], ((17,),), ((1.0,),)),
    ((97, 113), [(13, 17), (7, 9), (1, 3)], ((8, 11), (32,), (97, 128, 256)), ((1.0, 2.5), (0.5, 1.0, 2.0), (1.0,))),
])
def test_anchors_match_anchor_generator(image, maps, sizes, ratios):
    generator = AnchorGenerator(sizes, ratios)
    images = ImageList(torch.zeros(2, 3, *image), [image, image])
    features = [torch.zeros(2, 1, h, w) for h, w in maps]
    expected = generator(images, features)
    strides = [(image[0] // h, image[1] // w) for h, w in maps]
    got = generate_anchors(maps, strides, sizes, ratios)
    assert all(torch.equal(got, e) for e in expected)
    assert got.shape[0] == sum(h * w * len(s) * len(r) for (h, w), s, r in zip(maps, sizes, ratios))


def test_base_anchors_round_half_to_even_and_keep_area():
    base = base_anchors((45,), (1.0,))
    assert base.tolist() == [[-22.0, -22.0, 22.0, 22.0]]  # 22.5 -> 22 (torch.round)
    wide = base_anchors((64,), (0.25, 1.0, 4.0), dtype=torch.float64)
    area = (wide[:, 2] - wide[:, 0]) * (wide[:, 3] - wide[:, 1])
    assert torch.allclose(area, torch.full((3,), 64.0**2, dtype=torch.float64))
    assert wide[0, 2] - wide[0, 0] == 128 and wide[0, 3] - wide[0, 1] == 32  # ratio h/w = 0.25: wide


def test_anchor_errors():
    with pytest.raises(ValueError, match="one entry per feature map; got 2, 1, 1 and 1"):
        generate_anchors([(2, 2), (1, 1)], [(16, 16)], [(32,)], [(1.0,)])
    with pytest.raises(ValueError, match=r"strides\[0\]\[1\] must be an int in \[1, inf\]; got 0"):
        generate_anchors([(2, 2)], [(16, 0)], [(32,)], [(1.0,)])
    with pytest.raises(ValueError, match=r"aspect_ratios\[1\] must be a number in \(0"):
        base_anchors((32,), (1.0, -2.0))


# --- NMS ------------------------------------------------------------------------------------------------


@st.composite
def nms_case(draw):
    n = draw(st.integers(0, 25))
    coords = draw(st.lists(st.tuples(*[st.integers(0, 24)] * 4), min_size=n, max_size=n))
    scores = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))  # few values: many ties
    dup = draw(st.integers(0, n))  # duplicate some boxes exactly
    rows = [[min(a, c), min(b, d), max(a, c) + draw(st.integers(0, 3)), max(b, d) + draw(st.integers(0, 3))]
            for a, b, c, d in coords]
    rows[:dup] = rows[:dup][::-1] if dup else rows[:dup]
    rows += rows[:dup]
    scores += scores[:dup]
    boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return boxes, torch.tensor(scores, dtype=torch.float32), draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))


@settings(max_examples=150, deadline=None)
@given(nms_case())
def test_nms_matches_torchvision(case):
    boxes, scores, threshold = case
    assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))


@settings(max_examples=80, deadline=None)
@given(nms_case(), st.integers(1, 4), st.integers(0, 10**6))
def test_batched_nms_matches_torchvision(case, categories, seed):
    boxes, scores, threshold = case
    idxs = torch.randint(0, categories, (len(boxes),), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(batched_nms(boxes, scores, idxs, threshold),
                       torchvision.ops.batched_nms(boxes, scores, idxs, threshold))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_real_valued_boxes(dtype):
    # (the float32 / float64 question is real: torchvision compares a float32 IoU with a double
    # threshold, so a float32 IoU of exactly 3/10 counts as > 0.3; see the next test)
    boxes = random_boxes(257, 7, dtype)
    scores = torch.rand(257, generator=torch.Generator().manual_seed(8), dtype=dtype)
    for threshold in (0.1, 0.5, 0.9):
        assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    view = boxes.T.contiguous().T  # non-contiguous
    assert torch.equal(nms(view, scores[::1], 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_threshold_compared_in_float64_as_torchvision():
    boxes = torch.tensor([[1.0, 1, 2, 4], [0, 0, 2, 5]])  # IoU 3/10: 0.3000000119 in float32
    scores = torch.tensor([2.0, 1.0])
    assert torch.equal(nms(boxes, scores, 0.3), torchvision.ops.nms(boxes, scores, 0.3))
    assert nms(boxes, scores, 0.3).tolist() == [0]
    assert nms(boxes.double(), scores.double(), 0.3).tolist() == [0, 1]  # exactly 0.3 in float64: kept


def test_suppressors_are_kept_boxes_that_overlap_enough():
    boxes, scores = random_boxes(60, 9, torch.float64), torch.rand(60, generator=torch.Generator().manual_seed(9))
    result = nms_with_suppressors(boxes, scores, 0.4)
    kept = set(result.keep.tolist())
    iou = box_iou(boxes, boxes)
    for i, by in enumerate(result.suppressed_by.tolist()):
        assert (by == -1) == (i in kept)
        if by >= 0:  # suppressed by an earlier kept box that overlaps it by more than the threshold
            assert by in kept and iou[i, by] > 0.4 and scores[by] >= scores[i]
    # kept boxes never overlap each other by more than the threshold
    k = result.keep
    assert (iou[k][:, k].fill_diagonal_(0) <= 0.4).all()


def test_nms_errors():
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\), one per box; got \(2,\)"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="iou_threshold must be a real number; got str"):
        nms(torch.zeros(3, 4), torch.zeros(3), "0.5")
    with pytest.raises(TypeError, match="idxs must have dtype in"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"idxs must have shape \(3,\)"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(4, dtype=torch.int64), 0.5)


# --- the RPN's logic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize("g, a, seed", [(1, 1, 0), (4, 97, 1), (7, 3, 2)])
def test_match_anchors_equals_matcher(g, a, seed, allow):
    gen = torch.Generator().manual_seed(seed)
    iou = (torch.rand(g, a, generator=gen) * 10).round() / 10  # coarse values: ties and exact thresholds
    assert torch.equal(match_anchors(iou.clone(), 0.7, 0.3, allow), Matcher(0.7, 0.3, allow)(iou.clone()))
    assert torch.equal(match_anchors(iou.clone(), 0.5, 0.5, allow), Matcher(0.5, 0.5, allow)(iou.clone()))


def test_low_quality_matches_give_every_gt_an_anchor():
    iou = torch.tensor([[0.1, 0.2, 0.2], [0.0, 0.6, 0.1]])  # gt 0's best is 0.2 (a tie), gt 1's 0.6
    assert match_anchors(iou, allow_low_quality_matches=False).tolist() == [-1, -2, -1]
    assert match_anchors(iou, allow_low_quality_matches=True).tolist() == [-1, 1, 0]  # anchor 1 keeps its argmax


def test_gt_box_overlapping_no_anchor_makes_every_unmatched_anchor_positive():
    """Documented in rpn.py: torchvision's Matcher gives the same; the course keeps it."""
    anchors = generate_anchors([(4, 4)], [(16, 16)], [(16,)], [(1.0,)])  # 16 anchors around a 64 x 64 image
    gt = torch.tensor([[10.0, 10, 30, 30], [500.0, 500, 520, 520]])  # the second box touches no anchor
    iou = box_iou(gt, anchors)
    assert iou[1].max() == 0
    matches = match_anchors(iou.clone())
    assert torch.equal(matches, Matcher(0.7, 0.3, True)(iou.clone()))
    labels, _ = label_anchors(anchors, gt)
    assert torch.equal(labels, _rpn().assign_targets_to_anchors([anchors], [{"boxes": gt}])[0][0])
    assert bool((labels == 1).all())  # every anchor, also those the first box alone labels otherwise
    alone, _ = label_anchors(anchors, gt[:1])
    assert (alone != 1).any()


def _rpn(pre: int = 50, post: int = 20, min_size: float = 1e-3, score_thresh: float = 0.0) -> RegionProposalNetwork:
    rpn = RegionProposalNetwork(AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),)), RPNHead(4, 6), 0.7, 0.3, 256, 0.5,
                                {"training": pre, "testing": pre}, {"training": post, "testing": post}, 0.7,
                                score_thresh=score_thresh)
    rpn.min_size = min_size
    return rpn.eval()


def test_label_anchors_equal_rpn_assign_targets():
    anchors = generate_anchors([(8, 8)], [(16, 16)], [(32, 64)], [(0.5, 1.0, 2.0)])
    gt = torch.tensor([[10.0, 10, 60, 50], [70, 20, 120, 100], [3, 90, 20, 110]])
    labels, matched = _rpn().assign_targets_to_anchors([anchors], [{"boxes": gt}])
    mine_labels, mine_matched = label_anchors(anchors, gt)
    assert torch.equal(mine_labels, labels[0]) and torch.equal(mine_matched, matched[0])
    assert set(mine_labels.tolist()) == {-1.0, 0.0, 1.0}
    empty_labels, _ = label_anchors(anchors, torch.zeros(0, 4))
    assert torch.equal(empty_labels, _rpn().assign_targets_to_anchors([anchors], [{"boxes": torch.zeros(0, 4)}])[0][0])


@pytest.mark.parametrize("pre, post, min_size, score_thresh", [(50, 20, 1e-3, 0.0), (7, 300, 12.0, 0.4),
                                                                (1000, 5, 0.0, 0.0)])
def test_filter_proposals_equals_rpn(pre, post, min_size, score_thresh):
    gen = torch.Generator().manual_seed(0)
    anchors = torch.cat([generate_anchors([(8, 8)], [(16, 16)], [(32, 64)], [(0.5, 1.0, 2.0)]),
                         generate_anchors([(4, 4)], [(32, 32)], [(96,)], [(1.0,)])])
    per_level = [384, 16]
    deltas = 0.3 * torch.randn(len(anchors), 4, generator=gen)
    logits = torch.randn(len(anchors), generator=gen)
    decoded = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode(deltas, [anchors]).view(1, -1, 4)
    boxes, scores = _rpn(pre, post, min_size, score_thresh).filter_proposals(decoded, logits.view(1, -1),
                                                                             [(128, 120)], per_level)
    got_boxes, got_scores = filter_proposals(anchors, deltas, logits, per_level, (128, 120), pre, post, 0.7,
                                             min_size, score_thresh)
    assert torch.equal(got_boxes, boxes[0]) and torch.equal(got_scores, scores[0])
    assert len(got_boxes) <= post


def test_rpn_errors():
    with pytest.raises(ValueError, match="low_threshold must be a number in"):
        match_anchors(torch.rand(2, 3), 0.3, 0.7)
    with pytest.raises(ValueError, match="iou must have at least one gt box"):
        match_anchors(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"anchors_per_level must sum to the number of anchors \(4\)"):
        filter_proposals(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4), [3], (10, 10))
    with pytest.raises(ValueError, match="logits has A=3"):
        filter_proposals(torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(3), [4], (10, 10))


# --- the RPN's minibatch and loss ---------------------------------------------------------------------


def _rpn_training_case(seed: int, gt: torch.Tensor):
    anchors = generate_anchors([(8, 8)], [(16, 16)], [(32, 64)], [(0.5, 1.0, 2.0)])  # 384 anchors
    rpn = _rpn()
    labels, matched = rpn.assign_targets_to_anchors([anchors], [{"boxes": gt}])
    targets = rpn.box_coder.encode(matched, [anchors])[0]
    gen = torch.Generator().manual_seed(seed)
    return rpn, anchors, labels[0], targets, torch.randn(len(anchors), generator=gen), \
        0.3 * torch.randn(len(anchors), 4, generator=gen)


@pytest.mark.parametrize("batch, fraction", [(256, 0.5), (16, 0.25), (7, 1.0), (0, 0.5), (1000, 0.5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_sample_anchors_equals_balanced_sampler(batch, fraction, seed):
    from torchvision.models.detection._utils import BalancedPositiveNegativeSampler

    gt = torch.tensor([[10.0, 10, 60, 50], [70, 20, 120, 100], [3, 90, 20, 110]])
    _, _, labels, _, _, _ = _rpn_training_case(seed, gt)
    torch.manual_seed(seed)
    pos_mask, neg_mask = BalancedPositiveNegativeSampler(batch, fraction)([labels])
    torch.manual_seed(seed)
    pos, neg = sample_anchors(labels, batch, fraction)
    assert torch.equal(pos, torch.where(pos_mask[0])[0]) and torch.equal(neg, torch.where(neg_mask[0])[0])
    assert len(pos) == min(int((labels == 1).sum()), int(batch * fraction)) and bool((labels[pos] == 1).all())
    assert len(neg) == min(int((labels == 0).sum()), batch - len(pos)) and bool((labels[neg] == 0).all())
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)  # an explicit generator
    assert all(torch.equal(a, b) for a, b in zip(sample_anchors(labels, batch, fraction, gen_a),
                                                  sample_anchors(labels, batch, fraction, gen_b)))


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("gt", [torch.tensor([[10.0, 10, 60, 50], [70, 20, 120, 100], [3, 90, 20, 110]]),
                                torch.zeros(0, 4)], ids=["three-objects", "no-objects"])
def test_rpn_loss_equals_region_proposal_network_compute_loss(seed, gt):
    rpn, anchors, labels, targets, objectness, deltas = _rpn_training_case(seed, gt)
    torch.manual_seed(seed)
    tv_obj, tv_box = rpn.compute_loss(objectness, deltas, [labels], [targets])
    torch.manual_seed(seed)
    pos, neg = sample_anchors(labels, 256, 0.5)
    obj, box = rpn_loss(objectness, deltas, labels, targets, pos, neg)
    assert torch.equal(obj, tv_obj) and torch.equal(box, tv_box)
    if len(gt) == 0:  # no objects: no positives, no box loss
        assert len(pos) == 0 and box.item() == 0.0


def test_rpn_loss_of_an_empty_minibatch_is_nan_as_torchvision():
    labels = torch.full((5,), -1.0)  # every anchor ignored: nothing to sample
    pos, neg = sample_anchors(labels)
    assert len(pos) == len(neg) == 0
    obj, box = rpn_loss(torch.zeros(5), torch.zeros(5, 4), labels, torch.zeros(5, 4), pos, neg)
    assert math.isnan(obj.item()) and math.isnan(box.item())


def test_sample_anchors_errors():
    with pytest.raises(ValueError, match="labels must have 1 dim"):
        sample_anchors(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"positive_fraction must be a number in \[0(\.0)?, 1(\.0)?\]"):
        sample_anchors(torch.zeros(3), positive_fraction=1.5)
    with pytest.raises(ValueError, match="deltas has A=3"):
        rpn_loss(torch.zeros(4), torch.zeros(3, 4), torch.zeros(4), torch.zeros(4, 4), torch.zeros(0, dtype=torch.long),
                 torch.zeros(0, dtype=torch.long))
