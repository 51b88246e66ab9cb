"""The InfoNCE explorer: a batch's similarity matrix, each row's softmax, the loss and the bound.

:func:`info_nce_view` draws, for ``N`` pairs ``(x_i, y_i)`` of correlated Gaussians
(:func:`~course_lib.contrastive.mi.sample_correlated_gaussians`, a fixed seed):

* left — the cosine-similarity matrix ``cos(x_i, y_j)``, positives on the diagonal;
* right — the softmax of each row of ``cos / τ``: the probability the loss gives to each key
  being query ``i``'s partner, the positive outlined (green when it is the row's largest).

The caption gives the numbers: the InfoNCE loss (:func:`~course_lib.contrastive.losses.info_nce`),
the bound ``log N - loss`` next to ``log N`` and the true MI, and how many rows pick their
positive. Raise the correlation and the diagonal lights up; lower the temperature and the rows
sharpen. :func:`info_nce_widget` wires sliders to the view.

Notebook: ``06_self_supervised`` §6 (widget). Tests: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from course_lib import _checks
from course_lib._export import export
from course_lib.contrastive.losses import info_nce
from course_lib.contrastive.mi import gaussian_mi, sample_correlated_gaussians
from course_lib.widgets import View, ViewWidget

DIM = 8  # of the example embeddings


@export("contrastive.info_nce_view")
def info_nce_view(temperature: float = 0.2, rho: float = 0.8, n: int = 8, seed: int = 0) -> View:
    """The similarity matrix and row softmaxes of ``n`` correlated pairs (see the module docstring).

    Args:
        temperature: ``τ > 0``. rho: the per-coordinate correlation in [0, 0.999].
        n: pairs in the batch (2..32). seed: the batch's seed.

    Raises:
        TypeError / ValueError: an argument of the wrong kind or out of range.
    """
    tau = _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    rho = _checks.real("rho", rho, minimum=0.0, maximum=0.999)
    n = _checks.integer("n", n, minimum=2, maximum=32)
    x, y = sample_correlated_gaussians(n, DIM, rho, torch.Generator().manual_seed(seed))
    sim = F.normalize(x, dim=1) @ F.normalize(y, dim=1).T  # (n, n) cosine similarities
    probs = torch.softmax(sim / tau, dim=1)  # (n, n)
    loss = info_nce(x, y, tau).item()
    hits = int((sim.argmax(1) == torch.arange(n)).sum())

    fig, (ax_sim, ax_p) = plt.subplots(1, 2, figsize=(9, 4))
    im = ax_sim.imshow(sim.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax_sim.set(title="cosine similarity cos(x_i, y_j)", xlabel="key j", ylabel="query i")
    fig.colorbar(im, ax=ax_sim, fraction=0.046)
    im = ax_p.imshow(probs.numpy(), cmap="viridis", vmin=0, vmax=1)
    ax_p.set(title=f"softmax of each row at τ = {tau:g}", xlabel="key j")
    fig.colorbar(im, ax=ax_p, fraction=0.046)
    for i in range(n):
        colour = "lime" if probs[i].argmax() == i else "red"
        ax_p.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=colour, linewidth=2))
    fig.tight_layout()
    caption = (
        f"N = {n} pairs, dim {DIM}, ρ = {rho:.3f}, τ = {tau:g}\n"
        f"InfoNCE loss = {loss:.4f}   (uniform guessing: log N = {math.log(n):.4f})\n"
        f"MI lower bound log N - loss = {math.log(n) - loss:.4f} nats   "
        f"(ceiling log N = {math.log(n):.4f}; true MI = {gaussian_mi(rho, DIM):.4f})\n"
        f"rows whose positive has the highest similarity: {hits}/{n}; "
        f"mean softmax on the positive: {probs.diagonal().mean().item():.3f}"
    )
    return View(fig, caption)


@export("contrastive.info_nce_widget")
def info_nce_widget(temperature: float = 0.2, rho: float = 0.8, n: int = 8) -> ViewWidget:
    """Sliders for temperature, correlation and batch size over :func:`info_nce_view`."""
    return ViewWidget(
        info_nce_view,
        temperature=widgets.FloatLogSlider(value=temperature, base=10, min=-2, max=1, step=0.05,
                                           description="temperature"),
        rho=widgets.FloatSlider(value=rho, min=0.0, max=0.99, step=0.01, description="ρ"),
        n=widgets.IntSlider(value=n, min=2, max=32, description="N"),
        seed=widgets.IntSlider(value=0, min=0, max=20, description="seed"),
    )
