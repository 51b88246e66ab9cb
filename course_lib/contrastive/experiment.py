"""The chapter's measurements: MI bounds (§4), SimCLR's linear probe and label sweep (§6), collapse (§7).

**MI bounds.**

For pairs of ``d``-dimensional Gaussians with per-coordinate correlation ``ρ`` the mutual
information is known (:func:`~course_lib.contrastive.mi.gaussian_mi`) and so is the optimal
critic ``log p(y|x)/p(y)`` (:func:`~course_lib.contrastive.mi.gaussian_log_density_ratio`).
:func:`optimal_bounds` evaluates the InfoNCE, NWJ and DV bounds with that critic on ``batches``
independent batches of ``N`` pairs and keeps every batch's value, so the notebook can show the
spread (error bars), not only the mean: with no learning involved, any gap or noise is the
bound's own. NWJ's optimal critic is ``1 + log-ratio`` (Poole et al. 2019, §2.2); InfoNCE and
DV are invariant to that shift. :func:`trained_bound` does the same for a learnt separable
critic (:func:`~course_lib.contrastive.mi.train_critic`).

Measured (``06_self_supervised`` §4, d = 4, N = 64, 20 batches): InfoNCE's spread stays a few
hundredths of a nat at every ρ, while NWJ's and DV's grow with the MI (about ±1–2 nats at
ρ = 0.99), because both average ``e^f`` over the negatives — a quantity whose variance grows
like ``e^I`` (McAllester & Stratos 2020; Song & Ermon 2020).

**SimCLR on digits.** :func:`digits_split` splits scikit-learn's digits once; :func:`probe_accuracy`
fits a logistic regression on frozen features with ``per_class`` labels per class and scores it on
the held-out images; :func:`train_supervised` trains the same encoder from scratch on those labels
with the same augmentations; :func:`label_efficiency` runs all four (SimCLR, random encoder, raw
pixels, supervised) at each label count. Measured with ``python -m course_lib.contrastive.experiment``
(seeds 0, 1, 2; ``SimCLRConfig()``): the SimCLR probe beat the random-encoder probe at every count
(by 0.05 to 0.34) and the pixel probe at one label per class (by 0.05 to 0.12); against supervised
training it was ahead at some counts and behind at others (within about ±0.05), so the notebook
asserts no ordering there.

**Collapse.** :func:`collapse_run` trains SimCLR's network for ``steps`` with one of
``COLLAPSE_LOSSES`` and records the spread of ``z/‖z‖``: the plain cosine loss (no predictor, no
stop-gradient) collapses (spread < 0.01), NT-Xent, Barlow Twins and SimSiam do not.

Reached as ``course_lib.contrastive.experiment.<name>`` (not re-exported by the package).
Notebook: ``06_self_supervised`` §4, §6, §7. Tests: ``tests/test_contrastive.py``,
``tests/test_contrastive_simclr.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.contrastive.augment import augment_images
from course_lib.contrastive.losses import barlow_twins, negative_cosine, nt_xent
from course_lib.contrastive.mi import (
    dv_bound,
    gaussian_log_density_ratio,
    gaussian_mi,
    infonce_bound,
    nwj_bound,
    sample_correlated_gaussians,
    train_critic,
)
from course_lib.contrastive.simclr import DigitEncoder, SimCLR, SimCLRConfig, train_simclr
from course_lib.runtime import one_thread

BOUNDS = ("infonce", "nwj", "dv")


@export("contrastive.experiment.BoundSpread")
@dataclass(frozen=True)
class BoundSpread:
    """Every batch's value of the three bounds at one ``(ρ, N)``."""

    rho: float  # per-coordinate correlation
    n: int  # pairs per batch
    true_mi: float  # -d/2 log(1 - ρ²), nats
    infonce: torch.Tensor  # Tensor[batches]: log N - InfoNCE loss, per batch
    nwj: torch.Tensor  # Tensor[batches]: NWJ with critic 1 + log-ratio
    dv: torch.Tensor  # Tensor[batches]: Donsker–Varadhan

    def mean(self, bound: str) -> float:
        """The mean over batches of ``bound`` (one of ``BOUNDS``)."""
        return getattr(self, _checks.one_of("bound", bound, BOUNDS)).mean().item()

    def std(self, bound: str) -> float:
        """The standard deviation over batches (unbiased) of ``bound``."""
        return getattr(self, _checks.one_of("bound", bound, BOUNDS)).std().item()


