"""Medusa heads: extra output layers that guess the 2nd, 3rd, … next tokens from one hidden state.

Paper: Cai et al., "Medusa" (2024), §2.1.1; reference code ``ResBlock`` / ``MedusaModel`` in
FasterDecoding/Medusa ``medusa/model/medusa_model.py``.

The base model's final hidden state h_t (Tensor[C]) gives, through its LM head W, the logits of
the next token x_{t+1}. Head k (k = 0, 1, …) predicts x_{t+2+k} from the *same* h_t:

    p_k(x_{t+2+k} | x_{≤t}) = softmax(W_k · (h_t + SiLU(A_k h_t + b_k)))

The residual block starts at A_k = 0, b_k = 0 (so it is the identity) and W_k starts as a copy
of the base model's LM head — each head begins as the base head and learns to look further
ahead. Medusa-1 trains only the heads, with the backbone frozen (:mod:`.medusa_training`).

Differences from the reference: the reference uses ``medusa_num_layers`` residual blocks per head
(default 1) held in an ``nn.ModuleList``; here it is always one, and the heads' weights are
stacked into single tensors so they run as batched matrix products. Checkpoints are plain dicts loaded with
``torch.load(..., weights_only=True)``.

Notebook: ``10_medusa`` ("Medusa heads"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.checkpoint import load_addon, save_addon
from course_lib.lm.model import GPT

HEADS_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "medusa_heads.pt"
RETRAIN_HEADS = "python -m course_lib.speculative.train  (a few minutes on 2 CPU cores)"


@export("speculative.MedusaHeads")
class MedusaHeads(nn.Module):
    """``num_heads`` heads on top of a :class:`~course_lib.lm.model.GPT`'s final hidden states.

    The K heads' weights are stored stacked — ``res_weight`` (Tensor[K, C, C]), ``res_bias``
    (Tensor[K, C]) and ``head_weight`` (Tensor[K, V, C]) — so all heads run as two batched
    matrix products instead of 2K small ones: at decoding time, with one hidden state per step,
    the number of operations, not their size, is what costs.

    Args:
        model: the base model; its LM head initialises every head's output layer.
        num_heads: how many future offsets to predict (head k predicts offset k + 2).

    Example:
        >>> from course_lib.lm import GPT, GPTConfig
        >>> base = GPT(GPTConfig(n_layer=1, n_embd=32))
        >>> heads = MedusaHeads(base, num_heads=3)
        >>> heads(torch.zeros(1, 5, 32)).shape
        torch.Size([3, 1, 5, 256])
    """

    def __init__(self, model: GPT, num_heads: int = 4) -> None:
        super().__init__()
        _checks.instance("model", model, GPT)
        _checks.integer("num_heads", num_heads, minimum=1)
        C, V = model.config.n_embd, model.config.vocab_size
        self.n_embd, self.vocab_size = C, V
        # residual blocks start as the identity: SiLU(0 · h + 0) = 0
        self.res_weight = nn.Parameter(torch.zeros(num_heads, C, C))
        self.res_bias = nn.Parameter(torch.zeros(num_heads, C))
        # every head starts as a copy of the base model's LM head
        self.head_weight = nn.Parameter(model.lm_head.weight.detach().clone().expand(num_heads, V, C).contiguous())

    @property
    def num_heads(self) -> int:
        return self.head_weight.shape[0]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of every head.

        Args:
            hidden: Tensor[..., C], the base model's final hidden states.

        Returns:
            Tensor[K, ..., V]: head k's logits for the token k + 2 places after each position.
        """
        _checks.tensor("hidden", hidden, floating=True)
        if hidden.shape[-1] != self.n_embd:
            raise ValueError(f"hidden must have last dim n_embd={self.n_embd}; got shape {tuple(hidden.shape)}")
        lead = hidden.shape[:-1]
        h = hidden.reshape(1, -1, self.n_embd)  # (1, M, C), M = prod(lead)
        r = h + F.silu(torch.baddbmm(self.res_bias[:, None, :], h.expand(self.num_heads, -1, -1),
                                     self.res_weight.transpose(1, 2)))  # (K, M, C)
        logits = torch.bmm(r, self.head_weight.transpose(1, 2))  # (K, M, V)
        return logits.view(self.num_heads, *lead, self.vocab_size)  # (K, ..., V)


@export("speculative.save_heads")
def save_heads(heads: MedusaHeads, path: str | Path = HEADS_CHECKPOINT, **info: Any) -> Path:
    """Write ``heads`` (float16 weights) and ``info`` (numbers, strings, lists) to ``path``."""
    _checks.instance("heads", heads, MedusaHeads)
    return save_addon(heads, path, "heads", num_heads=heads.num_heads, **info)


@export("speculative.load_heads")
def load_heads(model: GPT, path: str | Path | None = None) -> tuple[MedusaHeads, dict[str, Any]]:
    """Load heads written by :func:`save_heads` for ``model`` (default: the committed heads).

    Raises:
        course_lib.lm.CheckpointError: missing, corrupted, or made for another model shape;
            the message says how to retrain.
    """
    return load_addon(HEADS_CHECKPOINT if path is None else path,
                      lambda blob: MedusaHeads(model, int(blob["num_heads"])), "heads", "Medusa heads", RETRAIN_HEADS)
