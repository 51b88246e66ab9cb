"""Training the MTP modules on the frozen main model, and measuring each depth's accuracy.

For a window t_0 … t_T the main model sees t_0 … t_{T-1}; depth k's position i predicts
t_{i+k+1}. DeepSeek-V3 (§2.2, eq. 24–25) averages the depths' cross-entropies and weights the
result by λ:

    L_MTP = (λ / D) · Σ_k  mean_i CE(Pᵏ_i, t_{i+k+1})

Here the main model is frozen, so its own loss is a constant and λ only rescales the learning
rate: :func:`mtp_loss` returns the plain mean over depths (λ = 1).

:func:`depth_accuracy` reports, per depth, how often the true token is the top-1 guess — for
depth 1 that is exactly the chance that a drafted token is accepted by greedy verification.

Notebook: ``11_multi_token_prediction`` ("Training the modules"). Tests: ``tests/test_mtp.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT
from course_lib.lm.training import AddonConfig, train_addon
from course_lib.mtp.mtp_module import MultiTokenPredictor


def _check_windows(mtp: MultiTokenPredictor, windows: torch.Tensor) -> torch.Tensor:
    _checks.tensor("windows", windows, ndim=2, dtypes=(torch.long, torch.int))
    if windows.shape[1] < mtp.depth + 2:
        raise ValueError(f"windows must have at least depth + 2 = {mtp.depth + 2} tokens (a target for every "
                         f"depth); got shape {tuple(windows.shape)}")
    return windows.long()


@export("mtp.mtp_loss")
def mtp_loss(model: GPT, mtp: MultiTokenPredictor, windows: torch.Tensor) -> torch.Tensor:
    """Mean over depths of each depth's next-(k+1)-token cross-entropy, in nats per token.

    Args:
        model: the main model (run without gradient: it is frozen).
        mtp: the modules being trained.
        windows: Tensor[B, T + 1] of token ids.

    Returns:
        A scalar tensor with gradient w.r.t. ``mtp``'s parameters only: the main model, and
        with it the shared embedding and output head, is frozen (DeepSeek-V3 trains them too).
    """
    windows = _check_windows(mtp, windows)
    with torch.no_grad():  # the main model, its embedding and its output head stay frozen
        _, hidden = model(windows[:, :-1])  # (B, T, C)
        embedded = model.wte(windows[:, 1:-1])  # (B, T - 1, C): Emb(t_1 … t_{T-1})
    head = model.lm_head.weight.detach()  # (V, C)
    T = hidden.shape[1]
    loss = hidden.new_zeros(())
    for k in range(1, mtp.depth + 1):
        layer, n = mtp.module(k), T - k
        hidden = layer(hidden[:, :n], embedded[:, k - 1 :])  # (B, n, C): Emb(t_{i+k}) at position i
        logits = F.linear(layer.norm_out(hidden), head)  # (B, n, V), as mtp.logits without the gradient
        loss = loss + F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, k + 1 :].reshape(-1))
    return loss / mtp.depth


@export("mtp.train_mtp")
def train_mtp(model: GPT, mtp: MultiTokenPredictor, steps: int = 600, batch_size: int = 16, lr: float = 3e-3,
              seed: int = 0, progress: bool = True, before_step: Callable[[int], None] | None = None) -> list[float]:
    """Train ``mtp`` in place on random training windows with ``model`` frozen.

    Args:
        model: the main model (left unchanged).
        mtp: the modules to train.
        steps: optimizer steps (AdamW, cosine-decayed learning rate).
        batch_size: windows of ``block_size + 1`` bytes per step.
        lr: peak learning rate.
        seed: the batch order.
        progress: show a tqdm bar.
        before_step: called with the number of optimizer steps done (0 … steps - 1) before each
            step, e.g. to save snapshots of one run at several budgets (``python -m
            course_lib.mtp.train --ablation``); the state after the last step is ``mtp`` itself.

    Returns:
        The loss of every step.
    """
    _checks.instance("mtp", mtp, MultiTokenPredictor)
    mtp.check_model(model)
    config = AddonConfig(steps, batch_size, lr, seed, progress, desc=f"mtp modules ({mtp.variant})")
    done = 0

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        nonlocal done
        if before_step is not None:
            before_step(done)
        done += 1
        return mtp_loss(model, mtp, batch)

    return train_addon(model, mtp, loss_fn, config)


@export("mtp.DepthAccuracy")
@dataclass
class DepthAccuracy:
    """How often each depth's top-1 guess is the true token, on held-out windows."""

    main: float  # the main model: t_{i+1} from t_0 … t_i
    depths: list[float]  # depth k (index k - 1): t_{i+k+1}, also told t_{i+1} … t_{i+k}

    def __str__(self) -> str:
        rows = [f"main model (offset 1): top-1 {self.main:.3f}"]
        rows += [f"MTP depth {k} (offset {k + 1}): top-1 {a:.3f}" for k, a in enumerate(self.depths, start=1)]
        return "\n".join(rows)


@export("mtp.depth_accuracy")
@torch.no_grad()
def depth_accuracy(model: GPT, mtp: MultiTokenPredictor, windows: torch.Tensor) -> DepthAccuracy:
    """Top-1 accuracy of the main model and of every depth on ``windows`` (Tensor[N, T + 1]).

    Raises:
        ValueError: windows shorter than ``depth + 2`` tokens.
    """
    windows = _check_windows(mtp, windows)
    logits = mtp.all_logits(model, windows[:, :-1])
    acc = [(lg.argmax(-1) == windows[:, k + 1 :]).float().mean().item() for k, lg in enumerate(logits)]
    return DepthAccuracy(acc[0], acc[1:])
