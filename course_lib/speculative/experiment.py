"""Measuring speculative decoding: pass costs, where a step's time goes, a cost model, speed and quality.

Every timing here goes through :func:`course_lib.timing.compare` (warm-up, interleaved
alternatives, ≥ 5 repeats, median and IQR) and every ratio is between medians of one run.
Four harnesses, used by the notebook and by ``benchmarks/bench_medusa.py``:

* :func:`forward_time` — c(N), one cached forward pass over N new tokens, for several N in one
  run. A pass reads every weight once (≈ 4·P bytes in float32 for P parameters) and does
  ≈ 2·P·N FLOPs, an arithmetic intensity of ≈ N/2 FLOP/byte: where reading the weights
  dominates (a large model on a GPU), c(N) ≈ c(1) for N up to tens; a tiny model on a CPU has
  its weights in cache and pays per-call overheads and arithmetic instead.
* :func:`step_breakdown` — one Medusa step cut into its phases (drafting the candidates, the
  forward pass over N nodes, acceptance, cache compaction, the heads) timed on the same state,
  next to the whole step, one plain decoding step and the prefill; the rest of the step is
  Python overhead. Both decoders are costed as their loops run: the plain step is
  ``lm.generate``'s loop body (the pass, ``next_token``, appending the token), not the bare
  pass, and the Medusa run's rate is tokens per *forward pass* (its last step may emit the root
  alone, without a pass).
* the **cost model** is :class:`course_lib.speculative.cost_model.StepBreakdown`:
  speed-up ≈ E[tokens per step] / (c(N)/c(1) + overhead), with c(N) and the overhead measured.
* :func:`compare_decoding` — plain greedy decoding and Medusa (trees × acceptance rules) on the
  same prompts, timed in one interleaved run: tokens per step, speed-up, and the *quality* of
  what each wrote — the base model's NLL of the continuation and its repetition rate
  (:mod:`course_lib.lm.quality`). Greedy Medusa is checked to be lossless on the way.

Reached as ``course_lib.speculative.experiment.<name>`` (not re-exported by the package).
Timings vary with the machine and its load; tokens per step do not. Notebook: ``10_medusa``
("Experiment", "Where a step's time goes"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.generate import check_prompt, generate, next_token
from course_lib.lm.model import GPT, KVCache
from course_lib.lm.quality import continuation_nll, repetition_rate
from course_lib.speculative.cost_model import StepBreakdown
from course_lib.speculative.medusa_acceptance import TypicalConfig
from course_lib.speculative.medusa_decode import (
    MedusaResult,
    _step,
    accept_path,
    draft_candidates,
    medusa_generate,
    verify_tree,
)
from course_lib.speculative.medusa_heads import MedusaHeads
from course_lib.speculative.medusa_tree import MedusaTree, medusa_tree
from course_lib.timing import Timing, compare

REPETITION_N = 8  # n-gram length (bytes) of the repetition rate
SAMPLE_S = 0.05  # seconds per timing sample of a single pass or phase (many calls per sample)


@export("speculative.experiment.ForwardCost")
@dataclass(frozen=True)
class ForwardCost:
    """c(N): the time of one cached forward pass over N new tokens, for several N, one run."""

    cache_len: int  # tokens already in the cache before the pass
    timings: dict[int, Timing]  # N -> the pass's timing

    def ratio(self, n: int) -> float:
        """c(N) / c(1), between medians of the same run (needs N = 1 among the sizes)."""
        return self.timings[n].median / self.timings[1].median


def _random_tokens(model: GPT, n: int, seed: int) -> torch.Tensor:
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (1, n), generator=gen).to(device)  # (1, n)


@export("speculative.experiment.forward_time")
@torch.no_grad()
def forward_time(model: GPT, sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64), cache_len: int = 64,
                 repeats: int = 7) -> ForwardCost:
    """Time one forward pass over N new tokens after ``cache_len`` cached ones, every N in one run.

    Args:
        model: the model (eval mode).
        sizes: the N to time; 1 must be among them (ratios are to c(1)).
        cache_len: tokens in the cache before each pass.
        repeats: samples per size (median and IQR of :func:`course_lib.timing.compare`).

    Returns:
        A :class:`ForwardCost`.

    Raises:
        ValueError: no sizes, 1 not among them, a size below 1, or ``cache_len + N > block_size``.
    """
    _checks.instance("model", model, GPT)
    sizes = [_checks.integer("sizes entry", n, minimum=1) for n in sizes]
    if 1 not in sizes:
        raise ValueError(f"sizes must include 1 (ratios are taken to c(1)); got {sizes}")
    _checks.integer("cache_len", cache_len, minimum=0)
    if cache_len + max(sizes) > model.config.block_size:
        raise ValueError(f"cache_len + n_tokens must be <= block_size={model.config.block_size}; "
                         f"got {cache_len} + {max(sizes)}")
    weight = next(model.parameters())
    cache = KVCache(model.config, device=weight.device, dtype=weight.dtype)
    if cache_len:
        model(_random_tokens(model, cache_len, 0), cache=cache)

    def one_pass(new: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            cache.length = cache_len  # the same cache state for every call
            return model(new, cache=cache)
        return run

    fns = {n: one_pass(_random_tokens(model, n, n)) for n in sizes}
    timings = compare({str(n): fn for n, fn in fns.items()}, repeats=repeats, min_sample_s=SAMPLE_S,
                      sample_warmup=1)
    return ForwardCost(cache_len, {n: timings[str(n)] for n in sizes})


def _check_prompt_state(model: GPT, prompt: torch.Tensor, nodes: int) -> torch.Tensor:
    _checks.instance("model", model, GPT)
    _checks.tensor("prompt", prompt, ndim=1, dtypes=(torch.long, torch.int))
    if prompt.numel() == 0 or prompt.numel() + nodes > model.config.block_size:
        raise ValueError(f"prompt must hold 1 .. block_size - {nodes} = {model.config.block_size - nodes} tokens "
                         f"(room for the tree); got {prompt.numel()}")
    return prompt.long()[None]  # (1, T)


@export("speculative.experiment.step_breakdown")
@torch.no_grad()
def step_breakdown(model: GPT, heads: MedusaHeads, prompt: torch.Tensor, tree: MedusaTree | str = "medium",
                   acceptance: str = "greedy", typical: TypicalConfig | None = None,
                   repeats: int = 7, decode_prompts: Sequence[torch.Tensor] = (),
                   max_new_tokens: int = 128) -> StepBreakdown:
    """Time each phase of a Medusa step, the whole step, a plain step and the prefill, interleaved.

    The state is the one after the prefill of ``prompt`` (its length sets the cache length);
    every timed call starts from it again (the cache's ``length`` is reset before each call).
    The prefill timed is that of ``decode_prompts`` when given (the one the decodes pay), else
    that of ``prompt``.

    Args:
        model, heads: the base model and its heads.
        prompt: Tensor[T] of token ids (T + nodes <= block_size).
        tree: a :class:`MedusaTree` or a name in ``EXAMPLE_TREES``.
        acceptance: ``"greedy"`` or ``"typical"``.
        typical: typical acceptance's parameters.
        repeats: samples per alternative.
        decode_prompts: if given, Tensor[T] prompts: one call decodes each of them by plain
            greedy decoding, another by Medusa (``max_new_tokens`` tokens each), timed in the
            same interleaved run, so the cost model's prediction and the measured speed-up share
            the machine's conditions; the prefill is then theirs, and the tokens per step are
            pooled over them. Several prompts make E[tokens per step] an average, not one
            prompt's luck, and a longer sample steadies the timing.
        max_new_tokens: the decodes' length.

    Returns:
        A :class:`StepBreakdown` whose phases are ``candidates``, ``forward``, ``acceptance``,
        ``compaction`` and ``heads``.

    Raises:
        TypeError: ``decode_prompts`` is a tensor rather than a sequence of them.
        ValueError: ``prompt`` leaves no room for the tree, a decode prompt too long for
            ``max_new_tokens`` more tokens, ``max_new_tokens < 1``.
    """
    _checks.instance("heads", heads, MedusaHeads)
    if isinstance(decode_prompts, torch.Tensor):
        raise TypeError(f"decode_prompts must be a sequence of Tensor[T] prompts; got a Tensor of shape "
                        f"{tuple(decode_prompts.shape)} (wrap one prompt in a list)")
    _checks.one_of("acceptance", acceptance, ("greedy", "typical"))
    label = tree if isinstance(tree, str) else f"{tree.num_nodes}-node tree"
    tree = tree if isinstance(tree, MedusaTree) else medusa_tree(tree)
    idx = _check_prompt_state(model, prompt, tree.num_nodes)
    weight = next(model.parameters())
    cache = KVCache(model.config, 1, max_len=model.config.block_size + tree.num_nodes, device=idx.device,
                    dtype=weight.dtype)
    logits, hidden = model(idx, cache=cache)  # (1, T, V), (1, T, C)
    logits, head_logits = logits[0, -1], heads(hidden[0, -1])
    start, N = cache.length, tree.num_nodes
    node_tokens = draft_candidates(logits, head_logits, tree)
    tree_logits, tree_hidden = verify_tree(model, cache, node_tokens, tree)
    nodes = accept_path(node_tokens, tree_logits, tree, acceptance, typical)
    last = int(nodes[-1])
    prefill_cache = KVCache(model.config, 1, device=idx.device, dtype=weight.dtype)
    # the prefills the decodes pay: of their prompts when decodes are timed
    _checks.integer("max_new_tokens", max_new_tokens, minimum=1)
    prefill_idx = [check_prompt(model, p, max_new_tokens) for p in decode_prompts] or [idx]
    root = logits.argmax()[None, None]  # (1, 1)

    def forward() -> object:
        cache.length = start
        return verify_tree(model, cache, node_tokens, tree)

    def compaction() -> None:
        cache.length = start + N
        cache.compact(start, nodes)

    def whole_step() -> object:
        cache.length = start
        return _step(model, heads, cache, logits, head_logits, tree, acceptance, typical)

    def plain_step() -> object:  # one iteration of lm.generate's loop, as plain decoding pays it
        cache.length = start
        out, _ = model(root, cache=cache)
        return torch.cat([idx, next_token(out[:, -1])[:, None]], dim=1)

    def prefill() -> None:
        for p in prefill_idx:
            prefill_cache.length = 0
            model(p, cache=prefill_cache)

    phases: dict[str, Callable[[], object]] = {
        "candidates": lambda: draft_candidates(logits, head_logits, tree),
        "forward": forward,
        "acceptance": lambda: accept_path(node_tokens, tree_logits, tree, acceptance, typical),
        "compaction": compaction,
        "heads": lambda: heads(tree_hidden[last]),
    }
    extra: dict[str, Callable[[], object]] = {}
    decoded: list[MedusaResult] = []

    def decode_plain() -> None:
        for p in decode_prompts:
            generate(model, p, max_new_tokens)

    def decode() -> None:
        decoded[:] = [medusa_generate(model, heads, p, max_new_tokens, tree=tree, acceptance=acceptance,
                                      typical=typical) for p in decode_prompts]

    if decode_prompts:
        extra = {"decode plain": decode_plain, "decode": decode}
    # 50 ms samples: on a shared, busy CPU, short samples mostly measure the scheduler. One
    # untimed call before each sample of a part: its first call after a whole decode is slow,
    # which a 20-call sample would carry and a decode (its steps back to back) does not; the
    # decodes are end-to-end measurements and keep theirs
    parts = {**phases, "step": whole_step, "plain": plain_step, "prefill": prefill}
    t = compare({**parts, **extra}, repeats=repeats, min_sample_s=SAMPLE_S, sample_warmup=dict.fromkeys(parts, 1))
    # the cost model charges one timed step per forward pass: a last step that emits only the
    # root (forward_pass=False) costs no pass, so the rate is tokens per pass, not per step
    per_pass = None
    if decoded:
        per_pass = sum(len(r.new_tokens) for r in decoded) / sum(s.forward_pass for r in decoded for s in r.steps)
    return StepBreakdown(f"medusa/{label}/{acceptance}", N, start, {k: t[k] for k in phases}, t["step"],
                         t["plain"], t["prefill"], decode_plain=t.get("decode plain"), decode=t.get("decode"),
                         tokens_per_step=per_pass, max_new_tokens=max_new_tokens if decoded else None,
                         num_prompts=len(prefill_idx))


@export("speculative.experiment.DecodingStats")
@dataclass(frozen=True)
class DecodingStats:
    """One decoding method measured over a set of prompts."""

    method: str  # "plain", or "medusa/<tree>/<acceptance>"
    nodes: int  # tokens checked per verification pass (plain: 1)
    tokens_per_step: float  # generated tokens / decoding steps (plain: 1.0)
    timing: Timing  # one call decodes every prompt
    speedup: float  # plain's median / this median, from the same interleaved run
    nll: float  # the base model's mean NLL of the continuations, nats per byte (lower: likelier)
    repetition: float  # mean fraction of repeated 8-byte n-grams in the continuations


@export("speculative.experiment.compare_decoding")
def compare_decoding(model: GPT, heads: MedusaHeads, prompts: Sequence[torch.Tensor], max_new_tokens: int,
                     trees: Sequence[str] = ("chain-4", "small", "medium", "large"),
                     acceptances: Sequence[str] = ("greedy", "typical"), typical: TypicalConfig | None = None,
                     repeats: int = 5) -> list[DecodingStats]:
    """Plain greedy vs Medusa on the same prompts, timed interleaved; greedy Medusa checked lossless.

    Args:
        model, heads: the base model and its heads.
        prompts: Tensor[T] prompts (each T + max_new_tokens <= block_size).
        max_new_tokens: tokens to add to each prompt.
        trees: names in ``EXAMPLE_TREES``.
        acceptances: ``"greedy"`` and/or ``"typical"``.
        typical: typical acceptance's parameters.
        repeats: samples per method (≥ 5 for a median worth quoting).

    Returns:
        One :class:`DecodingStats` for plain decoding, then one per (tree, acceptance).

    Raises:
        ValueError: no prompts, ``max_new_tokens < 1``.
        AssertionError: greedy Medusa wrote different tokens than plain greedy decoding.
    """
    _checks.integer("max_new_tokens", max_new_tokens, minimum=1)
    if not prompts:
        raise ValueError("prompts must hold at least one prompt; got none")
    for a in acceptances:
        _checks.one_of("acceptances entry", a, ("greedy", "typical"))
    outputs: dict[str, list] = {}

    def method(label: str, run: Callable[[torch.Tensor], object]) -> Callable[[], None]:
        def decode_all() -> None:
            outputs[label] = [run(p) for p in prompts]
        return decode_all

    fns: dict[str, Callable[[], None]] = {"plain": method("plain", lambda p: generate(model, p, max_new_tokens))}
    for name in trees:
        for acceptance in acceptances:
            run = functools.partial(medusa_generate, model, heads, max_new_tokens=max_new_tokens, tree=name,
                                    acceptance=acceptance, typical=typical)
            fns[f"medusa/{name}/{acceptance}"] = method(f"medusa/{name}/{acceptance}", run)
    timings = compare(fns, repeats=repeats, warmup=1, number=1)
    plain = outputs["plain"]
    T = [p.numel() for p in prompts]

    def quality(tokens: list[torch.Tensor]) -> tuple[float, float]:
        nll = sum(continuation_nll(model, t, n) for t, n in zip(tokens, T)) / len(tokens)
        rep = sum(repetition_rate(t[n:], REPETITION_N) for t, n in zip(tokens, T)) / len(tokens)
        return nll, rep

    rows = [DecodingStats("plain", 1, 1.0, timings["plain"], 1.0, *quality(plain))]
    for label in list(fns)[1:]:
        results = outputs[label]
        if label.endswith("/greedy"):  # an explicit raise: the check must survive python -O
            for i, (ref, res) in enumerate(zip(plain, results)):
                if not torch.equal(ref, res.tokens):
                    raise AssertionError(f"greedy Medusa ({label}) differs from plain greedy decoding on prompt {i}")
        steps = sum(len(r.steps) for r in results)
        rows.append(DecodingStats(label, medusa_tree(label.split("/")[1]).num_nodes,
                                  len(prompts) * max_new_tokens / steps, timings[label],
                                  timings["plain"].median / timings[label].median,
                                  *quality([r.tokens for r in results])))
    return rows
