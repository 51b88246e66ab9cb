"""The InfoNCE explorer: a batch's similarity matrix, each row's softmax, the loss and the bound.

:func:`info_nce_state` computes, for ``N`` pairs ``(x_i, y_i)`` of correlated Gaussians
(:func:`~course_lib.contrastive.mi.sample_correlated_gaussians`, a fixed seed), everything the
picture shows — pure torch, no matplotlib, returned as a frozen :class:`InfoNceState`:

* the cosine-similarity matrix ``cos(x_i, y_j)``, positives on the diagonal;
* the softmax of each row of ``cos / τ``: the probability the loss gives to each key being
  query ``i``'s partner;
* the InfoNCE loss (:func:`~course_lib.contrastive.losses.info_nce`), the bound ``log N - loss``
  next to ``log N`` and the true MI, and how many rows pick their positive.

:func:`info_nce_view` draws that state (left: similarities; right: row softmaxes, the positive
outlined, green when it is the row's largest) and states the same numbers in its caption.
:func:`info_nce_widget` wires controls to the view: the temperature slider steps through
``TEMPERATURES``, so the value shown is the value used (a log-slider would land on 0.1995 when the
text says 0.2). Raise the correlation and the diagonal lights up; lower the temperature and the
rows sharpen.

Notebook: ``06_self_supervised`` §8 (widget). Tests: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.contrastive.losses import info_nce
from course_lib.contrastive.mi import gaussian_mi, sample_correlated_gaussians

if TYPE_CHECKING:  # matplotlib and ipywidgets load only when a picture is drawn
    from course_lib.widgets import View, ViewWidget

DIM = 8  # of the example embeddings
TEMPERATURES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the widget's temperature steps


@export("contrastive.InfoNceState")
@dataclass(frozen=True)
class InfoNceState:
    """What the InfoNCE explorer shows for one batch and temperature."""

    temperature: float  # τ
    rho: float  # per-coordinate correlation of each pair
    n: int  # pairs in the batch
    similarity: torch.Tensor  # Tensor[n, n]: cos(x_i, y_j)
    probs: torch.Tensor  # Tensor[n, n]: softmax over j of similarity / τ
    loss: float  # InfoNCE loss of the batch (mean over rows)
    log_n: float  # log N: the loss of uniform guessing and the bound's ceiling
    true_mi: float  # -DIM/2 · log(1 - ρ²), nats
    hits: int  # rows whose positive has the largest similarity
    mean_positive_prob: float  # mean of the diagonal of probs

    @property
    def bound(self) -> float:
        """The InfoNCE lower bound on the MI, ``log N - loss`` (nats)."""
        return self.log_n - self.loss


@export("contrastive.info_nce_state")
def info_nce_state(temperature: float = 0.2, rho: float = 0.8, n: int = 8, seed: int = 0) -> InfoNceState:
    """The similarity matrix, row softmaxes, loss and bound of ``n`` correlated pairs.

    Args:
        temperature: ``τ > 0``.
        rho: the per-coordinate correlation in [0, 0.999].
        n: pairs in the batch (2..32).
        seed: the batch's seed.

    Returns:
        :class:`InfoNceState`.

    Raises:
        TypeError / ValueError: an argument of the wrong kind or out of range.
    """
    tau = _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    rho = _checks.real("rho", rho, minimum=0.0, maximum=0.999)
    n = _checks.integer("n", n, minimum=2, maximum=32)
    seed = _checks.integer("seed", seed, minimum=0)
    x, y = sample_correlated_gaussians(n, DIM, rho, torch.Generator().manual_seed(seed))
    sim = F.normalize(x, dim=1) @ F.normalize(y, dim=1).T  # (n, n) cosine similarities
    probs = torch.softmax(sim / tau, dim=1)  # (n, n)
    return InfoNceState(
        temperature=tau, rho=rho, n=n, similarity=sim, probs=probs, loss=info_nce(x, y, tau).item(),
        log_n=math.log(n), true_mi=gaussian_mi(rho, DIM),
        hits=int((sim.argmax(1) == torch.arange(n)).sum()),
        mean_positive_prob=probs.diagonal().mean().item(),
    )


def info_nce_caption(state: InfoNceState) -> str:
    """The numbers of ``state`` in words (the view's caption)."""
    return (
        f"N = {state.n} pairs, dim {DIM}, ρ = {state.rho:.2f}, τ = {state.temperature:g}\n"
        f"InfoNCE loss = {state.loss:.4f}   (uniform guessing: log N = {state.log_n:.4f})\n"
        f"MI lower bound log N - loss = {state.bound:.4f} nats   "
        f"(ceiling log N = {state.log_n:.4f}; true MI = {state.true_mi:.4f})\n"
        f"rows whose positive has the highest similarity: {state.hits}/{state.n}; "
        f"mean softmax on the positive: {state.mean_positive_prob:.3f}"
    )


@export("contrastive.info_nce_view")
def info_nce_view(temperature: float = 0.2, rho: float = 0.8, n: int = 8, seed: int = 0) -> View:
    """Draw :func:`info_nce_state` (see the module docstring); arguments as there."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    from course_lib.widgets import View

    state = info_nce_state(temperature, rho, n, seed)
    fig, (ax_sim, ax_p) = plt.subplots(1, 2, figsize=(8.4, 3.9))
    im = ax_sim.imshow(state.similarity.numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax_sim.set(title="cosine similarity cos(x_i, y_j)", xlabel="key j", ylabel="query i")
    fig.colorbar(im, ax=ax_sim, fraction=0.046)
    im = ax_p.imshow(state.probs.numpy(), cmap="viridis", vmin=0, vmax=1)
    ax_p.set(title=f"softmax of each row at τ = {state.temperature:g}", xlabel="key j")
    fig.colorbar(im, ax=ax_p, fraction=0.046)
    for ax in (ax_sim, ax_p):  # integer axes: whole keys and queries only
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    for i in range(state.n):
        colour = "lime" if state.probs[i].argmax() == i else "red"
        ax_p.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=colour, linewidth=2))
    fig.tight_layout()
    return View(fig, info_nce_caption(state))


@export("contrastive.info_nce_widget")
def info_nce_widget(temperature: float = 0.2, rho: float = 0.8, n: int = 8) -> ViewWidget:
    """Controls for temperature (one of ``TEMPERATURES``), correlation, batch size and seed.

    Raises:
        ValueError: ``temperature`` is not one of ``TEMPERATURES``, or ``rho``/``n`` off their sliders.
    """
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    _checks.one_of("temperature", temperature, TEMPERATURES)
    rho = _checks.real("rho", rho, minimum=0.0, maximum=0.99)
    n = _checks.integer("n", n, minimum=2, maximum=32)
    return ViewWidget(
        info_nce_view,
        temperature=widgets.SelectionSlider(options=list(TEMPERATURES), value=temperature, description="τ"),
        rho=widgets.FloatSlider(value=round(rho, 2), min=0.0, max=0.99, step=0.01, description="ρ",
                                readout_format=".2f"),
        n=widgets.IntSlider(value=n, min=2, max=32, description="pairs N"),
        seed=widgets.IntSlider(value=0, min=0, max=20, description="seed"),
    )
