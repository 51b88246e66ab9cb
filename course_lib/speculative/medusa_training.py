"""Medusa-1 training: fit the heads on the corpus with the base model frozen.

Paper: Cai et al., "Medusa" (2024), §2.2.1 (Medusa-1). For a window x_0 … x_T, the frozen model
gives hidden states h_0 … h_{T-1}; head k is trained with cross-entropy to predict x_{t+2+k}
from h_t, and the heads' losses are summed with weights λ_k = 0.8^k (later heads are harder
and matter less: a draft is only used up to its first wrong token):

    L = Σ_k 0.8^k · mean_t CE(head_k(h_t), x_{t+2+k})

:func:`head_accuracy` reports, per head, how often the true token is the head's top-1 guess and
how often it is among its top-k — the numbers that bound how many drafted tokens a tree of
that width can get accepted.

Medusa-2 (§2.2.2) trains the heads *with* the backbone. :func:`medusa2_loss` is its combined
loss — the backbone's own next-token loss plus the Medusa-1 loss weighted by λ₀,

    L = L_LM + λ₀ · Σ_k 0.8^k · mean_t CE(head_k(h_t), x_{t+2+k}),   L_LM = mean_t CE(lm_head(h_t), x_{t+1})

with gradient into the backbone too — and :class:`Medusa2Recipe` the paper's other two
ingredients: a smaller learning rate for the backbone than for the heads ("differential
learning rates") and a heads-only warm-up before joint training ("heads warmup": Medusa-1
first; the paper's first version said the backbone first, a typo the authors corrected in
FasterDecoding/Medusa issue #74). The defaults λ₀ = 0.2 and heads at 4× the backbone's rate
are the reference's training scripts' (``medusa_heads_coefficient``, ``medusa_lr_multiplier``).
This course keeps Medusa-1 (the committed backbone never changes), so the recipe is drawn and
its loss tested, not run to convergence.

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


def _head_losses(heads: MedusaHeads, hidden: torch.Tensor, batch: torch.Tensor) -> list[torch.Tensor]:
    """mean_t CE(head_k(h_t), x_{t+2+k}) for every head with a target in the window."""
    logits = heads(hidden)  # (K, B, T, V)
    T = hidden.shape[1]
    losses = []
    for k in range(heads.num_heads):
        n = T - 1 - k  # positions t with a target x_{t+2+k} inside the window
        if n <= 0:
            break
        target = batch[:, 2 + k : 2 + k + n]  # (B, n)
        losses.append(F.cross_entropy(logits[k, :, :n].reshape(-1, logits.shape[-1]), target.reshape(-1)))
    return losses


def medusa_loss(model: GPT, heads: MedusaHeads, batch: torch.Tensor) -> torch.Tensor:
    """The weighted Medusa-1 loss of ``batch`` (Tensor[B, T + 1]); the backbone gets no gradient."""
    with torch.no_grad():
        _, hidden = model(batch[:, :-1])  # (B, T, C)
    return sum((HEAD_DECAY**k * loss for k, loss in enumerate(_head_losses(heads, hidden, batch))),
               hidden.new_zeros(()))


@export("speculative.Medusa2Loss")
@dataclass
class Medusa2Loss:
    """The parts of Medusa-2's combined loss of one batch (nats per token)."""

    total: torch.Tensor  # L_LM + λ₀ Σ_k decay^k L_k: backpropagate this one (backbone and heads)
    lm: torch.Tensor  # L_LM, the backbone's next-token loss
    heads: list[torch.Tensor]  # L_k, head k's loss, unweighted
    lambda0: float  # λ₀
    decay: float  # the heads' weights are decay^k


@export("speculative.medusa2_loss")
def medusa2_loss(model: GPT, heads: MedusaHeads, batch: torch.Tensor, lambda0: float = 0.2,
                 decay: float = HEAD_DECAY) -> Medusa2Loss:
    """Medusa-2's combined loss of ``batch``, with gradient into the backbone and the heads.

    Paper: Cai et al., "Medusa" (ICML 2024), §2.2.2 ("Combined loss"): L_LM + λ₀ · L_MEDUSA-1,
    L_MEDUSA-1 = Σ_k λ_k L_k with λ_k = decay^k (eq. 1). See the module docstring.

    Args:
        model: the backbone (not frozen: its parameters get gradient).
        heads: the Medusa heads.
        batch: Tensor[B, T + 1] of token ids (T >= 2: one head target at least).
        lambda0: λ₀ >= 0, the heads' share (0: plain language-model fine-tuning).
        decay: the heads' geometric weight, in [0, 1].

    Returns:
        A :class:`Medusa2Loss`.

    Raises:
        TypeError, ValueError: a non-integer batch, fewer than 3 tokens per window, λ₀ < 0,
            decay outside [0, 1].
    """
    _checks.instance("heads", heads, MedusaHeads)
    _checks.tensor("batch", batch, ndim=2, dtypes=(torch.long, torch.int))
    if batch.shape[1] < 3:
        raise ValueError(f"batch must have at least 3 tokens per window (x_t, x_t+1, x_t+2); got shape "
                         f"{tuple(batch.shape)}")
    _checks.real("lambda0", lambda0, minimum=0.0)
    _checks.real("decay", decay, minimum=0.0, maximum=1.0)
    batch = batch.long()
    logits, hidden = model(batch[:, :-1])  # (B, T, V), (B, T, C): with gradient, unlike Medusa-1
    lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    per_head = _head_losses(heads, hidden, batch)
    total = lm + lambda0 * sum((decay**k * loss for k, loss in enumerate(per_head)), lm.new_zeros(()))
    return Medusa2Loss(total, lm, per_head, float(lambda0), float(decay))


@export("speculative.Medusa2Recipe")
@dataclass(frozen=True)
class Medusa2Recipe:
    """Medusa-2's learning rates per step (§2.2.2): heads warm up alone, then train with the backbone.

    Example:
        >>> r = Medusa2Recipe(lr=1e-3, warmup_steps=100)
        >>> r.learning_rates(50), r.learning_rates(150)
        ((0.001, 0.0), (0.001, 0.00025))
    """

    lr: float  # the heads' learning rate
    warmup_steps: int  # heads-only steps (Medusa-1) before joint training
    backbone_lr_ratio: float = 0.25  # backbone lr / heads lr: the reference's medusa_lr_multiplier = 4
    lambda0: float = 0.2  # λ₀ in the combined loss once the backbone trains

    def __post_init__(self) -> None:
        _checks.real("lr", self.lr, minimum=0.0, open_min=True)
        _checks.integer("warmup_steps", self.warmup_steps, minimum=0)
        _checks.real("backbone_lr_ratio", self.backbone_lr_ratio, minimum=0.0, maximum=1.0)
        _checks.real("lambda0", self.lambda0, minimum=0.0)

    def learning_rates(self, step: int) -> tuple[float, float]:
        """``(heads lr, backbone lr)`` at optimizer step ``step`` (0-based); the backbone's is 0 in warm-up."""
        _checks.integer("step", step, minimum=0)
        return self.lr, (0.0 if step < self.warmup_steps else self.lr * self.backbone_lr_ratio)


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
