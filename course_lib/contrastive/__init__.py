"""Self-supervised learning by contrast: NCE, InfoNCE, mutual information, CPC (chapter 6).

A representation is learnt without labels by asking a model to tell a *positive* (the other
half of a pair drawn together) from *negatives* (drawn apart). The chapter follows the idea from
density-ratio estimation to a bound on mutual information to a sequence model:

* :mod:`~course_lib.contrastive.nce` — binary noise-contrastive estimation
  (:func:`nce_loss`); on a 1-D Gaussian toy its optimum is the true ``log p_data/p_noise``.
* :mod:`~course_lib.contrastive.losses` — :func:`info_nce` (in-batch negatives, optionally
  symmetric as in CLIP) and :func:`nt_xent` (SimCLR), written with ``logsumexp``; for comparison
  two losses without negatives, :func:`negative_cosine` (SimSiam/BYOL) and :func:`barlow_twins`.
* :mod:`~course_lib.contrastive.mi` — the Gaussian MI ``-d/2 log(1-ρ²)``, the optimal critic, and
  the InfoNCE (≤ log N), NWJ and DV bounds from a matrix of critic scores.
* :mod:`~course_lib.contrastive.cpc` — Contrastive Predictive Coding on noisy oscillators:
  accuracy per step ahead, and a linear probe for the hidden frequency.
* :mod:`~course_lib.contrastive.augment` — :func:`augment_images`: batched, seeded shift, scale
  jitter and noise (SimCLR's two views).
* :mod:`~course_lib.contrastive.simclr` — :class:`SimCLR` (a small CNN :class:`DigitEncoder` and a
  projection head) and :func:`train_simclr` on scikit-learn's 8×8 digits.
* :mod:`~course_lib.contrastive.infonce_view` — the InfoNCE explorer: :func:`info_nce_state` (pure),
  its view and widget.
* :mod:`~course_lib.contrastive.experiment` — the notebook's measurements (not re-exported).
* :mod:`~course_lib.contrastive.exercises` — four auto-checked exercises.

References: Gutmann & Hyvärinen (AISTATS 2010); van den Oord, Li & Vinyals, *CPC* (2018);
Poole et al., *On Variational Bounds of Mutual Information* (ICML 2019); Chen et al., *SimCLR*
(ICML 2020); Grill et al., *BYOL* (NeurIPS 2020); Chen & He, *SimSiam* (CVPR 2021);
Zbontar et al., *Barlow Twins* (ICML 2021); He et al., *MoCo* (CVPR 2020).

Notebook: ``06_self_supervised``. Tests: ``tests/test_contrastive.py``,
``tests/test_contrastive_cpc.py``, ``tests/test_contrastive_simclr.py``.
"""

from course_lib.contrastive.augment import augment_images
from course_lib.contrastive.cpc import CPC, CPCConfig, CPCResult, linear_probe_r2, oscillator_batch, train_cpc
from course_lib.contrastive.infonce_view import InfoNceState, info_nce_state, info_nce_view, info_nce_widget
from course_lib.contrastive.losses import (
    barlow_twins,
    info_nce,
    info_nce_from_logits,
    negative_cosine,
    nt_xent,
    nt_xent_targets,
)
from course_lib.contrastive.mi import (
    SeparableCritic,
    dv_bound,
    gaussian_log_density_ratio,
    gaussian_mi,
    infonce_bound,
    nwj_bound,
    sample_correlated_gaussians,
    train_critic,
)
from course_lib.contrastive.nce import GaussianToy, QuadraticLogRatio, fit_log_ratio, nce_loss
from course_lib.contrastive.simclr import DigitEncoder, SimCLR, SimCLRConfig, SimCLRResult, train_simclr

__all__ = [
    "CPC",
    "CPCConfig",
    "CPCResult",
    "DigitEncoder",
    "GaussianToy",
    "InfoNceState",
    "QuadraticLogRatio",
    "SeparableCritic",
    "SimCLR",
    "SimCLRConfig",
    "SimCLRResult",
    "augment_images",
    "barlow_twins",
    "dv_bound",
    "fit_log_ratio",
    "gaussian_log_density_ratio",
    "gaussian_mi",
    "info_nce",
    "info_nce_from_logits",
    "info_nce_state",
    "info_nce_view",
    "info_nce_widget",
    "infonce_bound",
    "linear_probe_r2",
    "nce_loss",
    "negative_cosine",
    "nt_xent",
    "nt_xent_targets",
    "nwj_bound",
    "oscillator_batch",
    "sample_correlated_gaussians",
    "train_cpc",
    "train_critic",
    "train_simclr",
]
