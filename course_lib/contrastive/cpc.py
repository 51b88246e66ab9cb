"""Contrastive Predictive Coding on noisy oscillators: predict the future in latent space.

Paper: van den Oord, Li & Vinyals, *Representation Learning with Contrastive Predictive
Coding* (2018).

The model. A signal is cut into frames ``x_t``; an encoder maps each to ``z_t = g_enc(x_t)``;
a GRU summarises the past into a context ``c_t = g_ar(z_≤t)``; one linear map ``W_k`` per step
ahead scores a candidate future ``z``::

    f_k(z, c_t) = z · W_k c_t
    L_k = InfoNCE over the batch: c_t of sequence b must pick z_{t+k} of sequence b
          among the z_{t+k} of all B sequences         (positives on the diagonal)

and the loss is ``Σ_k L_k`` averaged over the time steps ``t``. The data
(:func:`oscillator_batch`) are sines whose frequency ``ω`` is drawn per sequence and whose phase
diffuses (a random walk), plus observation noise: the further ahead, the less the past
determines the phase, so accuracy at picking the positive falls with ``k``. ``ω`` is the slow
hidden variable; a linear probe on ``c_T`` (:func:`linear_probe_r2`) measures how well CPC has
encoded it without ever being told.

Differences from the paper: a linear+ReLU frame encoder instead of strided convolutions; the
negatives are the other sequences at the same time step (the paper also samples other times);
tiny sizes so training takes seconds on a CPU. Limitations: synthetic 1-D data only.

Notebook: ``06_self_supervised`` §5 (CPC). Tests: ``tests/test_contrastive_cpc.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.runtime import one_thread


@export("contrastive.CPCConfig")
@dataclass(frozen=True)
class CPCConfig:
    """Sizes of the data, the model and the training run."""

    frames: int = 24  # T: frames per sequence
    frame_len: int = 8  # samples per frame (the encoder's input)
    omega_min: float = 0.15  # radians per sample: the slowest oscillator
    omega_max: float = 0.6  # the fastest (below π: no aliasing)
    phase_noise: float = 0.12  # std of the phase random walk per sample
    obs_noise: float = 0.3  # std of the additive observation noise
    z_dim: int = 16  # encoder output
    c_dim: int = 32  # GRU context
    max_k: int = 6  # predict 1..max_k frames ahead
    batch: int = 64  # sequences per step: the positive plus batch - 1 negatives
    steps: int = 150  # optimiser steps
    lr: float = 3e-3  # Adam's learning rate


@export("contrastive.oscillator_batch")
def oscillator_batch(
    n: int, config: CPCConfig = CPCConfig(), generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy oscillators, framed.

    Returns:
        frames (Tensor[n, T, frame_len]) and the frequencies ω (Tensor[n]).
    """
    n = _checks.integer("n", n, minimum=1)
    length = config.frames * config.frame_len
    omega = config.omega_min + (config.omega_max - config.omega_min) * torch.rand(n, generator=generator)
    start = 2 * math.pi * torch.rand(n, 1, generator=generator)
    steps = omega[:, None] + config.phase_noise * torch.randn(n, length, generator=generator)  # (n, L)
    phase = start + steps.cumsum(dim=1)  # (n, L)
    signal = torch.sin(phase) + config.obs_noise * torch.randn(n, length, generator=generator)
    return signal.view(n, config.frames, config.frame_len), omega  # (n, T, frame_len), (n,)


