"""The Region Proposal Network's bookkeeping: labelling anchors, and turning scores into proposals.

Faster R-CNN's RPN (Ren et al., 2015, https://arxiv.org/abs/1506.01497, §3.1) is a small conv
head that predicts, per anchor, an objectness logit and four box deltas. Around it sit two
pieces of plain logic:

**Training: which anchors are objects?** With ``iou[g, a]`` the IoU of ground truth ``g`` and
anchor ``a`` (§3.1.2)::

    best[a] = max_g iou[g, a],  match[a] = argmax_g iou[g, a]
    best >= high                 -> positive (label 1), regress towards gt match[a]
    best <  low                  -> negative (label 0)
    low <= best < high           -> ignored  (label -1), no loss
    allow_low_quality_matches:   every anchor that is (one of) the best for some gt
                                 is positive too, even below `high`

(the RPN uses high = 0.7, low = 0.3 and allows low-quality matches, so every object has at
least one positive anchor). A ground-truth box that overlaps *no* anchor (IoU 0 with all of
them, e.g. a box outside the anchors' reach) has best IoU 0, and every anchor "ties" at that
best: the low-quality rule then makes **every anchor positive**, each matched to its own best gt
(gt 0, the first, for anchors that overlap nothing), as torchvision's ``Matcher`` does. The course keeps this
behaviour (a test pins it) and the notebook shows it; filter such boxes out of the targets.
:func:`match_anchors` returns the match index with ``-1`` (below
low) and ``-2`` (between) as torchvision's ``Matcher``; :func:`label_anchors` turns it into
labels and the matched boxes.

**The loss** (§3.1.3): per image, :func:`sample_anchors` draws a minibatch of
``batch_size_per_image = 256`` labelled anchors, at most ``positive_fraction = 0.5`` of them
positive (fewer when there are fewer positives; negatives fill the rest), uniformly at random
(``torch.randperm``, in torchvision's order of calls, so a fixed seed draws the same anchors).
:func:`rpn_loss` is then binary cross-entropy of the objectness logits over the sampled anchors
(mean) plus smooth-L1 (``β = 1/9``) of the deltas over the sampled *positives*, summed and
divided by the number of sampled anchors::

    L = mean_{a ∈ S} BCE(o_a, y_a) + Σ_{a ∈ S+} smoothL1_{1/9}(t_a - t*_a) / |S|

**Inference: proposals** (§3.3): per feature level keep the ``pre_nms_top_n`` highest logits →
decode their deltas → clip to the image → drop boxes with a side < ``min_size`` → drop
``sigmoid(logit) < score_thresh`` → NMS per level (:func:`~course_lib.detection.batched_nms`)
→ keep the ``post_nms_top_n`` best.

Differences from torchvision: none intended — :func:`match_anchors` equals
``torchvision.models.detection._utils.Matcher``, :func:`label_anchors` the labels of
``RegionProposalNetwork.assign_targets_to_anchors`` and :func:`filter_proposals`
``RegionProposalNetwork.filter_proposals`` for one image (torchvision decodes first, in
``forward``; here the decoding is part of the function); :func:`sample_anchors` equals
``BalancedPositiveNegativeSampler`` and :func:`rpn_loss` ``RegionProposalNetwork.compute_loss``
under the same seed. Limitation: one image at a time.

Notebook: ``07_faster_rcnn`` §6 (the RPN). Tests: ``tests/test_detection.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.detection.boxes import _boxes, box_iou, clip_boxes, decode_boxes, remove_small_boxes
from course_lib.detection.nms import batched_nms

BELOW_LOW_THRESHOLD = -1  # match index of a negative anchor
BETWEEN_THRESHOLDS = -2  # match index of an ignored anchor


@export("detection.match_anchors")
def match_anchors(iou: torch.Tensor, high_threshold: float = 0.7, low_threshold: float = 0.3,
                  allow_low_quality_matches: bool = True) -> torch.Tensor:
    """Match each anchor (column) to a ground-truth box (row) of ``iou (Tensor[G, A])``.

    Returns:
        Tensor[A] int64: the matched gt index, or -1 (best IoU < low), -2 (low <= best < high).

    Raises:
        ValueError: an empty matrix (no gt or no anchors), or ``low_threshold > high_threshold``.
    """
    _checks.tensor("iou", iou, ndim=2)
    high = _checks.real("high_threshold", high_threshold)
    low = _checks.real("low_threshold", low_threshold, maximum=high)
    _checks.instance("allow_low_quality_matches", allow_low_quality_matches, bool)
    if iou.numel() == 0:
        raise ValueError(f"iou must have at least one gt box and one anchor; got shape {tuple(iou.shape)}")
    best, matches = iou.max(dim=0)  # (A,): best gt per anchor
    candidates = matches.clone()
    matches[best < low] = BELOW_LOW_THRESHOLD
    matches[(best >= low) & (best < high)] = BETWEEN_THRESHOLDS
    if allow_low_quality_matches:
        best_per_gt = iou.max(dim=1).values  # (G,)
        _, anchors = torch.where(iou == best_per_gt[:, None])  # every (gt, anchor) pair at a gt's best, ties too
        matches[anchors] = candidates[anchors]
    return matches


@export("detection.label_anchors")
def label_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, high_threshold: float = 0.7,
                  low_threshold: float = 0.3,
                  allow_low_quality_matches: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """RPN training labels: ``(labels (Tensor[A]), matched_boxes (Tensor[A, 4]))``.

    ``labels`` is 1.0 (object), 0.0 (background) or -1.0 (ignored); ``matched_boxes[a]`` is the
    gt box anchor ``a`` regresses towards (gt 0 for anchors that are not positive, as in
    torchvision; their regression loss is not computed). No gt boxes: every anchor is background.
    """
    _boxes("anchors", anchors)
    _boxes("gt_boxes", gt_boxes)
    if gt_boxes.shape[0] == 0:
        return torch.zeros(anchors.shape[0], dtype=anchors.dtype, device=anchors.device), torch.zeros_like(anchors)
    matches = match_anchors(box_iou(gt_boxes, anchors), high_threshold, low_threshold, allow_low_quality_matches)
    matched = gt_boxes[matches.clamp(min=0)]  # (A, 4)
    labels = (matches >= 0).to(anchors.dtype)
    labels[matches == BETWEEN_THRESHOLDS] = -1.0
    return labels, matched


@export("detection.sample_anchors")
def sample_anchors(labels: torch.Tensor, batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the RPN's minibatch: ``(positive (Tensor[P]), negative (Tensor[Q]))`` anchor indices.

    Args:
        labels (Tensor[A]): 1 (object), 0 (background), -1 (ignored), as :func:`label_anchors`.
        batch_size_per_image: anchors per image in the loss (256 in Faster R-CNN).
        positive_fraction: at most this share of them positive (0.5).
        generator: the random source; ``None`` draws from torch's global generator, as
            torchvision does (so ``torch.manual_seed`` before both draws the same anchors).

    Returns:
        The sampled positive and negative indices, each in increasing order (torchvision returns
        them as masks; ``torch.where(mask)`` gives this order). ``P = min(#positives,
        ⌊batch · fraction⌋)``, ``Q = min(#negatives, batch - P)``.

    Raises:
        TypeError / ValueError: ``labels`` not a 1-D tensor, or sizes out of range.
    """
    _checks.tensor("labels", labels, ndim=1)
    batch = _checks.integer("batch_size_per_image", batch_size_per_image, minimum=0)
    fraction = _checks.real("positive_fraction", positive_fraction, minimum=0.0, maximum=1.0)
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch * fraction))
    num_neg = min(negative.numel(), batch - num_pos)
    # Two permutations, positives first, as torchvision draws them: the same seed, the same anchors.
    chosen_pos = positive[torch.randperm(positive.numel(), generator=generator, device=labels.device)[:num_pos]]
    chosen_neg = negative[torch.randperm(negative.numel(), generator=generator, device=labels.device)[:num_neg]]
    return chosen_pos.sort().values, chosen_neg.sort().values