@export("contrastive.experiment.optimal_bounds")
def optimal_bounds(rho: float, n: int, dim: int = 4, batches: int = 20, seed: int = 0) -> BoundSpread:
    """The three bounds with the optimal critic on ``batches`` fresh batches of ``n`` pairs.

    Raises:
        ValueError / TypeError: ``rho`` outside [0, 1), ``n < 2``, ``batches < 2`` (a spread needs two).
    """
    n = _checks.integer("n", n, minimum=2)
    batches = _checks.integer("batches", batches, minimum=2)
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, list[float]] = {b: [] for b in BOUNDS}
    for _ in range(batches):
        x, y = sample_correlated_gaussians(n, dim, rho, gen)
        scores = gaussian_log_density_ratio(x, y, rho)  # (n, n)
        values["infonce"].append(infonce_bound(scores).item())
        values["nwj"].append(nwj_bound(scores + 1).item())  # NWJ's optimal critic is 1 + log-ratio
        values["dv"].append(dv_bound(scores).item())
    as_tensor = {b: torch.tensor(v, dtype=torch.float64) for b, v in values.items()}
    return BoundSpread(rho=rho, n=n, true_mi=gaussian_mi(rho, dim), **as_tensor)


@export("contrastive.experiment.trained_bound")
def trained_bound(rho: float, dim: int = 4, batch: int = 64, steps: int = 200, batches: int = 20,
                  seed: int = 123) -> torch.Tensor:
    """InfoNCE bound of a critic trained for ``steps`` Adam steps, on ``batches`` held-out batches.

    Returns:
        Tensor[batches]: the bound on each held-out batch (drawn with ``seed``, unseen in training).
    """
    critic, _ = train_critic(rho, dim, batch=batch, steps=steps)
    gen = torch.Generator().manual_seed(seed)
    dev = runtime.device()
    out = []
    with torch.no_grad():
        for _ in range(batches):
            x, y = sample_correlated_gaussians(batch, dim, rho, gen)
            out.append(infonce_bound(critic(x.to(dev), y.to(dev))).item())
    return torch.tensor(out, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# SimCLR on scikit-learn's digits (§6): the split, the linear probe, the supervised baseline.
# ---------------------------------------------------------------------------------------------


@export("contrastive.experiment.DigitsSplit")
@dataclass(frozen=True)
class DigitsSplit:
    """scikit-learn's 1,797 digits, pixels in [0, 1], split once into train and held-out test."""

    train_images: torch.Tensor  # Tensor[N_train, 1, 8, 8], float32: pretraining uses these, unlabelled
    train_labels: torch.Tensor  # Tensor[N_train], int64: the probe sees only a few of them
    test_images: torch.Tensor  # Tensor[N_test, 1, 8, 8]: every accuracy is measured here
    test_labels: torch.Tensor  # Tensor[N_test], int64


@export("contrastive.experiment.digits_split")
def digits_split(test_fraction: float = 0.3, seed: int = 0) -> DigitsSplit:
    """A random split of ``sklearn.datasets.load_digits`` (shipped with scikit-learn: no download).

    Raises:
        ValueError / TypeError: ``test_fraction`` outside (0, 1), a non-int seed.
    """
    from sklearn.datasets import load_digits  # imported here: only this experiment needs it

    test_fraction = _checks.real("test_fraction", test_fraction, minimum=0.0, maximum=0.99, open_min=True)
    seed = _checks.integer("seed", seed)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16  # (1797, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.int64)  # (1797,)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(test_fraction * len(images))))
    test, train = order[:n_test], order[n_test:]
    return DigitsSplit(images[train], labels[train], images[test], labels[test])


@export("contrastive.experiment.labelled_subset")
def labelled_subset(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` random examples of every class in ``labels`` (Tensor[N], int).

    Returns:
        Tensor[classes · per_class] of int64, sorted.

    Raises:
        ValueError: ``per_class < 1``, or a class with fewer than ``per_class`` examples.
    """
    _checks.tensor("labels", labels, ndim=1, dtypes=(torch.int64, torch.int32))
    per_class = _checks.integer("per_class", per_class, minimum=1)
    gen = torch.Generator().manual_seed(_checks.integer("seed", seed))
    chosen = []
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < per_class:
            raise ValueError(f"per_class={per_class} but class {c} has only {len(members)} examples")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(chosen).sort().values


def _features(encoder: torch.nn.Module | None, images: torch.Tensor) -> np.ndarray:
    """The frozen encoder's features (or the raw pixels for ``None``) as ndarray[N, F]."""
    if encoder is None:
        return images.flatten(1).numpy()
    encoder.eval()
    with torch.no_grad():
        device = next(encoder.parameters()).device
        return encoder(images.to(device)).cpu().numpy()


@export("contrastive.experiment.probe_accuracy")
def probe_accuracy(encoder: torch.nn.Module | None, split: DigitsSplit, per_class: int | None = None,
                   seed: int = 0) -> float:
    """Test accuracy of a linear probe: logistic regression on frozen features.

    The probe (scikit-learn's ``StandardScaler`` + ``LogisticRegression``, L2, ``C = 1``) is fit on
    ``per_class`` labelled training images per class (all of them for ``None``) and scored on the
    held-out ``split.test_*``. ``encoder=None`` probes the raw pixels.

    Raises:
        TypeError: ``encoder`` is neither an ``nn.Module`` nor ``None``; ``split`` is not a :class:`DigitsSplit`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if encoder is not None:
        _checks.instance("encoder", encoder, torch.nn.Module)
    _checks.instance("split", split, DigitsSplit)
    index = (torch.arange(len(split.train_labels)) if per_class is None
             else labelled_subset(split.train_labels, per_class, seed))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    with one_thread():
        probe.fit(_features(encoder, split.train_images[index]), split.train_labels[index].numpy())
        return float(probe.score(_features(encoder, split.test_images), split.test_labels.numpy()))


@export("contrastive.experiment.train_supervised")
def train_supervised(split: DigitsSplit, per_class: int, config: SimCLRConfig | None = None, steps: int = 200,
                     seed: int = 0) -> float:
    """The baseline: the same encoder plus a linear head, trained from scratch on few labels.

    Cross-entropy on ``per_class`` labelled images per class, with the *same* augmentations as
    SimCLR (a fair baseline: augmentation alone is a strong regulariser), full batches of at most
    256, ``steps`` Adam steps at ``config.lr``. ``config`` (default ``SimCLRConfig()``) gives the
    encoder's sizes, the augmentations and the learning rate.

    Returns:
        The held-out test accuracy of the network (encoder + its own linear head).

    Raises:
        ValueError / TypeError: ``steps < 1``, a bad ``per_class`` (see :func:`labelled_subset`).
    """
    _checks.instance("split", split, DigitsSplit)
    config = _checks.instance("config", SimCLRConfig() if config is None else config, SimCLRConfig)
    steps = _checks.integer("steps", steps, minimum=1)
    index = labelled_subset(split.train_labels, per_class, seed)
    images, labels = split.train_images[index], split.train_labels[index]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(DigitEncoder(config.channels, config.features), torch.nn.Linear(config.features, 10))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    with one_thread():
        for _ in range(steps):
            batch = torch.randperm(len(images), generator=gen)[:256]
            views = augment_images(images[batch], gen, max_shift=config.max_shift,
                                   scale_jitter=config.scale_jitter, noise_std=config.noise_std)
            loss = F.cross_entropy(model(views), labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            predicted = model(split.test_images).argmax(dim=1)  # (N_test,)
    return float((predicted == split.test_labels).float().mean())


@export("contrastive.experiment.LabelEfficiency")
@dataclass(frozen=True)
class LabelEfficiency:
    """Held-out accuracy per number of labels per class, for each way of getting features."""

    per_class: tuple[int, ...]  # labelled training images per class
    simclr: tuple[float, ...]  # linear probe on the SimCLR encoder's h
    random: tuple[float, ...]  # linear probe on the same encoder at its random initialisation
    pixels: tuple[float, ...]  # linear probe on the 64 raw pixels
    supervised: tuple[float, ...]  # the same encoder trained from scratch on those labels only


@export("contrastive.experiment.label_efficiency")
def label_efficiency(simclr: SimCLR, split: DigitsSplit, per_class: tuple[int, ...] = (1, 5, 10, 50),
                     seed: int = 0, supervised_steps: int = 200, progress: bool = False) -> LabelEfficiency:
    """The semi-supervised figure: every column of :class:`LabelEfficiency` at every ``per_class``.

    The random encoder is ``DigitEncoder`` initialised with ``torch.manual_seed(seed)``: the same
    initialisation :func:`~course_lib.contrastive.simclr.train_simclr` starts from with that seed.
    """
    _checks.instance("simclr", simclr, SimCLR)
    torch.manual_seed(seed)
    random_encoder = SimCLR(simclr.config).encoder
    rows: dict[str, list[float]] = {"simclr": [], "random": [], "pixels": [], "supervised": []}
    for k in tqdm(per_class, disable=not progress, desc="labels per class"):
        rows["simclr"].append(probe_accuracy(simclr.encoder, split, k, seed))
        rows["random"].append(probe_accuracy(random_encoder, split, k, seed))
        rows["pixels"].append(probe_accuracy(None, split, k, seed))
        rows["supervised"].append(train_supervised(split, k, simclr.config, supervised_steps, seed))
    return LabelEfficiency(tuple(per_class), **{name: tuple(v) for name, v in rows.items()})


# ---------------------------------------------------------------------------------------------
# Collapse (§7): four losses, one network; does the output stay spread out?
# ---------------------------------------------------------------------------------------------

COLLAPSE_LOSSES = ("nt_xent", "barlow_twins", "simsiam", "cosine")


@export("contrastive.experiment.CollapseRun")
@dataclass(frozen=True)
class CollapseRun:
    """One :func:`collapse_run`: the loss and the spread of the output at every step."""

    loss: str  # one of COLLAPSE_LOSSES
    losses: tuple[float, ...]  # the training loss at every step
    spread: tuple[float, ...]  # √D · mean over dims of the batch std of z/‖z‖: ≈ 1 spread out, 0 collapsed


def _spread(z: torch.Tensor) -> float:
    """√D · mean_d std_N(z/‖z‖): SimSiam's collapse monitor (Chen & He 2021, Fig. 2), scaled to ≈ 1."""
    zn = F.normalize(z.detach(), dim=1)  # (N, D)
    return float(zn.std(dim=0).mean() * zn.shape[1] ** 0.5)


@export("contrastive.experiment.collapse_run")
def collapse_run(images: torch.Tensor, loss: str, steps: int = 60, config: SimCLRConfig | None = None,
                 seed: int = 0) -> CollapseRun:
    """Train :class:`~course_lib.contrastive.simclr.SimCLR`'s encoder and head with one of four losses.

    ``"nt_xent"`` (SimCLR, negatives), ``"barlow_twins"`` (cross-correlation to the identity),
    ``"simsiam"`` (a predictor MLP ``q`` and stop-gradient: ``D(q(z1), z2)/2 + D(q(z2), z1)/2``,
    Chen & He 2021, Algorithm 1) and ``"cosine"`` (``-cos(z1, z2)`` with neither predictor nor
    stop-gradient). Same network, augmentations, batches and Adam steps for all four; a step is one
    random batch of ``config.batch`` images.

    Raises:
        ValueError / TypeError: an unknown ``loss``, ``steps < 1``, bad ``images`` (as :func:`train_simclr`).
    """
    _checks.tensor("images", images, ndim=4, floating=True)
    _checks.one_of("loss", loss, COLLAPSE_LOSSES)
    steps = _checks.integer("steps", steps, minimum=1)
    config = _checks.instance("config", SimCLRConfig() if config is None else config, SimCLRConfig)
    torch.manual_seed(_checks.integer("seed", seed))
    gen = torch.Generator().manual_seed(seed)
    model = SimCLR(config)
    p = config.projection
    # SimSiam's predictor: a bottleneck MLP with batch norm on its hidden layer (the paper's §3).
    predictor = torch.nn.Sequential(torch.nn.Linear(p, p // 2 + 1), torch.nn.BatchNorm1d(p // 2 + 1),
                                    torch.nn.ReLU(), torch.nn.Linear(p // 2 + 1, p))
    params = [*model.parameters(), *(predictor.parameters() if loss == "simsiam" else [])]
    opt = torch.optim.Adam(params, lr=config.lr)
    losses, spread = [], []
    with one_thread():
        for _ in range(steps):
            batch = images[torch.randperm(len(images), generator=gen)[:config.batch]]
            x1, x2 = (augment_images(batch, gen, max_shift=config.max_shift, scale_jitter=config.scale_jitter,
                                     noise_std=config.noise_std) for _ in range(2))
            z1, z2 = model(x1), model(x2)  # (N, projection) each
            if loss == "nt_xent":
                value = nt_xent(z1, z2, config.temperature)
            elif loss == "barlow_twins":
                value = barlow_twins(z1, z2)
            elif loss == "simsiam":
                value = 0.5 * negative_cosine(predictor(z1), z2) + 0.5 * negative_cosine(predictor(z2), z1)
            else:
                value = negative_cosine(z1, z2, stop_gradient=False)
            opt.zero_grad()
            value.backward()
            opt.step()
            losses.append(value.item())
            spread.append(_spread(z1))
    return CollapseRun(loss, tuple(losses), tuple(spread))


def _main() -> None:
    """Print the SimCLR sweep and the collapse spreads for seeds 0, 1, 2 (the numbers the notebook asserts on)."""
    split = digits_split()
    for seed in (0, 1, 2):
        run = train_simclr(split.train_images, SimCLRConfig(), seed=seed)
        table = label_efficiency(run.model, split, seed=seed)
        print(f"seed {seed}: labels per class {table.per_class}")
        for name in ("simclr", "random", "pixels", "supervised"):
            print(f"  {name:10s} " + " ".join(f"{v:.3f}" for v in getattr(table, name)))
        spreads = {loss: collapse_run(split.train_images, loss, seed=seed).spread[-1] for loss in COLLAPSE_LOSSES}
        print("  final spread: " + ", ".join(f"{k} {v:.4f}" for k, v in spreads.items()))


if __name__ == "__main__":  # python -m course_lib.contrastive.experiment
    _main()
