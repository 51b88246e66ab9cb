"""Multi-token prediction modules, DeepSeek-V3 style: a causal chain of small transformers.

Paper: DeepSeek-AI, "DeepSeek-V3 Technical Report" (2024), §2.2 and Figure 3; the idea of
predicting several future tokens from Gloeckle et al., "Better & Faster Large Language Models
via Multi-token Prediction" (2024).

The main model maps tokens t_0 … t_i to a final hidden state h⁰_i, whose logits predict t_{i+1}.
MTP module k (k = 1 … D) predicts t_{i+k+1}. It does not guess from h⁰_i alone, as a Medusa
head does (:mod:`course_lib.speculative`): it is also told the token t_{i+k} it stands on, so
the chain of predictions stays causal —

    h'ᵏ_i = M_k · [RMSNorm(hᵏ⁻¹_i) ; RMSNorm(Emb(t_{i+k}))]      M_k: Linear(2C → C)
    hᵏ_{0:n} = TRM_k(h'ᵏ_{0:n})                                  one causal transformer block
    Pᵏ_{i+k+1} = softmax(OutHead(hᵏ_i))

with the embedding ``Emb`` and the output head shared with the main model (tied, here). Each
module adds one block and one projection — small against the main model, and deleted or used
as a draft model at inference (:mod:`~course_lib.mtp.mtp_decode`).

Differences from DeepSeek-V3: the main model here is frozen and the modules are trained on top
of it (DeepSeek trains everything jointly, with the MTP loss as an auxiliary, densifying the
training signal); LayerNorm blocks from :mod:`course_lib.lm` instead of RMSNorm + MoE ones; a
LayerNorm before the shared head inside each module (DeepSeek's code keeps a final norm per
module too). Checkpoints are plain dicts loaded with ``torch.load(..., weights_only=True)``.

Ablation variants (``variant=``), for the capacity-controlled comparison of chapter 11: each
removes one source of information and keeps the block, the norms and the shared head —

* ``"mtp"`` — the module above: h⁰_{0:n} and the next token's embedding (231,552 parameters at
  the course's width C = 128).
* ``"hidden_only"`` — the token-embedding input removed: h'ᵏ_i = M_k · RMSNorm(hᵏ⁻¹_i) with
  M_k: Linear(C → C); still a causal block over all positions.
* ``"medusa_block"`` — additionally sees only its own position, as a Medusa head does (Cai et
  al. 2024, §2.1.1: head k is a function of h_t alone): the same block applied to each position
  as a one-token sequence (attention over one key returns its value, so its query and key
  weights get no gradient). A Medusa head with a transformer block's capacity; unlike
  :class:`~course_lib.speculative.MedusaHeads` it shares the main model's head (frozen) and
  starts from random weights rather than the identity.

Notebook: ``11_multi_token_prediction``. Tests: ``tests/test_mtp.py``, ``tests/test_mtp_ablation.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.checkpoint import load_addon, save_addon
from course_lib.lm.model import GPT, Block, KVCache

MTP_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "mtp_modules.pt"
RETRAIN_MTP = "python -m course_lib.mtp.train  (about five minutes on 2 CPU cores)"
MTP_VARIANTS = ("mtp", "hidden_only", "medusa_block")  # what a module sees; see the module docstring
MTP_ABLATION_DIR = MTP_CHECKPOINT.parent / "ablation"  # <variant>_<steps>.pt: python -m course_lib.mtp.train --ablation


def _causal_mask(T: int, start: int, device: torch.device) -> torch.Tensor:
    """Tensor[T, start + T] bool: new token i sees every cached token and new tokens j <= i."""
    new = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    return torch.cat([torch.ones(T, start, dtype=torch.bool, device=device), new], dim=1)


@export("mtp.MTPModule")
class MTPModule(nn.Module):
    """One depth of the chain: combine h^{k-1}_i with Emb(t_{i+k}), run one causal block.

    Args:
        model: the main model, whose width and block shape this module copies.
        variant: ``"mtp"`` (the paper's module), ``"hidden_only"`` (no token input) or
            ``"medusa_block"`` (no token input, each position alone); see the module docstring.

    Raises:
        ValueError: an unknown ``variant``.
    """

    def __init__(self, model: GPT, variant: str = "mtp") -> None:
        super().__init__()
        self.variant = _checks.one_of("variant", variant, MTP_VARIANTS)
        C = model.config.n_embd
        self.norm_hidden = nn.RMSNorm(C)  # RMSNorm(h^{k-1}_i)
        self.norm_embed = nn.RMSNorm(C) if variant == "mtp" else None  # RMSNorm(Emb(t_{i+k}))
        self.proj = nn.Linear(2 * C if variant == "mtp" else C, C, bias=False)  # M_k
        self.block = Block(model.config)  # TRM_k
        self.norm_out = nn.LayerNorm(C)  # before the shared output head
        for module in self.modules():
            GPT._init_weights(module)

    def forward(self, hidden: torch.Tensor, embedded: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """h^k for T positions, after the ``cache.length`` positions already cached.

        Args:
            hidden: Tensor[B, T, C], h^{k-1} at positions i.
            embedded: Tensor[B, T, C], Emb(t_{i+k}) at the same positions (unused by the
                ``"hidden_only"`` and ``"medusa_block"`` variants).
            cache: a one-layer :class:`~course_lib.lm.KVCache` of this module (grows by T;
                ``"medusa_block"`` needs no keys and only advances its length).

        Returns:
            Tensor[B, T, C]: h^k (not normalised; :meth:`MultiTokenPredictor.logits` is).
        """
        if self.norm_embed is None:
            x = self.proj(self.norm_hidden(hidden))  # (B, T, C)
        else:
            x = self.proj(torch.cat([self.norm_hidden(hidden), self.norm_embed(embedded)], dim=-1))  # (B, T, C)
        if self.variant == "medusa_block":  # every position alone: a one-token sequence each
            B, T, C = x.shape
            out = self.block(x.reshape(B * T, 1, C), None, None, 0).view(B, T, C)  # (B, T, C)
            if cache is not None:
                cache.length += T
            return out
        if cache is None:
            return self.block(x, None, None, 0)
        start, T = cache.length, x.shape[1]
        if start + T > cache.max_len:
            raise ValueError(f"the MTP cache holds {cache.max_len} positions; {start} are used and {T} more came")
        out = self.block(x, _causal_mask(T, start, x.device) if start else None, cache, 0)
        cache.length = start + T
        return out


@export("mtp.MultiTokenPredictor")
class MultiTokenPredictor(nn.Module):
    """``depth`` :class:`MTPModule`\\ s on top of a :class:`~course_lib.lm.GPT`.

    The main model is not a submodule (it is shared, frozen, and saved on its own): methods
    that need its embedding or output head take it as an argument.

    Example:
        >>> from course_lib.lm import GPT, GPTConfig
        >>> base = GPT(GPTConfig(n_layer=1, n_embd=32, block_size=16))
        >>> mtp = MultiTokenPredictor(base, depth=2)
        >>> [tuple(x.shape) for x in mtp.all_logits(base, torch.zeros(1, 5, dtype=torch.long))]
        [(1, 5, 256), (1, 4, 256), (1, 3, 256)]
    """

    def __init__(self, model: GPT, depth: int = 2, variant: str = "mtp") -> None:
        super().__init__()
        _checks.instance("model", model, GPT)
        _checks.integer("depth", depth, minimum=1)
        self.variant = _checks.one_of("variant", variant, MTP_VARIANTS)
        self.config = dataclasses.replace(model.config, n_layer=1)  # a module's cache has one layer
        self.layers = nn.ModuleList(MTPModule(model, variant) for _ in range(depth))

    @property
    def depth(self) -> int:
        return len(self.layers)

    def check_model(self, model: GPT) -> GPT:
        """Raise ``ValueError`` unless ``model`` has the shape these modules were built for."""
        _checks.instance("model", model, GPT)
        if dataclasses.replace(model.config, n_layer=1) != self.config:
            raise ValueError(f"model must have the shape the MTP modules were built for ({self.config}, any n_layer); "
                             f"got {model.config}")
        return model

    def module(self, k: int) -> MTPModule:
        """The module of depth ``k`` (1-based, as in the paper's MTP module k)."""
        return cast(MTPModule, self.layers[k - 1])

    def logits(self, model: GPT, k: int, hidden: torch.Tensor) -> torch.Tensor:
        """OutHead(h^k): Tensor[..., V] from Tensor[..., C], through module ``k``'s norm (k >= 1)."""
        return model.lm_head(self.module(k).norm_out(hidden))

    def all_logits(self, model: GPT, idx: torch.Tensor) -> list[torch.Tensor]:
        """The main model's and every depth's logits over a whole sequence (training, checking).

        Args:
            model: the main model.
            idx: Tensor[B, T] of token ids t_0 … t_{T-1}.

        Returns:
            ``[logits⁰, logits¹, …, logitsᴰ]``: logitsᵏ is Tensor[B, T - k, V] and its position
            i predicts t_{i+k+1} (depths with T - k <= 0 are left out).
        """
        self.check_model(model)
        _checks.tensor("idx", idx, ndim=2, dtypes=(torch.long, torch.int))
        logits, hidden = model(idx)  # (B, T, V), (B, T, C)
        out = [logits]
        T = idx.shape[1]
        for k, layer in enumerate(self.layers, start=1):
            n = T - k  # positions i whose token t_{i+k} is inside the sequence
            if n <= 0:
                break
            hidden = layer(hidden[:, :n], model.wte(idx[:, k:]))  # (B, n, C)
            out.append(self.logits(model, k, hidden))
        return out


@export("mtp.save_mtp")
def save_mtp(mtp: MultiTokenPredictor, path: str | Path = MTP_CHECKPOINT, **info: Any) -> Path:
    """Write ``mtp``'s weights (float16) and ``info`` (numbers, strings, lists) to ``path``."""
    _checks.instance("mtp", mtp, MultiTokenPredictor)
    return save_addon(mtp, path, "state_dict", depth=mtp.depth, variant=mtp.variant, **info)


@export("mtp.load_mtp")
def load_mtp(model: GPT, path: str | Path | None = None) -> tuple[MultiTokenPredictor, dict[str, Any]]:
    """Load modules written by :func:`save_mtp` for ``model`` (default: the committed ones).

    Raises:
        course_lib.lm.CheckpointError: missing, corrupted, or made for another model shape;
            the message says how to retrain.
    """
    return load_addon(MTP_CHECKPOINT if path is None else path,
                      lambda blob: MultiTokenPredictor(model, int(blob["depth"]), str(blob.get("variant", "mtp"))),
                      "state_dict", "MTP modules",
                      RETRAIN_MTP)
