"""Medusa decoding: draft a tree with the heads, verify it in one forward pass, keep the best path.

Paper: Cai et al., "Medusa" (2024), Algorithm / §2.1; reference code ``MedusaModel.medusa_generate``
with ``generate_candidates``, ``tree_decoding``, ``evaluate_posterior`` and
``update_inference_inputs`` in FasterDecoding/Medusa.

State between steps: the KV cache of every committed token, the base model's logits at the last
committed token (they give the next token — the *root*) and the heads' logits there (they
give the guesses for the tokens after it). One step (:func:`medusa_step`):

1. **candidates** — root = argmax of the base logits; head k proposes its top-k tokens for
   depth k + 1; ``tree.tree_indices`` places them on the N tree nodes.
2. **verify** — one forward pass over the N nodes with the KV cache, the tree attention mask and
   position ids ``cache_len + depth``: every node sees the committed text and its own ancestors.
3. **accept** — gather each root-to-leaf path's tokens and logits (``tree.retrieve_indices``)
   and choose the path and accepted length (:mod:`.medusa_acceptance`).
4. **compact** — keep only the accepted nodes' keys and values in the cache, and take the base
   and head logits at the last accepted node for the next step.

A step writes 1 + (accepted drafted tokens) tokens for one forward pass of N tokens. Decoding
one token is memory-bound on a large model (every weight is read for one token), so checking N
tokens at once costs little more than one. The speed-up is then

    speed-up ≈ E[tokens per step] / (c(N)/c(1) + overhead)

with c(N) the time of a pass over N tokens and the overhead the step's work outside the model
in units of c(1) (``course_lib.speculative.experiment.step_breakdown`` measures both).

Differences from the reference: batch size 1 only (as the reference), the root is always the
base model's argmax (the reference's greedy first token; with typical acceptance the drafted
tokens are accepted by the typical rule, so both rules are deterministic), and near the end of
generation the tree is pruned
so no token beyond ``max_new_tokens`` is drafted.

Notebook: ``10_medusa``. Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.generate import check_prompt
from course_lib.lm.model import GPT, KVCache
from course_lib.speculative.medusa_acceptance import TypicalConfig, greedy_acceptance, typical_acceptance
from course_lib.speculative.medusa_heads import MedusaHeads
from course_lib.speculative.medusa_tree import MedusaTree, medusa_tree


@export("speculative.MedusaStep")
@dataclass
class MedusaStep:
    """What one decoding step saw and decided (the draft-tree viewer draws it)."""

    position: int  # the root's position (tokens committed before the step)
    tree: MedusaTree  # the tree used (pruned near the end of generation)
    node_tokens: list[int]  # the token on each tree node, root first
    accepted_nodes: list[int]  # node indices of the kept path, root first
    forward_pass: bool = True  # False for a last step that only emits the root
    node_argmax: list[int] = field(default_factory=list)  # the base model's argmax at each node (empty: no pass)

    @property
    def position_ids(self) -> list[int]:
        """Each node's position id: the root's position + its depth (siblings share one)."""
        return [self.position + d for d in self.tree.depths.tolist()]

    @property
    def accepted_tokens(self) -> list[int]:
        return [self.node_tokens[i] for i in self.accepted_nodes]


@export("speculative.MedusaResult")
@dataclass
class MedusaResult:
    """The output of :func:`medusa_generate`."""

    tokens: torch.Tensor  # Tensor[T + n]: the prompt and the generated tokens
    prompt_length: int  # T
    steps: list[MedusaStep] = field(default_factory=list)  # one per decoding step

    @property
    def new_tokens(self) -> torch.Tensor:
        return self.tokens[self.prompt_length:]

    @property
    def tokens_per_step(self) -> float:
        """Mean tokens written per decoding step (plain decoding: 1.0; NaN with no step)."""
        return self.new_tokens.numel() / len(self.steps) if self.steps else float("nan")  # 0/0: no step


def _check_tree(tree: MedusaTree | str | list, heads: MedusaHeads) -> MedusaTree:
    tree = tree if isinstance(tree, MedusaTree) else medusa_tree(tree)
    if tree.depth > heads.num_heads:
        raise ValueError(f"tree has depth {tree.depth} but there are only {heads.num_heads} Medusa heads")
    if tree.top_k > heads.vocab_size:
        raise ValueError(f"tree needs top-{tree.top_k} candidates per head but the vocabulary has "
                         f"only {heads.vocab_size} tokens")
    return tree


@export("speculative.draft_candidates")
def draft_candidates(logits: torch.Tensor, head_logits: torch.Tensor, tree: MedusaTree) -> torch.Tensor:
    """Phase 1: the token on every tree node — root = argmax of the base logits, then the heads' top-k.

    Returns:
        Tensor[N] long, node i's token (``tree.tree_indices`` places ``[root, head₀ top-k, …]``).
    """
    root = logits.argmax()[None]  # (1,)
    top = head_logits[: tree.depth].topk(tree.top_k, dim=-1).indices  # (D, top_k)
    flat = torch.cat([root, top.flatten()])  # (1 + D * top_k,)
    return flat[tree.tree_indices.to(flat.device)]  # (N,)


@export("speculative.verify_tree")
def verify_tree(model: GPT, cache: KVCache, node_tokens: torch.Tensor,
                tree: MedusaTree) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase 2: one forward pass over the N nodes, tree mask, position ids ``cache.length + depth``.

    Returns:
        ``(logits, hidden)``: Tensor[N, V] and Tensor[N, C] at every node (the cache grows by N).
    """
    dev = node_tokens.device
    logits, hidden = model(node_tokens[None], cache=cache, attn_mask=tree.mask.to(dev),
                           positions=cache.length + tree.depths.to(dev))  # (1, N, V), (1, N, C)
    return logits[0], hidden[0]


