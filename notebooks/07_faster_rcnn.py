# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7 · Faster R-CNN: anchors, RPN, RoI pooling / RoI Align, NMS
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/07_faster_rcnn.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F07_faster_rcnn.ipynb)
#
# A classifier answers "what is in this image?". A detector answers "what is *where*?" — a
# variable number of boxes, each with a class. Faster R-CNN (Ren et al., 2015) made this fast
# and trainable end to end with one idea: let the network *propose* the regions worth looking
# at, from a fixed grid of reference boxes called **anchors**, and then look closely at a few
# hundred of them. Every two-stage detector since (Mask R-CNN, Cascade R-CNN, …) keeps its
# skeleton, and its small pieces — IoU, box encoding, anchors, NMS, RoI Align — reappear in
# one-stage detectors too.
#
# This chapter builds those pieces in `course_lib.detection`, checks each against torchvision
# (`torchvision.ops` and `torchvision.models.detection`) on awkward inputs, measures why RoI
# Align replaced RoI pooling, and trains a tiny Faster R-CNN for a few steps to see the four
# losses, then long enough to detect (AP@0.5 on held-out images). Everything runs on a CPU in
# about two minutes.
#
# **You will be able to**
# 1. compute IoU and Faster R-CNN's box encoding, and say why the targets are size-independent;
# 2. generate a feature map's anchors and label them with the RPN's full rule (incl. the best anchor
#    of each object), and sample the RPN's minibatch and compute its loss;
# 3. run greedy NMS by hand — its stable tie order and its strict `>` — and check it against torchvision;
# 4. explain, with a measurement, why RoI Align replaced RoI pooling and what `aligned=True` fixes;
# 5. train a tiny Faster R-CNN until it detects, and measure it with AP@0.5.
#
# **Prerequisites:** PyTorch tensors and autograd (chapter 1), convolutions; no detection background.
# **Time:** about 90 minutes (the notebook itself runs in about two minutes on a CPU).

# %%
import sys  # On Colab only: install this course at this notebook's version. GPU: Runtime > Change runtime type.

if "google.colab" in sys.modules:
    import importlib.metadata
    import re
    import subprocess

    # The course without its dependencies, then its requirements by name only: pip adds what Colab
    # lacks and leaves every package Colab has (torch, ipywidgets 7, the kernel) as it is.
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "git+https://github.com/dl-systems-course/dl-systems-course@v0.1.0"], check=True)
    names = [re.sub(r"^([\w.-]+)[^;]*", r"\1", r) for r in importlib.metadata.requires("course-lib") if "extra ==" not in r]
    subprocess.run([*pip, *names], check=True)

# %%
import math

import matplotlib.pyplot as plt
import torch
import torchvision
from matplotlib.patches import Rectangle

from course_lib import runtime
from course_lib.source import show_source

print("device:", runtime.device(), "| torchvision", torchvision.__version__)

# %% [markdown]
# ## 1 · The two-stage pipeline
#
# ```text
#  image ──► backbone ──► feature map (C × H/16 × W/16)
#                           │
#                           ├──► RPN head: per cell, per anchor ─► objectness logit + (dx, dy, dw, dh)
#                           │        │ decode deltas on the anchors, clip, drop tiny boxes,
#                           │        │ top-n per level, NMS(0.7) ─► ~1000 proposals
#                           │        ▼
#                           └──► RoI pooling / RoI Align: a fixed 7 × 7 × C grid per proposal
#                                    │
#                                    ▼
#                                RoI heads (MLP) ─► class scores + class-specific box deltas
#                                    │ decode, per-class NMS(0.5) ─► detections
# ```
#
# Training adds two matching problems: anchors are labelled object / background / ignored by
# their IoU with the ground truth (the RPN's loss), and so are the proposals (the heads' loss).
# Each box in the diagram is a function in `course_lib.detection`:
#
# | step | `course_lib.detection` | torchvision |
# | --- | --- | --- |
# | overlap | `box_iou` | `ops.box_iou` |
# | regression targets | `encode_boxes` / `decode_boxes` | `models.detection._utils.BoxCoder` |
# | anchors | `generate_anchors` | `models.detection.anchor_utils.AnchorGenerator` |
# | labels for the RPN | `match_anchors`, `label_anchors` | `_utils.Matcher`, `RegionProposalNetwork.assign_targets_to_anchors` |
# | proposals | `filter_proposals` (uses `nms`, `batched_nms`) | `RegionProposalNetwork.filter_proposals`, `ops.nms` |
# | features per box | `roi_pool`, `roi_align` | `ops.roi_pool`, `ops.roi_align` |
#
# ## 2 · IoU and the box encoding
#
# Boxes are $(x_1, y_1, x_2, y_2)$. Their overlap is the **intersection over union**
# $\mathrm{IoU}(a, b) = |a \cap b| \,/\, (|a| + |b| - |a \cap b|)$, computed for all pairs at
# once by `course_lib.detection.box_iou`:

