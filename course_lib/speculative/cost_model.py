"""The cost model of speculative decoding: where a step's time goes, and the speed-up it predicts.

A speculative step writes E[tokens per step] tokens (``τ``) for one verification pass over N
tokens plus the work around it; a plain step writes one token for a pass over one. With c(N) the
time of a pass over N new tokens (measured: it is flat in N only where reading the weights
dominates — a large model on a GPU — and grows on a tiny model on a CPU),

    speed-up ≈ τ / (c(N)/c(1) + overhead),      overhead = (step − c(N)) / c(1)

the overhead being everything a step does outside the model's forward pass — drafting the
candidates, the heads or draft module, acceptance, cache compaction, Python — in units of a
plain step. (Leviathan et al. 2023, §3.4, write the same with the drafter's cost c as the
overhead.) :class:`StepBreakdown` holds the measured phases and predicts; the harnesses that fill
it are ``course_lib.speculative.experiment.step_breakdown`` (Medusa) and
``course_lib.mtp.experiment.pass_breakdown`` (MTP).

Notebooks: ``10_medusa`` ("Where a step's time goes"), ``11_multi_token_prediction``.
Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from course_lib import _checks
from course_lib._export import export
from course_lib.timing import Timing


@export("speculative.StepBreakdown")
@dataclass(frozen=True)
class StepBreakdown:
    """Where one decoding step's time goes, and the cost model built on it (see the module doc)."""

    name: str  # e.g. "medusa/medium/greedy" or "mtp"
    nodes: int  # N: tokens in the verification pass
    cache_len: int  # committed tokens before the timed step
    phases: dict[str, Timing]  # the step's parts, in order; "forward" is the pass over N tokens
    step: Timing  # the whole step, as the decoding loop runs it
    plain: Timing  # one plain greedy step at the same cache length, as lm.generate's loop runs it: c(1) + argmax
    prefill: Timing  # the prompts' forward passes, paid once by plain and speculative decoding alike
    decode_plain: Timing | None = None  # optional: plain greedy decodes of the prompts, timed in the same run
    decode: Timing | None = None  # optional: the same decodes by the speculative method, same run
    tokens_per_step: float | None = None  # of those speculative decodes, per step with a forward pass
    max_new_tokens: int | None = None  # of every decode
    num_prompts: int = 1  # prompts decoded by one call of decode / decode_plain (and prefilled by prefill)

    @property
    def measured_speedup(self) -> float:
        """decode_plain / decode, medians of the same run (NaN when no decode was timed)."""
        if self.decode is None or self.decode_plain is None:
            return float("nan")
        return self.decode_plain.median / self.decode.median

    @property
    def other(self) -> float:
        """Seconds of the step outside the timed phases: Python, allocation, bookkeeping."""
        return self.step.median - sum(t.median for t in self.phases.values())

    @property
    def forward_ratio(self) -> float:
        """c(N) / c(1): the verification pass against a plain step."""
        return self.phases["forward"].median / self.plain.median

    @property
    def overhead(self) -> float:
        """The step's cost beyond its forward pass, in units of a plain step: (step − c(N)) / c(1)."""
        return (self.step.median - self.phases["forward"].median) / self.plain.median

    def forward_only_speedup(self, tokens_per_step: float) -> float:
        """E[tokens per step] / (c(N)/c(1)): the speed-up if nothing but the passes cost."""
        return tokens_per_step / self.forward_ratio

    def predicted_speedup(self, tokens_per_step: float, max_new_tokens: int | None = None) -> float:
        """E[tokens per step] / (c(N)/c(1) + overhead); with ``max_new_tokens``, the prefill included.

        With n new tokens for each of the k = ``num_prompts`` prompts, plain decoding pays
        prefill + k·(n − 1)·c(1) (each prefill gives its prompt's first token) and speculative
        decoding prefill + k·(n / tokens per step)·step, ``prefill`` being the time of all k.
        """
        _checks.real("tokens_per_step", tokens_per_step, minimum=0.0, open_min=True)
        if max_new_tokens is None:
            return tokens_per_step / (self.forward_ratio + self.overhead)
        n = _checks.integer("max_new_tokens", max_new_tokens, minimum=1)
        k = self.num_prompts
        plain = self.prefill.median + k * (n - 1) * self.plain.median
        return plain / (self.prefill.median + k * n / tokens_per_step * self.step.median)
