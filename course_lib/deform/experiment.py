"""The chapter's experiment: can a deformable conv *learn* where to sample?

Target: a 3×3 convolution with ``dilation=2`` (a 5×5 receptive field) applied to handwritten
digits (scikit-learn's bundled 8×8 digits, upsampled to 16×16). Contestants:

* a plain 3×3 conv (``padding=1``) with the best weights there are — solved exactly by least
  squares on the im2col matrix, so no optimiser luck is involved. A fixed 3×3 grid cannot see
  pixels two steps away, so some error remains whatever the weights;
* a deformable 3×3 conv with the target's weights whose offsets are the one-parameter family
  :func:`~course_lib.deform.offsets.scale_offsets` ``(s)``: ``s = 1`` is the plain grid,
  ``s = 2`` is the dilated one. :func:`scale_sweep` measures the error for a range of ``s``;
  :func:`learn_scale` finds ``s`` by gradient descent through bilinear sampling, starting from
  the plain grid.

Limitations: the offsets are constrained to one scale parameter. Free per-tap offsets fitted
jointly with the weights get stuck in local minima on this task (each tap only feels the
pixels within one step of where it samples); the paper learns them with a conv over features,
on large datasets.

Notebook: ``08_deformable_conv`` §4. Tests: ``tests/test_deform.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import deform_conv2d, kernel_grid
from course_lib.deform.offsets import offset_field, scale_offsets
from course_lib.runtime import one_thread


@export("deform.experiment.digit_images")
def digit_images(n: int = 16, size: int = 16) -> torch.Tensor:
    """The first ``n`` scikit-learn digits in [0, 1], bilinearly resized to ``size×size``.

    Returns ``Tensor[n, 1, size, size]`` (float64). The data ship with scikit-learn: no download.
    """
    from sklearn.datasets import load_digits  # imported here: only the experiment and widget need it

    n = _checks.integer("n", n, minimum=1, maximum=1797)
    size = _checks.integer("size", size, minimum=2)
    x = torch.tensor(load_digits().images[:n], dtype=torch.float64)[:, None] / 16  # (n, 1, 8, 8)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # (n, 1, size, size)


@export("deform.experiment.DilationTask")
@dataclass(frozen=True)
class DilationTask:
    """Inputs and target of the experiment (see the module docstring)."""

    images: torch.Tensor  # (N, 1, S, S): the inputs
    weight: torch.Tensor  # (C_out, 1, 3, 3): the target's kernel
    target: torch.Tensor  # (N, C_out, S, S): F.conv2d(images, weight, padding=2, dilation=2)


@export("deform.experiment.dilation_task")
def dilation_task(n: int = 16, out_channels: int = 4, seed: int = 0) -> DilationTask:
    """Digits and the output of a random 3×3, dilation-2 conv on them (the thing to imitate)."""
    images = digit_images(n)
    gen = torch.Generator().manual_seed(_checks.integer("seed", seed))
    weight = torch.randn(_checks.integer("out_channels", out_channels, minimum=1), 1, 3, 3, generator=gen,
                         dtype=torch.float64)
    return DilationTask(images, weight, F.conv2d(images, weight, padding=2, dilation=2))


def relative_error(output: torch.Tensor, target: torch.Tensor) -> float:
    """``‖output - target‖² / ‖target‖²``: 0 is exact, 1 is as bad as predicting zeros."""
    return ((output - target).pow(2).sum() / target.pow(2).sum()).item()


@export("deform.experiment.plain_conv_best_fit")
def plain_conv_best_fit(task: DilationTask) -> float:
    """The relative error of the *best* plain 3×3 conv (padding 1), by least squares on im2col."""
    n, c_out = task.target.shape[:2]
    columns = F.unfold(task.images, 3, padding=1).transpose(1, 2).reshape(-1, 9)  # (N·L, 9)
    target = task.target.permute(0, 2, 3, 1).reshape(-1, c_out)  # (N·L, C_out)
    weights = torch.linalg.lstsq(columns, target).solution  # (9, C_out)
    return relative_error(columns @ weights, target)


def _scaled(task: DilationTask, scale: torch.Tensor) -> torch.Tensor:
    i, j = kernel_grid(3, 3)
    per_tap = torch.stack([(scale - 1) * (i - 1), (scale - 1) * (j - 1)], dim=-1).reshape(-1)  # (18,) as scale_offsets
    n, _, h, w = task.images.shape
    return deform_conv2d(task.images, offset_field(per_tap, n, h, w), task.weight, padding=1)


@export("deform.experiment.scale_sweep")
def scale_sweep(task: DilationTask, scales: list[float]) -> list[float]:
    """The relative error of the deformable conv with offsets ``scale_offsets(3, 3, s)``, per ``s``."""
    with one_thread(), torch.no_grad():
        n, _, h, w = task.images.shape
        return [relative_error(deform_conv2d(task.images, offset_field(scale_offsets(3, 3, s), n, h, w),
                                             task.weight, padding=1), task.target) for s in scales]


@export("deform.experiment.learn_scale")
def learn_scale(task: DilationTask, start: float = 1.0, steps: int = 60, lr: float = 0.15) -> list[tuple[float, float]]:
    """Gradient descent (Adam, learning rate decaying linearly to 0) on the grid's scale ``s``.

    The gradient reaches ``s`` through bilinear sampling: d(value)/d(position) is the difference
    of neighbouring pixels, so the loss tells the grid which way to stretch.

    Returns:
        ``[(s, relative error)]`` before each step and after the last one.
    """
    steps = _checks.integer("steps", steps, minimum=1)
    scale = torch.tensor(_checks.real("start", start), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([scale], lr=_checks.real("lr", lr, minimum=0, open_min=True))
    # linear decay to 0: Adam's fixed step size would otherwise keep circling the minimum
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - t / steps)
    history = []
    with one_thread():
        for _ in tqdm(range(steps), desc="learning the scale", leave=False):
            out = _scaled(task, scale)  # (N, C_out, S, S)
            history.append((scale.item(), relative_error(out.detach(), task.target)))
            loss = F.mse_loss(out, task.target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        with torch.no_grad():
            history.append((scale.item(), relative_error(_scaled(task, scale), task.target)))
    return history