# %%
from course_lib.detection import box_iou, decode_boxes, encode_boxes

show_source(box_iou)

# %% tags=["nbval-check-output"]
a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 10.0, 10.0]])
b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [5.0, 5.0, 5.0, 5.0]])  # overlapping, touching, a point
print(box_iou(a, b))
assert torch.allclose(box_iou(a, b)[0, 0], torch.tensor(1 / 7))  # 1 / (4 + 4 - 1)
assert torch.equal(box_iou(a, b), torchvision.ops.box_iou(a, b))

# %% [markdown]
# The network does not predict corners. It predicts how to move and stretch a **reference box**
# $a$ (an anchor, or later a proposal) onto the object $g$, in units of the reference's size:
#
# $$d_x = w_x\,\frac{g_x - a_x}{a_w},\quad d_y = w_y\,\frac{g_y - a_y}{a_h},\quad
#   d_w = w_w \log\frac{g_w}{a_w},\quad d_h = w_h \log\frac{g_h}{a_h}$$
#
# with centres $(x, y)$, sizes $(w, h)$ and weights $(1,1,1,1)$ in the RPN, $(10,10,5,5)$ in the
# heads. Size-independent targets make one regressor serve boxes of every size. Decoding
# clamps $d_w, d_h$ at $\log(1000/16)$ so that an untrained network cannot make `exp` overflow.

# %%
show_source(decode_boxes)

# %%
from torchvision.models.detection._utils import BoxCoder

gen = torch.Generator().manual_seed(0)
xy = 50 * torch.rand(97, 2, generator=gen, dtype=torch.float64)
anchors97 = torch.cat([xy, xy + 1 + 30 * torch.rand(97, 2, generator=gen, dtype=torch.float64)], 1)
gt97 = torch.cat([xy, xy + 1 + 30 * torch.rand(97, 2, generator=gen, dtype=torch.float64)], 1)
for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
    coder = BoxCoder(weights)
    targets = encode_boxes(anchors97, gt97, weights)
    assert torch.equal(targets, coder.encode_single(gt97, anchors97))  # note torchvision's argument order
    assert torch.equal(decode_boxes(anchors97, targets, weights), coder.decode_single(targets, anchors97))
    assert torch.allclose(decode_boxes(anchors97, targets, weights), gt97)  # decode inverts encode
print("encode_boxes / decode_boxes == torchvision's BoxCoder, and decode(encode(g)) == g")

# %% [markdown]
# ## 3 · Anchors
#
# At every cell $(i, j)$ of a feature map with stride $s$, the RPN considers $k$ anchors: for
# each aspect ratio $r = h/w$ and size $S$, a box of width $S/\sqrt r$ and height $S\sqrt r$
# (area $S^2$) centred at $(j s, i s)$ — torchvision centres anchors on the cell's top-left
# corner, and so does Detectron2 by default (its config `MODEL.ANCHOR_GENERATOR.OFFSET = 0.0`,
# although its comment recommends 0.5, half a stride); the original Caffe Faster R-CNN and
# Detectron built the base anchor as the pixel box $[0, 0, s-1, s-1]$, centred at
# $((s-1)/2, (s-1)/2) = (7.5, 7.5)$ for $s = 16$. The offset shifts every anchor by the same
# amount, and the regression absorbs it. `course_lib.detection.generate_anchors` builds them for
# several feature maps; the order (cells row by row, then ratios, then sizes) matters, because the
# RPN head's output channels must line up with it.

# %%
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from course_lib.detection import base_anchors, generate_anchors

