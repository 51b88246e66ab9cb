"""Faster R-CNN's building blocks: boxes, anchors, NMS, RoI pooling / RoI Align, the RPN (chapter 7).

Faster R-CNN (Ren et al., 2015, https://arxiv.org/abs/1506.01497) detects objects in two stages:
a backbone turns the image into a feature map; a *Region Proposal Network* scores a fixed grid
of *anchors* and regresses them into a few hundred *proposals* (kept by NMS); *RoI pooling*
(RoI Align since Mask R-CNN, He et al. 2017, https://arxiv.org/abs/1703.06870) cuts a
fixed-size feature grid out for each proposal; the *RoI heads* classify it and refine its box.

Modules, bottom-up (each module's docstring is its concept card):

* :mod:`~course_lib.detection.boxes` — :func:`box_iou`, :func:`encode_boxes`, :func:`decode_boxes`,
  :func:`clip_boxes`, :func:`remove_small_boxes`.
* :mod:`~course_lib.detection.anchors` — :func:`base_anchors`, :func:`generate_anchors`.
* :mod:`~course_lib.detection.nms` — :func:`nms`, :func:`batched_nms`, :func:`nms_with_suppressors`.
* :mod:`~course_lib.detection.roi` — :func:`roi_pool`, :func:`roi_align`, :func:`roi_align_sample_points`.
* :mod:`~course_lib.detection.rpn` — :func:`match_anchors`, :func:`label_anchors`,
  :func:`sample_anchors`, :func:`rpn_loss`, :func:`filter_proposals`.
* :mod:`~course_lib.detection.anchors_view` — the anchors-and-NMS widget
  (:func:`anchors_nms_state` pure, its view and widget); :mod:`~course_lib.detection.exercises`;
  :mod:`~course_lib.detection.experiment` — the notebook's measurements (not re-exported).

Everything is checked against torchvision (``torchvision.ops`` and
``torchvision.models.detection``). Notebook: ``notebooks/07_faster_rcnn``.
Tests: ``tests/test_detection*.py``.
"""

from course_lib.detection.anchors import base_anchors, generate_anchors
from course_lib.detection.anchors_view import (
    AnchorsNmsState,
    Scene,
    anchors_nms_state,
    anchors_nms_view,
    anchors_nms_widget,
    example_scene,
)
from course_lib.detection.boxes import (
    BBOX_XFORM_CLIP,
    box_area,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    remove_small_boxes,
)
from course_lib.detection.nms import NmsResult, batched_nms, nms, nms_with_suppressors
from course_lib.detection.roi import roi_align, roi_align_sample_points, roi_pool, rois_from_boxes
from course_lib.detection.rpn import filter_proposals, label_anchors, match_anchors, rpn_loss, sample_anchors

__all__ = [
    "AnchorsNmsState",
    "BBOX_XFORM_CLIP",
    "NmsResult",
    "Scene",
    "anchors_nms_state",
    "anchors_nms_view",
    "anchors_nms_widget",
    "base_anchors",
    "batched_nms",
    "box_area",
    "box_iou",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "example_scene",
    "filter_proposals",
    "generate_anchors",
    "label_anchors",
    "match_anchors",
    "nms",
    "nms_with_suppressors",
    "remove_small_boxes",
    "roi_align",
    "roi_align_sample_points",
    "roi_pool",
    "rois_from_boxes",
    "rpn_loss",
    "sample_anchors",
]
