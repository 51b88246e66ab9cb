"""Measuring speculative decoding: tokens per step and wall-clock time against plain decoding.

Two measurements, used by the notebook and by ``benchmarks/bench_medusa.py``:

* :func:`forward_time` — the time of one cached forward pass over N new tokens. A decoding
  step reads every weight once (≈ 4·P bytes in float32 for P parameters) and does
  ≈ 2·P·N multiply-adds' worth of FLOPs, so its arithmetic intensity is about N/2 FLOP/byte:
  for small N the step is bound by memory traffic (and, for a tiny model on a CPU, by fixed
  per-call overheads), and N tokens cost little more than one.
* :func:`compare_decoding` — plain greedy decoding and Medusa decoding (for several trees and
  acceptance rules) on the same prompts, timed in the same run: mean tokens per step and the
  speed-up ``time(plain) / time(medusa)``.

Timings vary with the machine and its load; the tokens per step do not (for greedy
acceptance they depend only on the model and heads). Notebook: ``10_medusa``
("Experiment"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.generate import generate
from course_lib.lm.model import GPT, KVCache
from course_lib.speculative.medusa_decode import medusa_generate
from course_lib.speculative.medusa_heads import MedusaHeads
from course_lib.speculative.medusa_tree import medusa_tree


@export("speculative.forward_time")
@torch.no_grad()
def forward_time(model: GPT, n_tokens: int, cache_len: int = 64, repeats: int = 20) -> float:
    """Median seconds of one forward pass over ``n_tokens`` new tokens after ``cache_len`` cached ones."""
    _checks.integer("n_tokens", n_tokens, minimum=1)
    _checks.integer("cache_len", cache_len, minimum=0)
    if cache_len + n_tokens > model.config.block_size:
        raise ValueError(f"cache_len + n_tokens must be <= block_size={model.config.block_size}; "
                         f"got {cache_len} + {n_tokens}")
    gen = torch.Generator().manual_seed(0)
    weight = next(model.parameters())
    prefix = torch.randint(0, model.config.vocab_size, (1, max(cache_len, 1)), generator=gen)[:, :cache_len]
    new = torch.randint(0, model.config.vocab_size, (1, n_tokens), generator=gen).to(weight.device)
    prefix = prefix.to(weight.device)
    cache = KVCache(model.config, device=weight.device, dtype=weight.dtype)
    if cache_len:
        model(prefix, cache=cache)
    times = []
    for _ in range(repeats + 2):
        cache.length = cache_len
        start = time.perf_counter()
        model(new, cache=cache)
        if weight.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[2:])[len(times[2:]) // 2]


@export("speculative.DecodingStats")
@dataclass
class DecodingStats:
    """One decoding method measured over a set of prompts."""

    method: str  # "plain", or "medusa/<tree>/<acceptance>"
    tokens_per_step: float  # generated tokens / decoding steps (plain: 1.0)
    seconds: float  # total wall-clock time over all prompts
    speedup: float  # plain seconds / these seconds (measured in the same run)
    nodes: int  # tokens checked per verification pass (plain: 1)


@export("speculative.compare_decoding")
def compare_decoding(model: GPT, heads: MedusaHeads, prompts: Sequence[torch.Tensor], max_new_tokens: int,
                     trees: Sequence[str] = ("chain-4", "small", "medium", "large"),
                     acceptances: Sequence[str] = ("greedy", "typical"),
                     temperature: float = 0.7) -> list[DecodingStats]:
    """Plain greedy vs Medusa on the same prompts; greedy Medusa is also checked to be lossless.

    Returns:
        One :class:`DecodingStats` for plain decoding, then one per (tree, acceptance).

    Raises:
        AssertionError: greedy Medusa wrote different tokens than plain greedy decoding.
    """
    _checks.integer("max_new_tokens", max_new_tokens, minimum=1)
    if not prompts:
        raise ValueError("prompts must hold at least one prompt; got none")
    start = time.perf_counter()
    plain = [generate(model, p, max_new_tokens) for p in prompts]
    plain_seconds = time.perf_counter() - start
    rows = [DecodingStats("plain", 1.0, plain_seconds, 1.0, 1)]

    for name in trees:
        for acceptance in acceptances:
            start = time.perf_counter()
            results = [medusa_generate(model, heads, p, max_new_tokens, tree=name, acceptance=acceptance,
                                       temperature=temperature) for p in prompts]
            seconds = time.perf_counter() - start
            if acceptance == "greedy":  # an explicit raise: the check must survive python -O
                for i, (ref, res) in enumerate(zip(plain, results)):
                    if not torch.equal(ref, res.tokens):
                        raise AssertionError(f"greedy Medusa ({name}) differs from plain greedy decoding "
                                             f"on prompt {i}")
            steps = sum(len(r.steps) for r in results)
            rows.append(DecodingStats(f"medusa/{name}/{acceptance}", len(prompts) * max_new_tokens / steps,
                                      seconds, plain_seconds / seconds, medusa_tree(name).num_nodes))
    return rows
