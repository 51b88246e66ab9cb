"""Deformable convolution, DCNv1 and DCNv2, in plain PyTorch (chapter 8).

A convolution samples a fixed k×k grid; objects in images are rotated, scaled and bent. A
deformable convolution (Dai et al., 2017, https://arxiv.org/abs/1703.06211) lets a small conv
predict, per output position, a 2-D offset for every kernel tap, and samples the input there by
bilinear interpolation; DCNv2 (Zhu et al., 2019, https://arxiv.org/abs/1811.11168) also predicts
a modulation mask per tap. The implementation here is the im2col formulation — gather the
bilinearly sampled columns, then one matmul — and autograd derives every gradient; it matches
``torchvision.ops.deform_conv2d`` forward and backward.

Layers, bottom-up (each module's docstring is its concept card):

* :mod:`~course_lib.deform.sampling` — :func:`bilinear_sample`, :func:`bilinear_neighbours`,
  :func:`output_size`.
* :mod:`~course_lib.deform.deform_conv` — :func:`sampling_positions`, :func:`deform_conv2d` and
  the :class:`DeformConv2d` layer that predicts its own offsets and masks.
* :mod:`~course_lib.deform.offsets` — offset fields for a scaled, rotated or random grid.
* :mod:`~course_lib.deform.scaled_digits` — :func:`scaled_digits`, digits drawn at random scales.
* :mod:`~course_lib.deform.experiment` — learning the grid's scale to imitate a dilated conv, and a
  classifier whose deformable layer predicts its offsets per position on scaled digits (harnesses:
  reached as ``course_lib.deform.experiment``, not re-exported here); :mod:`~course_lib.deform.train`
  makes its committed checkpoint.
* :mod:`~course_lib.deform.sampling_view` and :mod:`~course_lib.deform.learned_offsets_view` — the
  widgets; :mod:`~course_lib.deform.exercises`.

Notebook: ``notebooks/08_deformable_conv``. Tests: ``tests/test_deform*.py``.
"""

from course_lib.deform.deform_conv import DeformConv2d, deform_conv2d, sampling_positions
from course_lib.deform.learned_offsets_view import (
    LearnedOffsetsState,
    learned_offsets_state,
    learned_offsets_view,
    learned_offsets_widget,
)
from course_lib.deform.offsets import offset_field, random_offsets, rotation_offsets, scale_offsets
from course_lib.deform.sampling import Neighbours, bilinear_neighbours, bilinear_sample, output_size
from course_lib.deform.sampling_view import SamplingState, sampling_state, sampling_view, sampling_widget
from course_lib.deform.scaled_digits import ScaledDigits, scaled_digits

__all__ = [
    "DeformConv2d",
    "LearnedOffsetsState",
    "Neighbours",
    "SamplingState",
    "ScaledDigits",
    "bilinear_neighbours",
    "bilinear_sample",
    "deform_conv2d",
    "learned_offsets_state",
    "learned_offsets_view",
    "learned_offsets_widget",
    "offset_field",
    "output_size",
    "random_offsets",
    "rotation_offsets",
    "sampling_positions",
    "sampling_state",
    "sampling_view",
    "sampling_widget",
    "scale_offsets",
    "scaled_digits",
]