@export("detection.rpn_loss")
def rpn_loss(objectness: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
             positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RPN's two losses on a sampled minibatch (module docstring).

    Args:
        objectness (Tensor[A]): predicted logits.
        deltas (Tensor[A, 4]): predicted ``(dx, dy, dw, dh)``.
        labels (Tensor[A]): 1 / 0 / -1 from :func:`label_anchors`.
        targets (Tensor[A, 4]): ``encode_boxes(anchors, matched_boxes)``.
        positive, negative (Tensor[P], Tensor[Q]): the minibatch from :func:`sample_anchors`.

    Returns:
        ``(objectness_loss, box_loss)``, scalars. An empty minibatch gives ``nan`` for both
        (0 / 0, as torchvision's mean over nothing).

    Raises:
        TypeError / ValueError: shapes that do not agree.
    """
    dims = _checks.shape("objectness", objectness, "A")
    _checks.shape("deltas", deltas, "A 4", dims)
    _checks.shape("labels", labels, "A", dims)
    _checks.shape("targets", targets, "A 4", dims)
    _checks.tensor("positive", positive, ndim=1)
    _checks.tensor("negative", negative, ndim=1)
    sampled = torch.cat([positive, negative])  # (P + Q,)
    box_loss = F.smooth_l1_loss(deltas[positive], targets[positive], beta=1 / 9, reduction="sum") / sampled.numel()
    objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled].to(objectness.dtype))
    return objectness_loss, box_loss


@export("detection.filter_proposals")
def filter_proposals(anchors: torch.Tensor, deltas: torch.Tensor, logits: torch.Tensor,
                     anchors_per_level: Sequence[int], image_size: tuple[int, int], pre_nms_top_n: int = 1000,
                     post_nms_top_n: int = 1000, nms_threshold: float = 0.7, min_size: float = 1e-3,
                     score_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The RPN's proposals for one image (module docstring), as torchvision's ``filter_proposals``.

    Args:
        anchors (Tensor[A, 4]): all anchors, level after level.
        deltas (Tensor[A, 4]): the RPN's predicted ``(dx, dy, dw, dh)`` (weights 1, 1, 1, 1).
        logits (Tensor[A]): the RPN's objectness logits.
        anchors_per_level: how many of the A anchors belong to each level (sums to A).
        image_size: ``(height, width)`` to clip to.
        pre_nms_top_n: kept per level before NMS. post_nms_top_n: kept in total after it.
        nms_threshold: IoU above which NMS suppresses (0.7 in Faster R-CNN).
        min_size: smallest side kept, in pixels. score_threshold: smallest ``sigmoid(logit)`` kept.

    Returns:
        ``(boxes (Tensor[P, 4]), scores (Tensor[P]))``, by decreasing score.
    """
    dims = _checks.shape("anchors", _boxes("anchors", anchors), "A 4")
    _checks.shape("deltas", deltas, "A 4", dims)
    _checks.shape("logits", logits, "A", dims)
    if sum(anchors_per_level) != anchors.shape[0]:
        raise ValueError(f"anchors_per_level must sum to the number of anchors ({anchors.shape[0]}); "
                         f"got {list(anchors_per_level)}")
    pre = _checks.integer("pre_nms_top_n", pre_nms_top_n, minimum=1)
    post = _checks.integer("post_nms_top_n", post_nms_top_n, minimum=1)
    logits = logits.detach()
    picked, offset = [], 0
    for n in anchors_per_level:  # top-n per level, so a big level cannot crowd out a small one
        picked.append(logits[offset:offset + n].topk(min(pre, n)).indices + offset)
        offset += n
    idx = torch.cat(picked)  # (P0,)
    levels = torch.repeat_interleave(torch.arange(len(anchors_per_level), device=anchors.device),
                                     torch.as_tensor(list(anchors_per_level), device=anchors.device))[idx]  # (P0,)
    boxes = clip_boxes(decode_boxes(anchors[idx], deltas[idx].detach()), image_size)  # (P0, 4)
    scores = torch.sigmoid(logits[idx])
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    keep = torch.where(scores >= score_threshold)[0]
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    keep = batched_nms(boxes, scores, levels, nms_threshold)[:post]
    return boxes[keep], scores[keep]