@export("speculative.accept_path")
def accept_path(node_tokens: torch.Tensor, tree_logits: torch.Tensor, tree: MedusaTree, acceptance: str,
                typical: TypicalConfig | None) -> torch.Tensor:
    """Phase 3: gather every root-to-leaf path and keep the accepted prefix of the best one.

    Returns:
        Tensor[A] long: the accepted nodes' indices, root first, ascending.
    """
    retrieve = tree.retrieve_indices.to(node_tokens.device)  # (P, D + 1)
    safe = retrieve.clamp(min=0)
    candidates = torch.where(retrieve >= 0, node_tokens[safe], -1)  # (P, D + 1)
    path_logits = tree_logits[safe]  # (P, D + 1, V)
    if acceptance == "greedy":
        best, length = greedy_acceptance(candidates, path_logits)
    else:
        best, length = typical_acceptance(candidates, path_logits, typical)
    return retrieve[best, : length + 1]  # (A,)


def _step(model: GPT, heads: MedusaHeads, cache: KVCache, logits: torch.Tensor, head_logits: torch.Tensor,
          tree: MedusaTree, acceptance: str,
          typical: TypicalConfig | None) -> tuple[MedusaStep, torch.Tensor, torch.Tensor]:
    """The four phases and the heads, without argument checks (the decoding loop checked once)."""
    start = cache.length
    node_tokens = draft_candidates(logits, head_logits, tree)  # (N,)
    tree_logits, hidden = verify_tree(model, cache, node_tokens, tree)  # (N, V), (N, C)
    nodes = accept_path(node_tokens, tree_logits, tree, acceptance, typical)  # (A,)
    cache.compact(start, nodes)  # phase 4: keep only the accepted nodes' keys and values
    last = int(nodes[-1])
    step = MedusaStep(start, tree, node_tokens.tolist(), nodes.tolist(), node_argmax=tree_logits.argmax(-1).tolist())
    return step, tree_logits[last], heads(hidden[last])


@export("speculative.medusa_step")
@torch.no_grad()
def medusa_step(model: GPT, heads: MedusaHeads, cache: KVCache, logits: torch.Tensor, head_logits: torch.Tensor,
                tree: MedusaTree, acceptance: str = "greedy",
                typical: TypicalConfig | None = None) -> tuple[MedusaStep, torch.Tensor, torch.Tensor]:
    r"""One Medusa step: candidates → one tree-masked forward pass → acceptance → cache compaction.

    The phases are :func:`draft_candidates`, :func:`verify_tree`, :func:`accept_path` and
    ``cache.compact``; then the heads run on the last accepted node's hidden state.
    ``course_lib.speculative.experiment.step_breakdown`` times each of them.

    Args:
        model: the base model.
        heads: its Medusa heads.
        cache: the KV cache of the committed tokens (batch 1); updated in place.
        logits: Tensor[V], the base logits at the last committed token.
        head_logits: Tensor[K, V], the heads' logits there.
        tree: the draft tree (depth <= K, top_k <= V).
        acceptance: ``"greedy"`` (lossless) or ``"typical"`` (deterministic, not lossless).
        typical: typical acceptance's τ, ε, α (default :class:`TypicalConfig`\ ()).

    Returns:
        ``(step, logits, head_logits)``: the record of the step and the logits at the new last
        committed token.

    Raises:
        TypeError: ``model``, ``heads``, ``cache`` or ``typical`` of the wrong type, non-float logits.
        ValueError: a cache for more than one sequence, logits of the wrong shape, fewer head
            logits than the tree's depth, a bad tree or an unknown ``acceptance``.
    """
    _checks.instance("model", model, GPT)
    _checks.instance("heads", heads, MedusaHeads)
    _checks.instance("cache", cache, KVCache)
    _checks.one_of("acceptance", acceptance, ("greedy", "typical"))
    if typical is not None:
        _checks.instance("typical", typical, TypicalConfig)
    tree = _check_tree(tree, heads)
    if cache.k.shape[1] != 1:
        raise ValueError(f"cache must hold one sequence (batch size 1); got batch size {cache.k.shape[1]}")
    V = heads.vocab_size
    _checks.tensor("logits", logits, floating=True)
    if tuple(logits.shape) != (V,):
        raise ValueError(f"logits must have shape (V,) = ({V},), the base logits at the last committed token; "
                         f"got {tuple(logits.shape)}")
    _checks.tensor("head_logits", head_logits, floating=True)
    if head_logits.dim() != 2 or head_logits.shape[1] != V or head_logits.shape[0] < tree.depth:
        raise ValueError(f"head_logits must have shape (K, V) with V={V} and K >= the tree's depth {tree.depth}; "
                         f"got {tuple(head_logits.shape)}")
    return _step(model, heads, cache, logits, head_logits, tree, acceptance, typical)