show_source(generate_anchors)
sizes, ratios = ((32, 64), (45, 128, 256)), ((0.5, 1.0, 2.0), (0.5, 1.0, 2.0))
maps = [(25, 32), (13, 16)]  # two feature maps of a 400 x 512 image
anchors = generate_anchors(maps, [(400 // h, 512 // w) for h, w in maps], sizes, ratios)
reference = AnchorGenerator(sizes, ratios)(ImageList(torch.zeros(1, 3, 400, 512), [(400, 512)]),
                                           [torch.zeros(1, 1, h, w) for h, w in maps])[0]
assert torch.equal(anchors, reference)
print(f"{len(anchors)} anchors == torchvision's AnchorGenerator; the base anchors of level 1:\n",
      base_anchors(sizes[1], ratios[1]))

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.5))
cell_anchors = generate_anchors([(1, 1)], [(16, 16)], [(32, 64, 128)], [(0.5, 1.0, 2.0)])
for box, colour in zip(cell_anchors, ["tab:blue", "tab:orange", "tab:green"] * 3):
    x1, y1, x2, y2 = box.tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
ax.plot(0, 0, "k+", markersize=12)
ax.set_xlim(-100, 100)
ax.set_ylim(100, -100)
ax.set_aspect("equal")
ax.set_title("the 9 anchors of one cell: ratios 0.5, 1, 2 × sizes 32, 64, 128")
plt.show()

# %% [markdown]
# ## 4 · Non-maximum suppression, step by step
#
# The RPN — and later the detector — fires many overlapping boxes per object. Greedy NMS keeps
# the best-scoring box, deletes every box that overlaps it by more than the threshold, and
# repeats with the best remaining box. `course_lib.detection.nms_with_suppressors` also records
# which kept box removed each one:

# %%
from course_lib.detection import batched_nms, example_scene, nms, nms_with_suppressors

show_source(nms_with_suppressors)

# %% tags=["nbval-check-output"]
scene = example_scene(0)
result = nms_with_suppressors(scene.proposals, scene.scores, 0.5)
for i in torch.sort(scene.scores, descending=True, stable=True).indices.tolist():
    by = result.suppressed_by[i].item()
    verdict = "keep" if by < 0 else f"suppressed by {by} (IoU {box_iou(scene.proposals[[i]], scene.proposals[[by]]).item():.2f})"
    print(f"box {i:>2}, score {scene.scores[i].item():.2f}: {verdict}")
assert torch.equal(result.keep, torchvision.ops.nms(scene.proposals, scene.scores, 0.5))

# %% [markdown]
# Checked against `torchvision.ops.nms` and `batched_nms` on boxes with many exact ties and
# duplicates (`tests/test_detection.py` adds a hypothesis property test). One detail that the
# tests found: torchvision compares a *float32* IoU with a *float64* threshold, so an IoU of
# exactly $3/10$ — `0.3000000119` in float32 — counts as above 0.3. Our `nms` does the same.

# %%
gen = torch.Generator().manual_seed(1)
boxes = torch.randint(0, 30, (500, 4), generator=gen).float()
boxes[:, 2:] += boxes[:, :2] + 1
scores = torch.randint(0, 6, (500,), generator=gen).float()  # few distinct scores: many ties
classes = torch.randint(0, 3, (500,), generator=gen)
for threshold in (0.0, 0.3, 0.5, 0.7):
    assert torch.equal(nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))
    assert torch.equal(batched_nms(boxes, scores, classes, threshold),
                       torchvision.ops.batched_nms(boxes, scores, classes, threshold))
print("nms / batched_nms == torchvision on 500 boxes with ties, at 4 thresholds")

# %% [markdown]
# ## 5 · RoI pooling and RoI Align
#
# The heads need a fixed-size input, say $7 \times 7 \times C$, for every proposal. Both ops cut
# the proposal, scaled to feature coordinates by `spatial_scale` $= 1/\text{stride}$, into
# $7 \times 7$ bins:
#
# * **RoI pooling** (Fast R-CNN) *rounds* the box to whole cells and the bins to whole cells,
#   then takes each bin's **max**;
# * **RoI Align** (Mask R-CNN) keeps the real-valued box, places a few sample points in each
#   bin, reads each by **bilinear interpolation** and **averages** them.
#
# `course_lib.detection.roi_align`, written with torch indexing so autograd gives its backward:

# %%
from course_lib.detection import roi_align, roi_align_sample_points, roi_pool

show_source(roi_align)

# %% [markdown]
# Checked against torchvision, forward and backward (w.r.t. the feature map), with boxes that
# stick out of the map, a box smaller than a cell, three images given as a list of per-image
# boxes, and output sizes $7\times7$, $2\times3$, $1\times1$:

# %%
dev = runtime.device()  # on a GPU, torchvision's CUDA kernels are the reference
x = torch.randn(3, 4, 12, 15, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(dev)
boxes_per_image = [torch.tensor([[1.0, 2.0, 40.0, 30.0], [-8.0, -6.0, 20.0, 14.0]], dtype=torch.float64, device=dev),
                   torch.tensor([[10.2, 10.1, 10.9, 10.4]], dtype=torch.float64, device=dev),
                   torch.tensor([[30.0, 20.0, 70.0, 55.0]], dtype=torch.float64, device=dev)]
for output_size in [(7, 7), (2, 3), (1, 1)]:
    for ours, theirs, extra in [(roi_pool, torchvision.ops.roi_pool, ()),
                                (roi_align, torchvision.ops.roi_align, (-1, False)),
                                (roi_align, torchvision.ops.roi_align, (2, True))]:
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        out1 = ours(x1, boxes_per_image, output_size, 0.25, *extra)
        out2 = theirs(x2, boxes_per_image, output_size, 0.25, *extra)
        assert torch.allclose(out1, out2)
        upstream = torch.randn_like(out1)
        assert torch.allclose(torch.autograd.grad(out1, x1, upstream)[0], torch.autograd.grad(out2, x2, upstream)[0])
print(f"roi_pool / roi_align == torchvision on {dev}, forward and backward, 3 output sizes")

# %% [markdown]
# Where RoI Align samples: a 2 × 2 output over a box of 5 × 3.5 cells with the adaptive
# `sampling_ratio=-1` takes $\lceil 3.5/2 \rceil \times \lceil 5/2 \rceil = 2 \times 3$ points per bin:

# %%
box = (1.3, 1.2, 6.3, 4.7)
ys, xs = roi_align_sample_points(box, (2, 2), aligned=True)
fig, ax = plt.subplots(figsize=(5, 3.6))
ax.set_xticks(range(9))
ax.set_yticks(range(7))
ax.grid(True, alpha=0.4)
ax.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2] - box[0], box[3] - box[1], fill=False, linewidth=2))
for i in range(2):
    for j in range(2):
        yy, xx = torch.meshgrid(ys[i], xs[j], indexing="ij")
        ax.plot(xx.flatten(), yy.flatten(), "o", label=f"bin ({i}, {j})")
ax.set_xlim(-0.5, 8)
ax.set_ylim(6, -0.5)
ax.set_title("RoI Align (aligned=True): sample points per bin\ngrid = cell centres", fontsize=10)
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the data
fig.tight_layout()
plt.show()
assert ys.shape == (2, 2) and xs.shape == (2, 3)

# %% [markdown]
# ### The experiment: moving a box by a fraction of a pixel
#
# Why did Mask R-CNN replace RoI pooling? Take a feature map that is a linear ramp,
# $f(y, x) = x$ (in cells), at stride 16, and slide a $64 \times 64$-pixel box to the right in
# steps of one image pixel. Every output bin should then increase by exactly
# $\text{shift}/16$ cells — the features must follow the box. We measure the error
# $|\,\Delta\text{output} - \text{shift}/16\,|$, averaged over the $7 \times 7$ bins.

# %%
from course_lib.detection.experiment import aligned_bias, shift_errors

show_source(shift_errors)
errors = shift_errors(max_shift=32, stride=16)
fig, ax = plt.subplots(figsize=(7.5, 3.5))
for name, errs in errors.items():
    ax.plot(range(len(errs)), errs, "o-", markersize=3, label=name)
ax.set_xlabel("box shift (image pixels; 16 = one feature cell)")
ax.set_ylabel("mean |Δ output − shift/16|\n(cells)")
ax.set_title("does the pooled feature follow the box?")
ax.set_xticks(range(0, 33, 4))
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=9)  # below the axes
fig.tight_layout()
plt.show()
for name, errs in errors.items():
    print(f"{name:<26} max error {max(errs):.3f} cells = {16 * max(errs):.1f} image pixels")
assert max(errors["RoI pooling"]) > 0.5  # quantisation: more than half a cell off
assert max(errors["RoI Align (aligned=True)"]) < 1e-9  # exactly linear in the shift
assert max(errors["RoI Align (aligned=False)"]) < 1e-9  # (the half-pixel offset is a constant, not an error in Δ)
pool_worst = max(errors["RoI pooling"])
assert abs(pool_worst - 0.75) < 1e-12  # the text below: three quarters of a cell, 12 pixels

# %% [markdown]
# RoI pooling's output is a staircase: it ignores a shift until a rounding flips, then jumps
# by a whole cell. The box's two edges round independently, so the bins also change width, and
# the measured error reaches three quarters of a cell — 12 image pixels at stride 16 (printed
# above) — while the gradient with respect to the box position is zero almost everywhere. RoI
# Align's bilinear samples follow the box exactly. (Mask R-CNN reports that RoI Align alone
# improves mask accuracy by 10 % to 50 % relative, more under stricter localisation metrics.)
#
# ### What `aligned=True` fixes: half a pixel, measured
#
# The shift experiment compares outputs with each other, so a *constant* offset cancels. In
# absolute terms, feature cell $k$ covers $[k, k+1)$ and its value belongs at its centre
# $k + 0.5$: the true feature at continuous position $p$ of the ramp is $p - 0.5$. The legacy
# RoI Align (`aligned=False`) reads position $p$ at index $p$ — half a cell to the right of where
# it belongs; `aligned=True` shifts the box by $-0.5$ cell first (Detectron2's fix).
# `aligned_bias` measures the signed error of every bin against the truth, for 17 box positions:

