"""The anchors-and-NMS widget (course_lib.detection.anchors_view), moved headlessly, and the exercises of
chapter 7 (course_lib.detection.exercises) with right and wrong learner functions."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision

from course_lib.detection import (
    anchors_nms_state,
    anchors_nms_view,
    anchors_nms_widget,
    box_iou,
    encode_boxes,
    example_scene,
    label_anchors,
    nms,
)
from course_lib.detection.exercises import encode_box, greedy_nms, iou_of_two_boxes


def test_scene_is_deterministic_and_proposals_cluster_on_objects():
    a, b = example_scene(0), example_scene(0)
    assert torch.equal(a.proposals, b.proposals) and torch.equal(a.scores, b.scores)
    assert box_iou(a.proposals, a.gt_boxes).max(dim=1).values.min() > 0.3  # every proposal near an object
    assert not torch.equal(example_scene(1).proposals, a.proposals)


def test_state_labels_every_anchor_with_the_full_rule_and_samples_a_minibatch():
    """Pure state, no matplotlib: labels equal label_anchors (low-quality matches included)."""
    state = anchors_nms_state(row=2, col=2, size=32, ratios="0.5, 1, 2", iou_threshold=0.5)
    scene = example_scene(0)
    assert len(state.anchors) == 8 * 8 * 3
    labels, _ = label_anchors(state.anchors, scene.gt_boxes)
    assert torch.equal(state.labels, labels)
    best = box_iou(scene.gt_boxes, state.anchors).max(0).values
    assert torch.equal(state.best_iou, best)
    # the low-quality rule matters here: some positives sit below 0.7, each the best anchor of a gt
    assert state.low_quality.any() and bool((best[state.low_quality] < 0.7).all())
    per_gt_best = box_iou(scene.gt_boxes, state.anchors).max(1).values  # (G,)
    for a in torch.where(state.low_quality)[0].tolist():
        assert bool((box_iou(scene.gt_boxes, state.anchors[[a]])[:, 0] == per_gt_best).any())
    # minibatch: at most half positive, only labelled anchors, reproducible by seed
    pos, neg = state.sampled_positive, state.sampled_negative
    assert len(pos) == min(16, int((labels == 1).sum())) and len(pos) + len(neg) == 32
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())
    again = anchors_nms_state(sample_seed=0)
    assert torch.equal(again.sampled_negative, neg)
    assert not torch.equal(anchors_nms_state(sample_seed=1).sampled_negative, neg)
    assert torch.equal(state.cell, torch.arange((2 * 8 + 2) * 3, (2 * 8 + 2) * 3 + 3))
    keep = nms(scene.proposals, scene.scores, 0.5)
    assert torch.equal(state.keep, keep)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.row = 3  # type: ignore[misc]


def test_view_caption_lists_anchors_and_nms_decisions():
    view = anchors_nms_view(row=2, col=2, size=32, ratios="0.5, 1, 2", iou_threshold=0.5)
    assert "cell (2, 2) -> anchor centre (32, 32) px" in view.caption
    assert "ratio 1: box [16, 16, 48, 48]" in view.caption
    scene = example_scene(0)
    keep = nms(scene.proposals, scene.scores, 0.5)
    assert f"kept {len(keep)} of {len(scene.proposals)} proposals ({', '.join(map(str, keep.tolist()))})" in view.caption
    assert view.caption.count("suppressed by box") == len(scene.proposals) - len(keep)
    assert "minibatch of 32 (at most half positive)" in view.caption and "as a gt's best anchor" in view.caption
    assert len(view.figure.axes) == 2
    for ax in view.figure.axes:  # tick labels every 32 px: no "112128"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "32", "64", "96", "128"]
        assert all(t.get_fontsize() >= 9 for t in ax.get_xticklabels())


def test_view_reacts_to_each_control():
    base = anchors_nms_view()
    assert anchors_nms_view(iou_threshold=0.95).caption.count("suppressed by") < base.caption.count("suppressed by")
    assert anchors_nms_view(iou_threshold=0.05).caption.count("suppressed by") > base.caption.count("suppressed by")
    assert anchors_nms_view(ratios="1").caption.count("  ratio ") == 1
    assert anchors_nms_view(ratios="0.25 … 4").caption.count("  ratio ") == 5
    # a wide anchor on the wide yellow rectangle (36, 78, 116, 118) is positive
    on_object = anchors_nms_view(row=6, col=5, size=56, ratios="0.5, 1, 2")
    assert "ratio 0.5: box [40, 76, 120, 116]" in on_object.caption and "-> positive" in on_object.caption
    state = anchors_nms_state(row=6, col=5, size=56, ratios="0.5, 1, 2")
    for line, a in zip(on_object.caption.splitlines()[1:4], state.cell.tolist()):  # caption == state
        assert f"best IoU {state.best_iou[a].item():.2f} -> {state.label_name(a)}" in line
    assert "-> negative" in anchors_nms_view(row=0, col=7, size=16).caption


def test_view_errors():
    with pytest.raises(ValueError, match=r"row must be an int in \[0, 7\]; got 8"):
        anchors_nms_view(row=8)
    with pytest.raises(ValueError, match="ratios must be one of"):
        anchors_nms_view(ratios="3")
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \[0, 1\]"):
        anchors_nms_view(iou_threshold=1.5)


def test_widget_moves_headlessly():
    w = anchors_nms_widget()
    caption, image = w.caption.value, bytes(w.image.value)
    w.controls["iou_threshold"].value = 0.9
    assert w.caption.value != caption and bytes(w.image.value) != image
    assert "NMS at IoU threshold 0.90" in w.caption.value
    w.controls["col"].value = 5
    assert "cell (2, 5)" in w.caption.value
    w.controls["ratios"].value = "1"
    assert w.caption.value.count("  ratio ") == 1
    before, image = w.caption.value, bytes(w.image.value)
    w.controls["sample_seed"].value = 4
    assert w.caption.value == before and bytes(w.image.value) != image and w.renders == 5  # a new draw, same counts


# --- exercises ------------------------------------------------------------------------------------------


def test_iou_exercise():
    def right(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    def clamp_product(a, b):  # clamps the area, not each side: two negative sides make a positive area
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        inter = max(0.0, w * h)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    def over_sum(a, b):  # intersection over the sum of areas
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]))

    assert iou_of_two_boxes.check(right, quiet=True)
    for wrong in (clamp_product, over_sum):
        result = iou_of_two_boxes.check(wrong, quiet=True)
        assert not result and result.attempted and result.failing_case is not None and "a = (" in result.message


def test_encode_exercise():
    def right(anchor, gt):
        aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
        gw, gh = gt[2] - gt[0], gt[3] - gt[1]
        return torch.stack([((gt[0] + gt[2]) - (anchor[0] + anchor[2])) / (2 * aw),
                            ((gt[1] + gt[3]) - (anchor[1] + anchor[3])) / (2 * ah),
                            torch.log(gw) - torch.log(aw), torch.log(gh) - torch.log(ah)])

    def corners_not_centres(anchor, gt):
        aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
        return torch.stack([(gt[0] - anchor[0]) / aw, (gt[1] - anchor[1]) / ah,
                            torch.log((gt[2] - gt[0]) / aw), torch.log((gt[3] - gt[1]) / ah)])

    def divide_by_gt(anchor, gt):
        aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]
        gw, gh = gt[2] - gt[0], gt[3] - gt[1]
        return torch.stack([((gt[0] + gt[2]) - (anchor[0] + anchor[2])) / (2 * gw),
                            ((gt[1] + gt[3]) - (anchor[1] + anchor[3])) / (2 * gh), torch.log(gw / aw),
                            torch.log(gh / ah)])

    def stub(anchor, gt):
        raise NotImplementedError  # your code here

    assert encode_box.check(right, quiet=True)
    for wrong in (corners_not_centres, divide_by_gt):
        result = encode_box.check(wrong, quiet=True)
        assert not result and result.attempted and "anchor = tensor" in result.message
    result = encode_box.check(stub, quiet=True)
    assert not result and not result.attempted and "not attempted" in result.message


def test_nms_exercise():
    def right(boxes, scores, iou_threshold):  # the learner's loop, written from the paper
        order = sorted(range(len(scores)), key=lambda i: -scores[i].item())  # Python's sort is stable
        iou = box_iou(boxes, boxes)
        keep = []
        for i in order:
            if all(iou[i, k] <= iou_threshold for k in keep):
                keep.append(i)
        return torch.tensor(keep, dtype=torch.int64)

    def suppressed_also_suppress(boxes, scores, iou_threshold):
        order = sorted(range(len(scores)), key=lambda i: -scores[i].item())
        iou = box_iou(boxes, boxes)
        keep = [i for n, i in enumerate(order) if all(iou[i, k] <= iou_threshold for k in order[:n])]
        return torch.tensor(keep, dtype=torch.int64)

    def unstable_ties(boxes, scores, iou_threshold):
        order = sorted(range(len(scores)), key=lambda i: (-scores[i].item(), -i))  # later index first on ties
        iou = box_iou(boxes, boxes)
        keep = []
        for i in order:
            if all(iou[i, k] <= iou_threshold for k in keep):
                keep.append(i)
        return torch.tensor(keep, dtype=torch.int64)

    assert greedy_nms.check(right, quiet=True)
    for wrong in (suppressed_also_suppress, unstable_ties):
        result = greedy_nms.check(wrong, quiet=True)
        assert not result and result.attempted and "boxes = tensor" in result.message


def _unstable_sort_nms(boxes, scores, iou_threshold):  # torch.sort without stable=True
    order = torch.sort(scores, descending=True).indices.tolist()
    iou = box_iou(boxes, boxes)
    keep = []
    for i in order:
        if all(iou[i, k] <= iou_threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.int64)


def _greater_or_equal_nms(boxes, scores, iou_threshold):  # >= in place of >
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    iou = box_iou(boxes, boxes)
    keep = []
    for i in order:
        if all(iou[i, k] < iou_threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.int64)


@pytest.mark.parametrize("wrong, case", [(_unstable_sort_nms, 5), (_greater_or_equal_nms, 6)])
def test_nms_exercise_catches_unstable_sort_and_greater_or_equal(wrong, case):
    """Issue 16: a many-way score tie and an IoU exactly at the threshold are edge cases."""
    result = greedy_nms.check(wrong, quiet=True)
    assert not result and result.failing_case is greedy_nms.edge_cases[case - 1]
    assert f"edge case {case} of" in result.message


# The library function each exercise teaches: its solution must not call it (nor torchvision).
TAUGHT = {"iou_of_two_boxes": {"box_iou", "box_area"}, "encode_box": {"encode_boxes", "decode_boxes"},
          "greedy_nms": {"nms", "batched_nms", "nms_with_suppressors"}}


def _names_used(fn) -> set[str]:
    code, names = fn.__code__, set()
    stack = [code]
    while stack:  # nested functions and comprehensions too
        c = stack.pop()
        names |= set(c.co_names) | set(c.co_freevars)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return names


@pytest.mark.parametrize("name", sorted(TAUGHT))
def test_no_solution_merely_calls_the_function_it_teaches(name):
    from course_lib.detection import exercises

    exercise = getattr(exercises, name)
    used = _names_used(exercise.reference)
    assert not used & (TAUGHT[name] | {"torchvision", "ops"}), used
    assert len(exercise.reference.__code__.co_code) > 60  # more than a one-line call


@pytest.mark.parametrize("name, library", [
    ("iou_of_two_boxes", lambda a, b: box_iou(torch.tensor([a], dtype=torch.float64),
                                              torch.tensor([b], dtype=torch.float64)).item()),
    ("encode_box", lambda anchor, gt: encode_boxes(anchor[None], gt[None])[0]),
    ("greedy_nms", lambda boxes, scores, iou_threshold: torchvision.ops.nms(boxes, scores, iou_threshold)),
])
def test_each_solution_equals_the_library_on_every_case(name, library):
    from course_lib.detection import exercises

    exercise = getattr(exercises, name)
    for case in exercise.cases():
        assert exercise.equal(exercise.reference(**case), library(**case)), case