@export("speculative.medusa_generate")
@torch.no_grad()
def medusa_generate(model: GPT, heads: MedusaHeads, prompt: torch.Tensor, max_new_tokens: int,
                    tree: MedusaTree | str | list = "small", acceptance: str = "greedy",
                    typical: TypicalConfig | None = None) -> MedusaResult:
    r"""Continue ``prompt`` by ``max_new_tokens`` tokens with Medusa decoding.

    With ``acceptance="greedy"`` the tokens equal ``course_lib.lm.generate(model, prompt, n)``
    (plain greedy decoding) exactly — only the number of forward passes differs. (Exactly in
    exact arithmetic: the tree pass adds up the same terms as the one-token passes in another
    order, so an argmax between two logits closer than the rounding error could flip. The tests
    check it in float64; the committed model's closest top-1/top-2 gap on the notebook's prompts
    is ~7e-4, far above float32 rounding.)

    Args:
        model: the base model, in eval mode.
        heads: Medusa heads trained for it.
        prompt: Tensor[T] (or Tensor[1, T]) of token ids.
        max_new_tokens: n, how many tokens to add (T + n <= block_size).
        tree: a :class:`MedusaTree`, a list of paths, or a name in ``EXAMPLE_TREES``.
        acceptance: ``"greedy"`` or ``"typical"``.
        typical: typical acceptance's τ, ε, α (default :class:`TypicalConfig`\ ()).

    Returns:
        A :class:`MedusaResult` with the tokens and one :class:`MedusaStep` per step.

    Raises:
        ValueError: batch size > 1, a prompt longer than the context or too long for n more
            tokens, a tree deeper than the number of heads or with top-k above the vocabulary,
            an unknown ``acceptance``.
        TypeError: a prompt that is not an integer tensor.
    """
    _checks.instance("heads", heads, MedusaHeads)
    idx = check_prompt(model, prompt, max_new_tokens)
    if idx.shape[0] != 1:
        raise ValueError(f"prompt must hold one sequence (batch size 1; Medusa's tree is per sequence); "
                         f"got batch size {idx.shape[0]}")
    _checks.one_of("acceptance", acceptance, ("greedy", "typical"))
    if typical is not None:
        _checks.instance("typical", typical, TypicalConfig)
    tree = _check_tree(tree, heads)
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, 1, max_len=model.config.block_size + tree.num_nodes, device=idx.device, dtype=dtype)
    logits, hidden = model(idx, cache=cache)  # prefill: (1, T, V), (1, T, C)
    logits, head_logits = logits[0, -1], heads(hidden[0, -1])
    T = idx.shape[1]
    out = idx[0].tolist()
    steps: list[MedusaStep] = []
    while len(out) - T < max_new_tokens:
        depth = min(tree.depth, max_new_tokens - (len(out) - T) - 1)  # draft nothing beyond n
        if depth == 0:  # the last token is the root itself; no forward pass needed
            root = int(logits.argmax())
            steps.append(MedusaStep(len(out), tree.truncated(0), [root], [0], forward_pass=False))
            out.append(root)
            break
        step, logits, head_logits = _step(model, heads, cache, logits, head_logits,
                                          tree if depth == tree.depth else tree.truncated(depth), acceptance, typical)
        steps.append(step)
        out.extend(step.accepted_tokens)
    tokens = torch.tensor(out[: T + max_new_tokens], dtype=torch.long, device=idx.device)
    return MedusaResult(tokens, T, steps)