# %%
show_source(aligned_bias)
bias = aligned_bias(positions=17, stride=16)
legacy_bias = bias.legacy.mean().item()
print(f"aligned=True : mean error {bias.aligned.mean().item():+.2e} cells (max |error| {bias.aligned.abs().max().item():.1e})")
print(f"aligned=False: mean error {legacy_bias:+.4f} cells = {16 * legacy_bias:+.1f} image pixels at stride 16")
assert bias.aligned.abs().max() < 1e-12
assert torch.allclose(bias.legacy, torch.full_like(bias.legacy, 0.5))  # every position: +half a cell

# %% [markdown]
# The legacy op is biased by exactly $+0.5$ cell — 8 image pixels at stride 16 — at every
# position; `aligned=True` removes it. A network can learn to compensate a constant offset, which
# is why Mask R-CNN trained fine with it; it matters when features are compared across scales
# or with pixel-exact targets (masks, keypoints).
#
# ## 6 · The RPN: labels and proposals
#
# For training, every anchor is labelled by its best IoU with a ground-truth box: positive
# $\ge 0.7$, negative $< 0.3$, ignored in between — plus, so that no object is left without
# one, each object's best anchor(s) are positive whatever their IoU ("low-quality matches").
# `course_lib.detection.match_anchors` mirrors torchvision's `Matcher`:

# %%
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from course_lib.detection import filter_proposals, label_anchors, match_anchors

show_source(match_anchors)
scene_anchors = generate_anchors([(8, 8)], [(16, 16)], [(32, 64)], [(0.5, 1.0, 2.0)])  # the 128 x 128 scene
iou = box_iou(scene.gt_boxes, scene_anchors)
for allow in (False, True):
    assert torch.equal(match_anchors(iou.clone(), 0.7, 0.3, allow), Matcher(0.7, 0.3, allow)(iou.clone()))
rpn = RegionProposalNetwork(AnchorGenerator(((32, 64),), ((0.5, 1.0, 2.0),)), RPNHead(8, 6), 0.7, 0.3, 256, 0.5,
                            {"training": 100, "testing": 100}, {"training": 30, "testing": 30}, 0.7).eval()
labels, matched = label_anchors(scene_anchors, scene.gt_boxes)
tv_labels, tv_matched = rpn.assign_targets_to_anchors([scene_anchors], [{"boxes": scene.gt_boxes}])
assert torch.equal(labels, tv_labels[0]) and torch.equal(matched, tv_matched[0])
strict = match_anchors(iou, allow_low_quality_matches=False)
print(f"{len(scene_anchors)} anchors, 3 objects: {(labels == 1).sum().item()} positive "
      f"({(strict >= 0).sum().item()} of them above 0.7, the rest low-quality matches), "
      f"{(labels == -1).sum().item()} ignored, {(labels == 0).sum().item()} negative")

# %% [markdown]
# **A ground-truth box that overlaps no anchor.** Its best IoU is 0, and *every* anchor ties at
# that best — so the low-quality rule makes *every* anchor positive, each matched to its own best
# gt (gt 0, the argmax of a column of zeros, for anchors that overlap nothing), even anchors it
# had labelled ignored or negative. torchvision's `Matcher` does the same, and
# so does `course_lib` (documented in `rpn.py`, pinned by a test): filter such boxes (outside the
# image, or smaller than any anchor's reach) out of the targets.

# %% tags=["nbval-check-output"]
outside = torch.cat([scene.gt_boxes, torch.tensor([[400.0, 400.0, 420.0, 420.0]])])  # far outside the 128 x 128 image
labels_out, _ = label_anchors(scene_anchors, outside)
tv_labels_out, _ = rpn.assign_targets_to_anchors([scene_anchors], [{"boxes": outside}])
assert torch.equal(labels_out, tv_labels_out[0])
assert box_iou(outside[3:], scene_anchors).max() == 0
print(f"with a 4th gt box outside the image: {(labels_out == 1).sum().item()} of {len(scene_anchors)} anchors positive "
      f"(was {(labels == 1).sum().item()}) — same in torchvision")
assert bool((labels_out == 1).all())  # every anchor

# %% [markdown]
# **The minibatch and the loss.** The RPN's loss does not use every labelled anchor: per image
# it samples 256, at most half of them positive (`sample_anchors`), then takes binary
# cross-entropy of the objectness logits over the sample and smooth-L1 ($\beta = 1/9$) of the
# deltas over the sampled positives, divided by the sample size (`rpn_loss`). Both draw their
# randomness exactly as torchvision does, so under one seed they pick the same anchors and give
# the same losses as `RegionProposalNetwork.compute_loss`:

# %%
from course_lib.detection import encode_boxes, rpn_loss, sample_anchors

show_source(sample_anchors, rpn_loss)
gen = torch.Generator().manual_seed(4)
objectness, rpn_deltas = torch.randn(len(scene_anchors), generator=gen), 0.3 * torch.randn(len(scene_anchors), 4, generator=gen)
regression_targets = encode_boxes(scene_anchors, matched)
torch.manual_seed(0)
tv_losses = rpn.compute_loss(objectness, rpn_deltas, [labels], [regression_targets])
torch.manual_seed(0)
positive, negative = sample_anchors(labels, 256, 0.5)
losses_ours = rpn_loss(objectness, rpn_deltas, labels, regression_targets, positive, negative)
assert all(torch.equal(a, b) for a, b in zip(losses_ours, tv_losses))
print(f"minibatch: {len(positive)} positive + {len(negative)} negative of {len(scene_anchors)} anchors; "
      f"objectness loss {losses_ours[0].item():.4f}, box loss {losses_ours[1].item():.4f} == torchvision")

# %% [markdown]
# At inference, `filter_proposals` turns the RPN's outputs into proposals: top-$n$ logits per
# feature level → decode → clip → drop tiny boxes → NMS per level → the best
# `post_nms_top_n`. With random RPN outputs it must agree with torchvision's `filter_proposals`:

# %%
gen = torch.Generator().manual_seed(3)
deltas = 0.3 * torch.randn(len(scene_anchors), 4, generator=gen)
logits = torch.randn(len(scene_anchors), generator=gen)
proposals, proposal_scores = filter_proposals(scene_anchors, deltas, logits, [len(scene_anchors)], (128, 128),
                                              pre_nms_top_n=100, post_nms_top_n=30, nms_threshold=0.7)
decoded = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode(deltas, [scene_anchors]).view(1, -1, 4)
tv_boxes, tv_scores = rpn.filter_proposals(decoded, logits.view(1, -1), [(128, 128)], [len(scene_anchors)])
assert torch.equal(proposals, tv_boxes[0]) and torch.equal(proposal_scores, tv_scores[0])
print(f"{len(scene_anchors)} anchors -> top 100 -> {len(proposals)} proposals after NMS; == torchvision")

# %% [markdown]
# ### A tiny Faster R-CNN, trained for a few steps
#
# torchvision's `FasterRCNN` assembles exactly these parts. With a 4-layer convolutional
# backbone (stride 16, random initialisation — nothing is downloaded) on 128 × 128 images of
# coloured rectangles, a few SGD steps show the four losses: the RPN's objectness (binary
# cross-entropy over sampled anchors) and box regression (smooth-L1 on the encoded deltas of
# positive anchors), and the heads' classification and box regression. First, a check that the
# model's anchors are ours:

# %%
from course_lib.detection.experiment import DetectorConfig, rectangles, tiny_faster_rcnn, train_tiny_detector

show_source(tiny_faster_rcnn)
config = DetectorConfig()
model = tiny_faster_rcnn(config, seed=0)
gen = torch.Generator().manual_seed(0)
images, targets = rectangles(gen)
image_list, _ = model.transform(images, targets)
model_anchors = model.rpn.anchor_generator(image_list, [model.backbone(image_list.tensors)])[0]
assert torch.equal(model_anchors, generate_anchors([(8, 8)], [(16, 16)], [config.anchor_sizes], [config.aspect_ratios]))
print(f"the model's {len(model_anchors)} anchors == course_lib.detection.generate_anchors")

# %%
history = train_tiny_detector(model, 15, gen, config, progress=True)
fig, ax = plt.subplots(figsize=(7.5, 3.5))
for key in history[0]:
    ax.plot(range(1, len(history) + 1), [h[key] for h in history], "o-", markersize=3, label=key)