@export("contrastive.CPC")
class CPC(nn.Module):
    """Encoder, GRU context and one linear predictor per step ahead (see the module docstring)."""

    def __init__(self, config: CPCConfig = CPCConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(nn.Linear(config.frame_len, 64), nn.ReLU(), nn.Linear(64, config.z_dim))
        self.gru = nn.GRU(config.z_dim, config.c_dim, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(config.c_dim, config.z_dim, bias=False)
                                        for _ in range(config.max_k))  # W_1 … W_K

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (Tensor[B, T, frame_len]) → z (Tensor[B, T, z_dim]), c (Tensor[B, T, c_dim])."""
        z = self.encoder(frames)  # (B, T, z_dim)
        c, _ = self.gru(z)  # (B, T, c_dim): c_t has seen z_1 … z_t
        return z, c

    def step_logits(self, z: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
        """Scores for ``k`` steps ahead: Tensor[T-k, B, B], ``[t, i, j] = z_{j,t+k} · W_k c_{i,t}``."""
        pred = self.predictors[k - 1](c[:, :-k])  # (B, T-k, z_dim)
        future = z[:, k:]  # (B, T-k, z_dim)
        return torch.einsum("itd,jtd->tij", pred, future)  # (T-k, B, B)

    def loss_and_accuracy(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The CPC loss (Σ_k of the mean InfoNCE) and the accuracy per k (Tensor[max_k])."""
        z, c = self(frames)
        total, accuracy = frames.new_zeros(()), []
        for k in range(1, self.config.max_k + 1):
            logits = self.step_logits(z, c, k)  # (T-k, B, B)
            # InfoNCE of every time step at once (info_nce_from_logits on each logits[t], batched)
            losses = torch.logsumexp(logits, dim=-1) - logits.diagonal(dim1=-2, dim2=-1)  # (T-k, B)
            total = total + losses.mean()
            target = torch.arange(logits.shape[-1], device=logits.device)
            accuracy.append((logits.argmax(-1) == target).float().mean())
        return total, torch.stack(accuracy).detach()


@export("contrastive.CPCResult")
@dataclass
class CPCResult:
    """What :func:`train_cpc` returns."""

    model: CPC  # the trained model
    losses: list[float]  # the loss at every step
    accuracy: torch.Tensor  # Tensor[max_k]: held-out accuracy of the positive per k
    chance: float  # 1 / batch


@export("contrastive.train_cpc")
def train_cpc(
    config: CPCConfig = CPCConfig(), seed: int = 0, progress: bool = False, device: torch.device | None = None
) -> CPCResult:
    """Train :class:`CPC` on fresh :func:`oscillator_batch` batches; measure accuracy per k.

    Args:
        config: sizes (see :class:`CPCConfig`). seed: all randomness.
        progress: show a tqdm bar.
        device: where the model trains (default :func:`course_lib.runtime.device`); the data
            are drawn on the CPU, so a seed gives the same batches everywhere.
    """
    _checks.instance("config", config, CPCConfig)
    dev = runtime.device() if device is None else torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = CPC(config).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = []
    with one_thread():
        for _ in tqdm(range(config.steps), disable=not progress, desc="CPC"):
            frames, _ = oscillator_batch(config.batch, config, gen)
            loss, _ = model.loss_and_accuracy(frames.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            held_out = [model.loss_and_accuracy(oscillator_batch(config.batch, config, gen)[0].to(dev))[1]
                        for _ in range(8)]
    return CPCResult(model, losses, torch.stack(held_out).mean(0).cpu(), 1.0 / config.batch)


@export("contrastive.linear_probe_r2")
def linear_probe_r2(model: CPC, n_train: int = 1024, n_test: int = 512, seed: int = 1, ridge: float = 1e-3) -> float:
    """R² of a ridge regression from the last context ``c_T`` to the frequency ω, on held-out data.

    0 means no better than predicting the mean frequency; 1 means ω is read off exactly.
    """
    _checks.instance("model", model, CPC)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        frames, omega = oscillator_batch(n_train + n_test, model.config, gen)
        device = next(model.parameters()).device
        features = model(frames.to(device))[1][:, -1].cpu()  # (n, c_dim): c_T
    features = torch.cat([features, torch.ones(len(features), 1)], dim=1).double()  # a bias column
    omega = omega.double()
    xtr, ytr, xte, yte = features[:n_train], omega[:n_train], features[n_train:], omega[n_train:]
    eye = torch.eye(xtr.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(xtr.T @ xtr + ridge * n_train * eye, xtr.T @ ytr)  # (c_dim + 1,)
    residual = ((xte @ w - yte) ** 2).sum()
    return float(1.0 - residual / ((yte - yte.mean()) ** 2).sum())
