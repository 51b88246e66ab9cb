"""Medusa-1 training: fit the heads on the corpus with the base model frozen.

Paper: Cai et al., "Medusa" (2024), §2.2.1 (Medusa-1). For a window x_0 … x_T, the frozen model
gives hidden states h_0 … h_{T-1}; head k is trained with cross-entropy to predict x_{t+2+k}
from h_t, and the heads' losses are summed with weights λ_k = 0.8^k (later heads are harder
and matter less: a draft is only used up to its first wrong token):

    L = Σ_k 0.8^k · mean_t CE(head_k(h_t), x_{t+2+k})

:func:`head_accuracy` reports, per head, how often the true token is the head's top-1 guess and
how often it is among its top-k — the numbers that bound how many drafted tokens a tree of
that width can get accepted.

Differences from the reference: trained on the corpus itself rather than on the base model's
own generations (self-distillation, §2.3.2), on CPU, for a few hundred steps.
Run ``python -m course_lib.speculative.train`` to retrain the committed heads.

Notebook: ``10_medusa`` ("Training the heads"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT
from course_lib.lm.training import AddonConfig, train_addon
from course_lib.speculative.medusa_heads import MedusaHeads

HEAD_DECAY = 0.8  # λ_k = 0.8 ** k, as in the reference


@export("speculative.HeadAccuracy")
@dataclass
class HeadAccuracy:
    """How often each head's guess is right on held-out windows."""

    top1: list[float]  # per head: fraction where the true token is the head's argmax
    topk: list[float]  # per head: fraction where the true token is among the head's top-k
    k: int  # the k of ``topk``
    base_top1: float  # the base model's own next-token top-1 accuracy, for comparison

    def __str__(self) -> str:
        rows = [f"base (offset 1): top-1 {self.base_top1:.3f}"]
        rows += [f"head {i} (offset {i + 2}): top-1 {a:.3f}  top-{self.k} {b:.3f}"
                 for i, (a, b) in enumerate(zip(self.top1, self.topk))]
        return "\n".join(rows)


def medusa_loss(model: GPT, heads: MedusaHeads, batch: torch.Tensor) -> torch.Tensor:
    """The weighted Medusa-1 loss of ``batch`` (Tensor[B, T + 1]); the backbone gets no gradient."""
    with torch.no_grad():
        _, hidden = model(batch[:, :-1])  # (B, T, C)
    logits = heads(hidden)  # (K, B, T, V)
    T = hidden.shape[1]
    loss = hidden.new_zeros(())
    for k in range(heads.num_heads):
        n = T - 1 - k  # positions t with a target x_{t+2+k} inside the window
        if n <= 0:
            break
        target = batch[:, 2 + k : 2 + k + n]  # (B, n)
        head_loss = F.cross_entropy(logits[k, :, :n].reshape(-1, logits.shape[-1]), target.reshape(-1))
        loss = loss + HEAD_DECAY**k * head_loss
    return loss


@export("speculative.train_heads")
def train_heads(model: GPT, heads: MedusaHeads, steps: int = 600, batch_size: int = 16, lr: float = 3e-3,
                seed: int = 0, progress: bool = True) -> list[float]:
    """Medusa-1: train ``heads`` on random training windows with ``model`` frozen.

    Args:
        model: the base model (left unchanged; its parameters get no gradient).
        heads: the heads to train, in place.
        steps: optimizer steps (AdamW, cosine-decayed learning rate).
        batch_size: windows of ``block_size + 1`` bytes per step.
        lr: peak learning rate.
        seed: the batch order.
        progress: show a tqdm bar.

    Returns:
        The loss of every step.
    """
    _checks.instance("model", model, GPT)
    _checks.instance("heads", heads, MedusaHeads)
    config = AddonConfig(steps, batch_size, lr, seed, progress, desc="medusa heads")
    return train_addon(model, heads, lambda batch: medusa_loss(model, heads, batch), config)


def _predict(model: GPT, heads: MedusaHeads, windows: torch.Tensor, k: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check ``windows`` and ``k``; return ``(windows, base logits (N, T, V), head logits (K, N, T, V))``."""
    _checks.tensor("windows", windows, ndim=2)
    _checks.integer("k", k, minimum=1, maximum=heads.vocab_size)
    if windows.shape[1] < heads.num_heads + 2:
        raise ValueError(f"windows must have at least num_heads + 2 = {heads.num_heads + 2} tokens; "
                         f"got shape {tuple(windows.shape)}")
    windows = windows.long()
    logits, hidden = model(windows[:, :-1])  # (N, T, V), (N, T, C)
    return windows, logits, heads(hidden)


@export("speculative.head_accuracy")
@torch.no_grad()
def head_accuracy(model: GPT, heads: MedusaHeads, windows: torch.Tensor, k: int = 5) -> HeadAccuracy:
    """Per-head top-1 and top-k accuracy on ``windows`` (Tensor[N, T + 1] of token ids).

    Raises:
        ValueError: ``k`` outside [1, vocab_size], windows shorter than ``num_heads + 2``.
    """
    windows, logits, head_logits = _predict(model, heads, windows, k)
    base_top1 = (logits.argmax(-1) == windows[:, 1:]).float().mean().item()
    T = logits.shape[1]
    top1, topk = [], []
    for i in range(heads.num_heads):
        n = T - 1 - i
        target = windows[:, 2 + i : 2 + i + n]  # (N, n)
        guesses = head_logits[i, :, :n].topk(k, dim=-1).indices  # (N, n, k)
        top1.append((guesses[..., 0] == target).float().mean().item())
        topk.append((guesses == target[..., None]).any(-1).float().mean().item())
    return HeadAccuracy(top1, topk, k, base_top1)


@export("speculative.rank_agreement")
@torch.no_grad()
def rank_agreement(model: GPT, heads: MedusaHeads, windows: torch.Tensor, k: int = 4) -> torch.Tensor:
    """P(head d's i-th guess is the base model's own greedy token there), on ``windows``.

    Greedy acceptance compares a draft with the base model's argmax, not with the text, so a
    tree is built from these (:func:`~course_lib.speculative.medusa_tree.greedy_tree`). Head d
    at position t guesses x_{t+2+d}; the base model's greedy token there is its argmax at
    position t + 1 + d given the window's tokens (teacher-forced).

    Returns:
        Tensor[K, k] float64: ``[d, i]`` the fraction of positions where head d's i-th most
        likely token equals that argmax.
    """
    windows, logits, head_logits = _predict(model, heads, windows, k)
    greedy = logits.argmax(-1)  # (N, T): position t's greedy next token x_{t+1}
    T = logits.shape[1]
    out = torch.zeros(heads.num_heads, k, dtype=torch.float64)
    for d in range(heads.num_heads):
        n = T - 1 - d
        target = greedy[:, 1 + d : 1 + d + n]  # (N, n)
        guesses = head_logits[d, :, :n].topk(k, dim=-1).indices  # (N, n, k)
        out[d] = (guesses == target[..., None]).double().mean(dim=(0, 1))
    return out