ax.set_xlabel("SGD step")
ax.set_ylabel("loss")
ax.set_xticks(range(1, len(history) + 1, 2))  # integer steps
ax.set_title("the four losses of Faster R-CNN (tiny model, synthetic rectangles)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # beside the axes, off the data
fig.tight_layout()
plt.show()
print({k: round(v, 3) for k, v in history[-1].items()})
assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
first, last = history[0], history[-3:]
assert sum(h["loss_classifier"] for h in last) / 3 < first["loss_classifier"]  # the heads are learning
print(f"step 1: objectness {first['loss_objectness']:.3f}, classifier {first['loss_classifier']:.3f} "
      f"(log 2 = {math.log(2):.3f})")
assert abs(first["loss_objectness"] - math.log(2)) < 0.05 and abs(first["loss_classifier"] - math.log(2)) < 0.1

# %% [markdown]
# Fifteen steps do not make a detector, but they show the structure: at initialisation the
# objectness and classifier losses sit near $\log 2 \approx 0.69$ (a coin flip; printed and asserted above), and the
# classifier falls first, because most sampled proposals are easy background.

# %% [markdown]
# ### Closing the loop: train until it detects, and measure AP@0.5
#
# A fresh copy of the same model, 400 SGD steps (about half a minute on a CPU), then 16 held-out
# images it never saw. A detection counts as correct when its IoU with a not-yet-matched object
# is ≥ 0.5; **AP@0.5** is the area under the precision–recall curve over all detections, by
# decreasing score (`average_precision`, PASCAL VOC's all-point rule). We also switch the heads'
# own NMS off (`roi_heads.nms_thresh = 1.0`: no IoU exceeds 1) to see what it removes — every
# duplicate box around an object is a false positive.

# %%
from course_lib.detection.experiment import average_precision

show_source(average_precision)
detector = tiny_faster_rcnn(config, seed=0)
untrained = tiny_faster_rcnn(config, seed=1).eval()
train_tiny_detector(detector, 400, torch.Generator().manual_seed(0), config, progress=False)
test_images, test_targets = rectangles(torch.Generator().manual_seed(99), 16)
detector.eval()
with torch.no_grad():
    after_nms = detector(test_images)
    detector.roi_heads.nms_thresh = 1.0  # the heads' per-class NMS, off
    before_nms = detector(test_images)
    detector.roi_heads.nms_thresh = 0.5
    untrained_out = untrained(test_images)
ap, ap_before, ap_untrained = (average_precision(d, test_targets) for d in (after_nms, before_nms, untrained_out))
n_objects = sum(len(t["boxes"]) for t in test_targets)
print(f"{n_objects} objects in 16 held-out images")
print(f"AP@0.5 after 400 steps: {ap:.3f}  ({sum(len(d['boxes']) for d in after_nms)} detections)")
print(f"           without the heads' NMS: {ap_before:.3f}  ({sum(len(d['boxes']) for d in before_nms)} detections)")
print(f"           untrained: {ap_untrained:.3f}")
assert ap > 0.3 and ap > ap_untrained + 0.25  # it detects
assert ap > ap_before  # NMS removes duplicates, which count as false positives

fig, axes = plt.subplots(2, 2, figsize=(7.6, 7.8))
for col, i in enumerate((0, 1)):
    for row, (name, out) in enumerate((("before NMS", before_nms), ("after NMS", after_nms))):
        ax = axes[row, col]
        ax.imshow(test_images[i].permute(1, 2, 0).numpy())
        for box in test_targets[i]["boxes"]:
            x1, y1, x2, y2 = box.tolist()
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="white", lw=2, ls="--"))
        keep = out[i]["scores"] > 0.3
        for box in out[i]["boxes"][keep]:
            x1, y1, x2, y2 = box.tolist()
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", lw=1))
        ax.set_title(f"image {i}, {name}: {int(keep.sum())} boxes (score > 0.3)", fontsize=10)
        ax.set_xticks(range(0, 129, 32))
        ax.set_yticks(range(0, 129, 32))
