"""The chapter's experiments: can a deformable conv *learn* where to sample?

**1 · Learning one scale** (§4). Target: a 3×3 convolution with ``dilation=2`` (a 5×5 receptive
field) applied to handwritten digits (scikit-learn's bundled 8×8 digits, upsampled to 16×16).
Contestants:

* a plain 3×3 conv (``padding=1``) with the best weights there are — solved exactly by least
  squares on the im2col matrix, so no optimiser luck is involved. A fixed 3×3 grid cannot see
  pixels two steps away, so some error remains whatever the weights;
* a deformable 3×3 conv with the target's weights whose offsets are the one-parameter family
  :func:`~course_lib.deform.offsets.scale_offsets` ``(s)``: ``s = 1`` is the plain grid,
  ``s = 2`` is the dilated one. :func:`scale_sweep` measures the error for a range of ``s``;
  :func:`learn_scale` finds ``s`` by gradient descent through bilinear sampling, starting from
  the plain grid.

Free per-tap offsets fitted jointly with the weights get stuck in local minima on this task (each
tap only feels the pixels within one step of where it samples): the paper predicts them with a
conv over features, inside a network trained on a real task — the second experiment.

**2 · Offsets predicted per position** (§6; Dai et al., 2017, §3 and Fig. 5-6). A small
classifier (:class:`DigitClassifier`: conv → max-pool 2 → conv → *a 3×3 deformable conv whose
offsets a plain conv predicts from the features, initialised to zero* → global max-pool →
linear) learns :func:`~course_lib.deform.scaled_digits.scaled_digits` — digits drawn at random
scales — with :func:`train_classifier` (:class:`ScaleConfig`). :func:`measure_offsets` then
reads the offsets the layer predicts on test digits and relates their *spread* to the digit's
scale: :func:`sampling_spread` is the root-mean-square distance of the nine sampling points from
their centroid divided by that of the regular grid, an *effective dilation* (1 = the plain grid,
2 = the grid of a dilation-2 conv), averaged over the positions on the digit. The same network
with a plain conv in place of the deformable one is the baseline. The committed checkpoint
(:data:`CHECKPOINT`, :func:`load_classifiers`) is made by ``python -m course_lib.deform.train``.

Notebook: ``08_deformable_conv`` §4 and §6. Tests: ``tests/test_deform.py`` (1) and
``tests/test_deform_scaled.py`` (2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import DeformConv2d, _sampling_positions, deform_conv2d, kernel_grid
from course_lib.deform.offsets import offset_field, scale_offsets
from course_lib.deform.scaled_digits import ScaledDigits, scaled_digits
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


# --- 2 · offsets predicted per position, on digits at random scales ------------------------------

CHECKPOINT = Path(__file__).parent / "checkpoints" / "scaled_digits.pt"  # made by python -m course_lib.deform.train
STRIDE = 2  # the max-pool before the deformable layer: one feature pixel is STRIDE input pixels
GRID_RMS = math.sqrt(4 / 3)  # RMS distance of a regular 3×3 grid's points from its centre (feature px)


@export("deform.experiment.ScaleConfig")
@dataclass(frozen=True)
class ScaleConfig:
    """How :func:`train_classifier` trains a :class:`DigitClassifier` on scaled digits."""

    deformable: bool = True  # the third conv is a DeformConv2d (else an nn.Conv2d of the same size)
    channels: tuple[int, int, int] = (8, 16, 32)  # output channels of the three convs
    canvas: int = 32  # image side in pixels
    min_scale: float = 1.0  # digits cover 8·s pixels, s uniform in [min_scale, max_scale]
    max_scale: float = 3.5
    batch: int = 64  # images per step, freshly drawn every step (never the same batch twice)
    steps: int = 300  # Adam steps
    lr: float = 1e-2  # peak learning rate of the one-cycle schedule (warm-up, then cosine decay)
    seed: int = 0  # seeds the initial weights and the batches


@export("deform.experiment.DigitClassifier")
class DigitClassifier(nn.Module):
    """conv 3×3 → ReLU → max-pool 2 → conv 3×3 → ReLU → (deformable) conv 3×3 → ReLU → max → linear.

    The deformable layer is :class:`~course_lib.deform.DeformConv2d` without a mask (DCNv1): its
    ``offset_conv`` predicts ``2·3·3 = 18`` offset channels per position from the second conv's
    features and starts at zero, so a fresh network equals its plain twin (``deformable=False``).

    Shapes: ``forward(x (Tensor[B, 1, H, W])) -> Tensor[B, 10]`` (logits); H, W even.
    """

    def __init__(self, deformable: bool = True, channels: tuple[int, int, int] = (8, 16, 32)) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels must be three ints (one per conv); got {channels!r}")
        c1, c2, c3 = (_checks.integer(f"channels[{i}]", c, minimum=1) for i, c in enumerate(channels))
        self.deformable = bool(deformable)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.layer: nn.Module = (DeformConv2d(c2, c3, 3, padding=1, modulated=False) if deformable
                                 else nn.Conv2d(c2, c3, 3, padding=1))
        self.head = nn.Linear(c3, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the (deformable) layer reads: ``Tensor[B, c2, H/2, W/2]``."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, c1, H/2, W/2)
        return F.relu(self.conv2(h))  # (B, c2, H/2, W/2)

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's offsets ``Tensor[B, 18, H/2, W/2]`` in feature pixels (zeros for the plain twin)."""
        features = self.features(x)
        if isinstance(self.layer, DeformConv2d):
            return self.layer.offsets_and_mask(features)[0]
        b, _, h, w = features.shape
        return features.new_zeros(b, 18, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.layer(self.features(x)))  # (B, c3, H/2, W/2)
        return self.head(h.amax(dim=(2, 3)))  # (B, 10): global max-pool, so any position counts


