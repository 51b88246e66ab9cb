"""SimCLR: learn an image encoder by matching two augmented views of each image with NT-Xent.

Paper: Chen, Kornblith, Norouzi & Hinton, *A Simple Framework for Contrastive Learning of Visual
Representations* (SimCLR, ICML 2020), Algorithm 1.

The method. For a batch of ``N`` images draw two views each (:func:`~course_lib.contrastive.augment.augment_images`),
encode them, ``h = f(x)`` (the representation kept afterwards), project, ``z = g(h)`` (a small MLP
used only by the loss), and minimise NT-Xent over the ``2N`` projections
(:func:`~course_lib.contrastive.losses.nt_xent`)::

    for each minibatch x (N images):
        x1, x2 = aug(x), aug(x)                  # two views, independent draws
        z1, z2 = g(f(x1)), g(f(x2))              # (N, projection)
        loss = nt_xent(z1, z2, τ)                # each view must find its partner among 2N - 1
        Adam step on f and g

The paper finds that the representation *before* the projection head is the better one for
downstream tasks (§4.2): the loss makes ``z`` invariant to the augmentations, throwing away what
they change, while ``h`` keeps more. The evaluation is a *linear probe*: a logistic regression
on frozen ``h`` (``course_lib.contrastive.experiment.probe_accuracy``).

Differences from the paper: a two-layer CNN on 8×8 greyscale digits instead of a ResNet-50 on
ImageNet; Adam instead of LARS with batches of 4096; shift, scale jitter and noise instead of crop,
colour distortion and blur; tens of epochs on 1,300 images (seconds on one CPU core). Limitations:
single device, in-batch negatives only.

Notebook: ``06_self_supervised`` §6 (SimCLR on digits), §7 (collapse). Tests: ``tests/test_contrastive_simclr.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.contrastive.augment import augment_images
from course_lib.contrastive.losses import nt_xent
from course_lib.runtime import one_thread


@export("contrastive.SimCLRConfig")
@dataclass(frozen=True)
class SimCLRConfig:
    """The model's sizes, the augmentations and the training run."""

    channels: int = 32  # channels of the first conv (the second has twice as many)
    features: int = 64  # dimension of the representation h = f(x), what the probe reads
    projection: int = 32  # dimension of z = g(h), what the loss sees
    temperature: float = 0.2  # NT-Xent's τ (0.2 beat 0.5 and 0.1 here; the paper's best on ImageNet: 0.1)
    batch: int = 256  # images per step: 2·batch views, 2·batch - 2 negatives per view
    epochs: int = 30  # passes over the unlabelled images
    lr: float = 2e-3  # Adam's learning rate
    max_shift: float = 1.0  # augmentation: largest shift, pixels (2 and a zoom of ±25% probed worse)
    scale_jitter: float = 0.1  # augmentation: zoom in [1 - j, 1 + j]
    noise_std: float = 0.1  # augmentation: Gaussian pixel noise (pixels in [0, 1])


@export("contrastive.DigitEncoder")
class DigitEncoder(nn.Module):
    """``f``: Tensor[N, 1, 8, 8] → h (Tensor[N, features]); two convs, then a linear layer."""

    def __init__(self, channels: int = 32, features: int = 64) -> None:
        super().__init__()
        channels = _checks.integer("channels", channels, minimum=1)
        self.features = _checks.integer("features", features, minimum=1)
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),  # (N, C, 8, 8)
            nn.Conv2d(channels, 2 * channels, 3, padding=1, stride=2), nn.ReLU(),  # (N, 2C, 4, 4)
            nn.Flatten(),  # (N, 2C·16)
            nn.Linear(2 * channels * 16, features), nn.ReLU(),  # (N, features)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (Tensor[N, 1, 8, 8]) → h (Tensor[N, features])."""
        _checks.tensor("images", images, ndim=4, floating=True)
        if tuple(images.shape[1:]) != (1, 8, 8):
            raise ValueError(f"images must have shape (N, 1, 8, 8); got {tuple(images.shape)}")
        return self.net(images)


@export("contrastive.SimCLR")
class SimCLR(nn.Module):
    """The encoder ``f`` and the projection head ``g`` (Linear-ReLU-Linear, SimCLR §2)."""

    def __init__(self, config: SimCLRConfig = SimCLRConfig()) -> None:
        super().__init__()
        _checks.instance("config", config, SimCLRConfig)
        self.config = config
        self.encoder = DigitEncoder(config.channels, config.features)
        self.head = nn.Sequential(nn.Linear(config.features, config.features), nn.ReLU(),
                                  nn.Linear(config.features, config.projection))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (Tensor[N, 1, 8, 8]) → z = g(f(x)) (Tensor[N, projection])."""
        return self.head(self.encoder(images))

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """NT-Xent between two fresh views of ``images`` (Tensor[N, 1, 8, 8]); a scalar."""
        c = self.config
        views = [augment_images(images, generator, max_shift=c.max_shift, scale_jitter=c.scale_jitter,
                                noise_std=c.noise_std) for _ in range(2)]
        return nt_xent(self(views[0]), self(views[1]), c.temperature)


@export("contrastive.SimCLRResult")
@dataclass
class SimCLRResult:
    """What :func:`train_simclr` returns."""

    model: SimCLR  # the trained encoder and head (keep model.encoder)
    losses: list[float]  # NT-Xent at every step
    chance: float  # log(2·batch - 1): the loss when every view is scored alike (uniform logits)


@export("contrastive.train_simclr")
def train_simclr(
    images: torch.Tensor,
    config: SimCLRConfig = SimCLRConfig(),
    seed: int = 0,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> SimCLRResult:
    """Train :class:`SimCLR` on unlabelled ``images`` for ``config.epochs`` shuffled passes.

    Args:
        images (Tensor[N, 1, 8, 8]): floating point, pixels in [0, 1]; no labels are used.
        config: sizes, augmentations and schedule (:class:`SimCLRConfig`).
        seed: the initialisation, the shuffling and every augmentation.
        progress: show a tqdm bar over epochs.
        device: where to train (default :func:`course_lib.runtime.device`); views are drawn on the CPU.

    Returns:
        :class:`SimCLRResult`. The last batch of an epoch is dropped when it has fewer than two images
        (NT-Xent needs a negative).

    Raises:
        TypeError / ValueError: not a float tensor of shape (N, 1, 8, 8), fewer than two images, a bad config.
    """
    _checks.tensor("images", images, ndim=4, floating=True)
    _checks.instance("config", config, SimCLRConfig)
    if tuple(images.shape[1:]) != (1, 8, 8) or len(images) < 2:
        raise ValueError(f"images must have shape (N, 1, 8, 8) with N >= 2; got {tuple(images.shape)}")
    _checks.integer("config.batch", config.batch, minimum=2)
    _checks.integer("config.epochs", config.epochs, minimum=1)
    _checks.real("config.temperature", config.temperature, minimum=0.0, open_min=True)
    seed = _checks.integer("seed", seed)
    dev = runtime.device() if device is None else torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SimCLR(config).to(dev)
    images = images.to(dev, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = []
    with one_thread():
        for _ in tqdm(range(config.epochs), disable=not progress, desc="SimCLR"):
            order = torch.randperm(len(images), generator=gen)
            for batch in order.split(config.batch):
                if len(batch) < 2:
                    continue
                loss = model.loss(images[batch.to(dev)], gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
    model.eval()
    chance = float(torch.log(torch.tensor(2.0 * min(config.batch, len(images)) - 1)))
    return SimCLRResult(model, losses, chance)
