"""Digits at random scales: scikit-learn's 8×8 digits resized and placed on a larger canvas.

Deformable ConvNets (Dai et al., 2017, https://arxiv.org/abs/1703.06211, §4 and Fig. 5-6)
observe that the learned offsets make the receptive field of a unit *follow the size of the
object* under it. To see that, the objects need sizes that vary: each 8×8 digit
(``sklearn.datasets.load_digits``, bundled with scikit-learn, no download) is scaled by a random
factor ``s`` — it covers ``8·s × 8·s`` pixels — and placed at a random position on a
``canvas × canvas`` image with zeros around it.

The resampling is one batched ``F.grid_sample`` (bilinear, zeros outside, ``align_corners=False``)
with the affine map from canvas to digit coordinates, in normalised units ``[-1, 1]``:

    u_digit = (u_canvas - c) · canvas / (8·s),   |c| ≤ 1 - 8·s / canvas

so every digit's ``8·s × 8·s`` box lies inside the canvas (the bilinear blend of its outermost
pixels with the zeros around reaches half a digit pixel, ``s/2``, further). Scales are drawn uniformly in
``[min_scale, max_scale]``, centres uniformly in the allowed range, all from one seeded
``torch.Generator``: the same arguments give the same tensors.

Limitations: bilinear upsampling only (``min_scale >= 1``), so no antialiasing is needed; digits
are not rotated. The 1797 digits are split by index (train: the first ``TRAIN_DIGITS``; test:
the rest), so no test digit is a rescaled training digit.

Notebook: ``08_deformable_conv`` §6. Tests: ``tests/test_deform_scaled.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export

DIGIT = 8  # scikit-learn's digits are DIGIT×DIGIT pixels
N_DIGITS = 1797  # how many load_digits() has
TRAIN_DIGITS = 1400  # digits 0..1399 make the training split, 1400..1796 the test split


@cache
def _source() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # imported here: importing the chapter stays light

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16  # (1797, 1, 8, 8) in [0, 1]
    return images, torch.tensor(data.target, dtype=torch.int64)  # (1797,)


@export("deform.ScaledDigits")
@dataclass(frozen=True)
class ScaledDigits:
    """A batch of digits drawn at random scales (see :func:`scaled_digits`)."""

    images: torch.Tensor  # Tensor[N, 1, canvas, canvas] float32 in [0, 1]
    labels: torch.Tensor  # Tensor[N] int64: the digit, 0..9
    scales: torch.Tensor  # Tensor[N] float32: the digit covers 8·scale × 8·scale pixels
    centres: torch.Tensor  # Tensor[N, 2] float32: (row, col) of the digit's centre, in pixels
    index: torch.Tensor  # Tensor[N] int64: which of load_digits()'s 1797 images

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@export("deform.scaled_digits")
def scaled_digits(n: int, canvas: int = 32, min_scale: float = 1.0, max_scale: float = 3.5,
                  split: str = "train", seed: int = 0) -> ScaledDigits:
    """``n`` digits of a split, each resized by a random factor and placed on a blank canvas.

    Args:
        n: how many images (>= 1); digits of the split are drawn with replacement.
        canvas: the image side in pixels; it must hold the largest digit, ``8·max_scale``.
        min_scale, max_scale: the range of the scale ``s`` (uniform); ``1 <= min_scale <= max_scale``.
        split: ``"train"`` (digits 0..1399) or ``"test"`` (1400..1796).
        seed: the seed of the generator that draws digits, scales and positions.

    Returns:
        A :class:`ScaledDigits`; ``images`` is ``Tensor[n, 1, canvas, canvas]``.

    Raises:
        TypeError: a size or seed that is not an int, a scale that is not a number.
        ValueError: a negative ``n``, ``min_scale < 1``, ``max_scale < min_scale``, a canvas too
            small for ``8·max_scale``, or an unknown split.

    Example:
        >>> batch = scaled_digits(4, canvas=32, seed=0)
        >>> tuple(batch.images.shape), bool((batch.scales >= 1).all())
        ((4, 1, 32, 32), True)
    """
    n = _checks.integer("n", n, minimum=1)
    canvas = _checks.integer("canvas", canvas, minimum=DIGIT)
    min_scale = _checks.real("min_scale", min_scale, minimum=1.0)
    max_scale = _checks.real("max_scale", max_scale, minimum=min_scale)
    if DIGIT * max_scale > canvas:
        raise ValueError(f"canvas must hold the largest digit, 8·max_scale = {DIGIT * max_scale:g} pixels; "
                         f"got canvas = {canvas}")
    _checks.one_of("split", split, ("train", "test"))
    gen = torch.Generator().manual_seed(_checks.integer("seed", seed))
    first, last = (0, TRAIN_DIGITS) if split == "train" else (TRAIN_DIGITS, N_DIGITS)
    index = torch.randint(first, last, (n,), generator=gen)  # (n,)
    scales = min_scale + (max_scale - min_scale) * torch.rand(n, generator=gen)  # (n,)
    room = 1 - DIGIT * scales / canvas  # (n,): how far the centre may move, in normalised units
    centre = (2 * torch.rand(n, 2, generator=gen) - 1) * room[:, None]  # (n, 2): (u_row, u_col) in [-1, 1]
    zoom = canvas / (DIGIT * scales)  # (n,)
    theta = torch.zeros(n, 2, 3)
    # grid_sample's grid is (x, y) = (col, row): row 0 of theta maps the column coordinate
    theta[:, 0, 0], theta[:, 0, 2] = zoom, -centre[:, 1] * zoom
    theta[:, 1, 1], theta[:, 1, 2] = zoom, -centre[:, 0] * zoom
    digits, labels = _source()
    grid = F.affine_grid(theta, [n, 1, canvas, canvas], align_corners=False)  # (n, canvas, canvas, 2)
    images = F.grid_sample(digits[index], grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)  # (n, 1, canvas, canvas)
    centres = (centre + 1) * canvas / 2 - 0.5  # (n, 2): normalised -> pixel index (pixel centres at integers)
    return ScaledDigits(images, labels[index], scales, centres, index)