def _batch(config: ScaleConfig, n: int, step: int, split: str = "train") -> ScaledDigits:
    return scaled_digits(n, config.canvas, config.min_scale, config.max_scale, split,
                         seed=config.seed * 1_000_003 + step)


@export("deform.experiment.train_classifier")
def train_classifier(config: ScaleConfig = ScaleConfig(), progress: bool = True
                     ) -> tuple[DigitClassifier, list[float]]:
    """Train a :class:`DigitClassifier` on freshly drawn scaled digits (Adam, one-cycle schedule).

    Runs on one CPU thread (:func:`~course_lib.runtime.one_thread`); seeded, so the same config
    gives the same weights on the same machine and torch version.

    Returns:
        The trained model (in eval mode) and the training loss of every step.

    Raises:
        TypeError: ``config`` not a :class:`ScaleConfig`.
        ValueError: ``steps`` or ``batch`` below 1.
    """
    _checks.instance("config", config, ScaleConfig)
    steps = _checks.integer("config.steps", config.steps, minimum=1)
    _checks.integer("config.batch", config.batch, minimum=1)
    with one_thread():
        torch.manual_seed(config.seed)
        model = DigitClassifier(config.deformable, config.channels)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
        losses = []
        for step in tqdm(range(steps), desc="training", disable=not progress, leave=False):
            batch = _batch(config, config.batch, step)
            loss = F.cross_entropy(model(batch.images), batch.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
    return model.eval(), losses


@export("deform.experiment.held_out_digits")
def held_out_digits(config: ScaleConfig = ScaleConfig(), n: int = 1000) -> ScaledDigits:
    """``n`` digits of the test split drawn like the training data (a seed no training step uses)."""
    return scaled_digits(n, config.canvas, config.min_scale, config.max_scale, "test", seed=2**31 - 1)


CHUNK = 200  # images per forward pass in evaluation: the deformable layer's columns of 200 digits take ~60 MB


def _chunked(fn: Any, images: torch.Tensor) -> torch.Tensor:
    """``fn(images)`` computed :data:`CHUNK` images at a time, without gradients, on one thread."""
    with torch.no_grad(), one_thread():
        return torch.cat([fn(images[i:i + CHUNK]) for i in range(0, len(images), CHUNK)])


@export("deform.experiment.accuracy")
def accuracy(model: nn.Module, data: ScaledDigits) -> float:
    """The fraction of ``data`` that ``model`` classifies correctly."""
    return (_chunked(model, data.images).argmax(1) == data.labels).double().mean().item()


@export("deform.experiment.sampling_spread")
def sampling_spread(offset: torch.Tensor) -> torch.Tensor:
    """The *effective dilation* of a 3×3 deformable conv's sampling points, per output position.

    Root-mean-square distance of the nine points ``p_k + Δp_k`` from their centroid, divided by
    that of the regular grid (``sqrt(4/3)``): 1 for zero offsets, ``d`` for the grid of a
    dilation-``d`` conv (:func:`~course_lib.deform.offsets.scale_offsets` ``(d)``). A shift of the
    whole grid does not change it.

    Args:
        offset (Tensor[B, 18, H, W]): one offset group of a 3×3 kernel, torchvision's layout.

    Returns:
        Tensor[B, H, W].

    Raises:
        TypeError, ValueError: ``offset`` not a floating 4-D tensor with 18 channels.
    """
    _checks.tensor("offset", offset, ndim=4, floating=True)
    if offset.shape[1] != 18:
        raise ValueError(f"offset must have 18 channels (one group of a 3x3 kernel); got shape {tuple(offset.shape)}")
    y, x = _sampling_positions(offset, (3, 3), (1, 1), (1, 1), (1, 1))  # (B, 1, 9, H, W) each
    dy, dx = y - y.mean(2, keepdim=True), x - x.mean(2, keepdim=True)  # (B, 1, 9, H, W)
    return (dy**2 + dx**2).mean(2)[:, 0].sqrt() / GRID_RMS  # (B, H, W)


@export("deform.experiment.on_digit")
def on_digit(images: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Feature positions on the digit: ``Tensor[B, H/2, W/2]`` bool, where the 2×2-pooled image > threshold."""
    _checks.tensor("images", images, ndim=4, floating=True)
    return F.avg_pool2d(images, STRIDE)[:, 0] > _checks.real("threshold", threshold, minimum=0)


@export("deform.experiment.OffsetScale")
@dataclass(frozen=True)
class OffsetScale:
    """The learned offsets against the digit's scale (see :func:`measure_offsets`)."""

    scales: torch.Tensor  # Tensor[N]: each test digit's scale s
    spread: torch.Tensor  # Tensor[N]: mean effective dilation over the positions on the digit
    magnitude: torch.Tensor  # Tensor[N]: mean |Δp| over the taps and positions on the digit, input pixels
    edges: list[float] = field(default_factory=list)  # the scale buckets' edges
    correlation: float = 0.0  # Pearson correlation of spread and scale

    def buckets(self) -> list[tuple[float, float, float, float, int]]:
        """Per scale bucket: (low edge, high edge, mean spread, mean magnitude, count)."""
        rows = []
        for lo, hi in zip(self.edges[:-1], self.edges[1:]):
            inside = (self.scales >= lo) & (self.scales <= hi)
            count = int(inside.sum())
            rows.append((lo, hi, self.spread[inside].mean().item() if count else math.nan,
                         self.magnitude[inside].mean().item() if count else math.nan, count))
        return rows


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Pearson correlation of two ``Tensor[N]`` (nan when either is constant)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return ((a * b).sum() / (a.norm() * b.norm())).item()


@export("deform.experiment.measure_offsets")
def measure_offsets(model: DigitClassifier, data: ScaledDigits, buckets: int = 5,
                    threshold: float = 0.1) -> OffsetScale:
    """Spread and size of the offsets ``model`` predicts on each digit of ``data``, against its scale.

    Per image: :func:`sampling_spread` and the mean offset length (times :data:`STRIDE`: input
    pixels), averaged over the positions :func:`on_digit` (``threshold``); then the Pearson
    correlation of spread and scale, and ``buckets`` equal-width scale buckets.

    Raises:
        TypeError: ``model`` not a :class:`DigitClassifier`.
        ValueError: ``buckets < 1``.
    """
    _checks.instance("model", model, DigitClassifier)
    buckets = _checks.integer("buckets", buckets, minimum=1)
    offset = _chunked(model.offsets, data.images)  # (N, 18, H/2, W/2)
    on = on_digit(data.images, threshold)  # (N, H/2, W/2)
    count = on.sum((1, 2)).clamp(min=1)  # (N,)
    spread = (sampling_spread(offset) * on).sum((1, 2)) / count  # (N,)
    lengths = offset.reshape(len(data), 9, 2, *offset.shape[2:]).norm(dim=2).mean(1)  # (N, H/2, W/2)
    magnitude = STRIDE * (lengths * on).sum((1, 2)) / count  # (N,)
    lo, hi = data.scales.min().item(), data.scales.max().item()
    edges = [lo + (hi - lo) * i / buckets for i in range(buckets + 1)]
    return OffsetScale(data.scales, spread, magnitude, edges, pearson(spread, data.scales))


def save_classifiers(models: dict[str, DigitClassifier], config: ScaleConfig, path: str | Path,
                     **info: Any) -> None:
    """Write the state dicts of ``models`` (name -> model), the config and ``info`` to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(config), "models": {k: m.state_dict() for k, m in models.items()},
                "info": info}, path)


@export("deform.experiment.load_classifiers")
def load_classifiers(path: str | Path = CHECKPOINT) -> tuple[dict[str, DigitClassifier], ScaleConfig, dict]:
    """The committed models (``"deformable"``, ``"plain"``), their :class:`ScaleConfig` and the recipe's info.

    ``info["command"]`` is the command that wrote the file; ``info`` also records the training
    time and the seeds' measurements.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    raw = dict(blob["config"])
    raw["channels"] = tuple(raw["channels"])
    config = ScaleConfig(**raw)
    models = {}
    for name, state in blob["models"].items():
        model = DigitClassifier(deformable=name == "deformable", channels=config.channels)
        model.load_state_dict(state)
        models[name] = model.eval()
    return models, config, blob["info"]