fig.suptitle("held-out detections (green) and the objects (white, dashed)", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# The detector finds the rectangles: AP@0.5 (printed above) far above the untrained network's.
# The heads' NMS raises it by thinning each cluster of duplicates; what it leaves around an object
# (boxes overlapping by less than 0.5) still counts against precision — after 400 steps on a CPU
# the scores do not yet separate them well.
#
# ## 7 · Widget: anchors and NMS
#
# `course_lib.detection.anchors_nms_widget()` wires controls to the pure state function
# `course_lib.detection.anchors_nms_state(row, col, size, ratios, iou_threshold, …)` and its
# drawing `anchors_nms_view`. Left: the anchors of one feature cell on the synthetic scene (thick),
# coloured by their label under the RPN's *full* rule — green positive (IoU ≥ 0.7 *or* the best
# anchor of some object), orange ignored, grey negative — over every positive anchor of the map
# (thin green: solid when the minibatch draw sampled it, dotted when not) and the sampled
# negatives' centres (grey dots); the minibatch here is 32 anchors, so that on this small map the
# sampling shows. Right: the scene's proposals after NMS — kept boxes solid and numbered,
# suppressed ones faded; the caption names the box that suppressed each. Lower the IoU threshold
# and watch neighbouring objects' boxes start to suppress each other.

# %%
from course_lib.detection import anchors_nms_widget

widget = anchors_nms_widget()
widget

# %%
import html

before = widget.caption.value
widget.controls["iou_threshold"].value = 0.9
assert widget.caption.value != before and "NMS at IoU threshold 0.90" in widget.caption.value
widget.controls["row"].value, widget.controls["col"].value, widget.controls["size"].value = 6, 5, 56
shown = html.unescape(widget.caption.value.removeprefix("<pre>").removesuffix("</pre>"))
assert "ratio 0.5: box [40, 76, 120, 116]" in shown and "-> positive" in shown
print(shown.split("\nNMS")[0])
widget.controls["iou_threshold"].value = 0.5

# %% [markdown]
# ## 8 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell. `exercise.hint()`
# gives one hint at a time; `exercise.solution()` shows the answer.
#
# ### Exercise 1: IoU of two boxes

# %%
from course_lib.detection.exercises import encode_box, greedy_nms, iou_of_two_boxes

iou_of_two_boxes.show();

# %%
def my_iou(a, b):
    raise NotImplementedError  # your code here


iou_of_two_boxes.check(my_iou);

# %% [markdown]
# ### Exercise 2: encode a box relative to an anchor

# %%
encode_box.show();

# %%
def my_encode(anchor, gt):
    raise NotImplementedError  # your code here


encode_box.check(my_encode);

# %% [markdown]
# ### Exercise 3: greedy NMS

# %%
greedy_nms.show();

# %%
def my_nms(boxes, scores, iou_threshold):
    raise NotImplementedError  # your code here


greedy_nms.check(my_nms);

# %% [markdown]
# ## Summary
#
# Back to the objectives:
#
# 1. **IoU and the encoding** (§2): `box_iou` and `encode_boxes`/`decode_boxes` equal torchvision's;
#    shifts in units of the reference's size and scales as logs make the targets size-independent.
# 2. **Anchors and the RPN's labels** (§3, §6): $k$ anchors per cell, top-left-centred as in
#    torchvision and Detectron2; labelled by the full rule (incl. each object's best anchor — and
#    *every* unmatched anchor when an object overlaps none); `sample_anchors` and `rpn_loss` equal
#    torchvision's sampler and loss under one seed.
# 3. **Greedy NMS** (§4, exercise 3): stable sort, strict `>`, only kept boxes suppress.
# 4. **RoI pooling vs RoI Align** (§5): pooling lags a moving box by up to 0.75 cell; RoI Align
#    follows it exactly, and `aligned=True` removes the legacy op's constant +0.5-cell bias.
# 5. **A detector, measured** (§6): 400 steps take the tiny model from chance to an AP@0.5 far
#    above the untrained one's on held-out images, and the heads' NMS adds to it.
#
# * Faster R-CNN = backbone → RPN (anchors scored and regressed, NMS) → RoI pooling / Align →
#   heads. Two matching problems (anchors ↔ objects, proposals ↔ objects) produce its labels.
# * Boxes are regressed as $(d_x, d_y, d_w, d_h)$ relative to a reference box: shifts in units of
#   its size, scales as logs; decoding clamps the scales.
# * Anchors: $k = |\text{ratios}| \times |\text{sizes}|$ boxes per cell, their order fixed by
#   the head's channels.
# * Greedy NMS keeps the best box and removes its overlaps > threshold; only kept boxes suppress.
# * RoI pooling quantises the box and the bins: measured above, its features lag a moving box
#   by up to 0.75 cell (12 pixels at stride 16); RoI Align samples bilinearly and follows the box
#   exactly.
# * `course_lib.detection`: `box_iou`, `encode_boxes`/`decode_boxes`, `generate_anchors`, `nms`,
#   `batched_nms`, `roi_pool`, `roi_align`, `match_anchors`, `label_anchors`, `sample_anchors`,
#   `rpn_loss`, `filter_proposals` —
#   each equal to torchvision's, tested in `tests/test_detection*.py`.
#
# ## References
#
# * S. Ren, K. He, R. Girshick, J. Sun. *Faster R-CNN: Towards Real-Time Object Detection with
#   Region Proposal Networks*, NeurIPS 2015. https://arxiv.org/abs/1506.01497
# * R. Girshick. *Fast R-CNN*, ICCV 2015 (RoI pooling). https://arxiv.org/abs/1504.08083
# * K. He, G. Gkioxari, P. Dollár, R. Girshick. *Mask R-CNN*, ICCV 2017 (RoI Align).
#   https://arxiv.org/abs/1703.06870
# * torchvision's detection code: `torchvision/ops/{boxes,roi_align,roi_pool}.py`,
#   `torchvision/models/detection/{_utils,anchor_utils,rpn}.py`.
