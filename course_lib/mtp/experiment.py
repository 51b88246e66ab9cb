"""Measuring MTP decoding: accuracy vs acceptance, where a pass's time goes, and wall-clock speed.

Three harnesses for chapter 11, reached as ``course_lib.mtp.experiment.<name>`` (not re-exported
by the package). Every timing goes through :func:`course_lib.timing.compare` (warm-up,
interleaved alternatives, ≥ 5 repeats, median and IQR).

* :func:`draft_agreement` — two different numbers that are easy to confuse. **Accuracy**
  (teacher-forced): how often depth 1's top-1 guess is the *true* next-next token of held-out
  text. **Agreement**: how often it equals the *main model's own* greedy token at that position
  — what greedy verification accepts. A draft can be accepted while wrong (both models make the
  same mistake) and rejected while right (the main model is the one that is wrong), so acceptance
  is bounded by neither accuracy; on the model's *own* greedy text (``mtp_generate``), which is
  more repetitive than real code, acceptance is higher still.
* :func:`pass_breakdown` — one MTP step cut into phases (the main model's pass over two tokens,
  its argmaxes, the draft module) next to the whole step, a plain step and the prefill: a
  :class:`course_lib.speculative.StepBreakdown`, so the same cost model predicts the speed-up.
* :func:`compare_mtp_decoding` — plain greedy vs MTP decoding on the same prompts, timed
  interleaved; lossless checked on the way.
* :func:`ablation_rows` — the capacity-controlled ablation: every depth-1 module written by
  ``python -m course_lib.mtp.train --ablation`` (variants ``"mtp"``, ``"hidden_only"``,
  ``"medusa_block"`` at several training budgets), each measured live — accuracy, agreement
  (:func:`draft_agreement`) and acceptance while decoding (``mtp_generate``).

Notebook: ``11_multi_token_prediction``. Tests: ``tests/test_mtp.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.generate import generate
from course_lib.lm.model import GPT, KVCache
from course_lib.mtp.mtp_decode import MTPResult, draft_next, mtp_generate, verify_pass
from course_lib.mtp.mtp_module import MTP_ABLATION_DIR, MTP_VARIANTS, MultiTokenPredictor, load_mtp
from course_lib.speculative.cost_model import StepBreakdown
from course_lib.timing import Timing, compare


@export("mtp.experiment.DraftAgreement")
@dataclass(frozen=True)
class DraftAgreement:
    """Depth 1's guesses on held-out text, judged against the truth and against the main model."""

    accuracy: float  # P(depth-1 argmax == true t_{i+2}), teacher-forced on the text
    agreement: float  # P(depth-1 argmax == main model's argmax for t_{i+2}): greedy acceptance on this text
    main_accuracy: float  # P(main model's argmax == true t_{i+2}) at the same positions
    both_wrong_but_agree: float  # P(draft == main's token != truth): accepted, yet not the text's token

    def __str__(self) -> str:
        return (f"depth-1 accuracy (vs the text) {self.accuracy:.3f}; agreement with the main model's greedy token "
                f"{self.agreement:.3f}; main model's accuracy {self.main_accuracy:.3f}; agree but both wrong "
                f"{self.both_wrong_but_agree:.3f}")


@export("mtp.experiment.draft_agreement")
@torch.no_grad()
def draft_agreement(model: GPT, mtp: MultiTokenPredictor, windows: torch.Tensor) -> DraftAgreement:
    """Teacher-forced accuracy of depth 1 and its agreement with the main model, on ``windows``.

    Args:
        model, mtp: the main model and its modules.
        windows: Tensor[B, T + 1] of held-out token ids (T >= 2).

    Returns:
        A :class:`DraftAgreement` over every position i with a target t_{i+2} in the window.
    """
    _checks.tensor("windows", windows, ndim=2, dtypes=(torch.long, torch.int, torch.uint8))
    if windows.shape[1] < 3:
        raise ValueError(f"windows must have at least 3 tokens (t_i, t_(i+1), t_(i+2)); got shape "
                         f"{tuple(windows.shape)}")
    windows = windows.long()
    logits = mtp.all_logits(model, windows[:, :-1])  # [main (B, T, V), depth 1 (B, T - 1, V), ...]
    draft = logits[1].argmax(-1)  # (B, T - 1): position i drafts t_{i+2}
    main = logits[0][:, 1:].argmax(-1)  # (B, T - 1): the main model at i + 1 predicts t_{i+2}
    truth = windows[:, 2:]  # (B, T - 1)
    return DraftAgreement(
        accuracy=(draft == truth).float().mean().item(),
        agreement=(draft == main).float().mean().item(),
        main_accuracy=(main == truth).float().mean().item(),
        both_wrong_but_agree=((draft == main) & (main != truth)).float().mean().item(),
    )


@export("mtp.experiment.pass_breakdown")
@torch.no_grad()
def pass_breakdown(model: GPT, mtp: MultiTokenPredictor, prompt: torch.Tensor, repeats: int = 7) -> StepBreakdown:
    """Time the phases of one MTP step, the whole step, a plain step and the prefill, interleaved.

    The state is the one after the prefill of ``prompt`` and its first draft; every timed call
    starts from it again (cache lengths reset before each call).

    Returns:
        A :class:`~course_lib.speculative.StepBreakdown` with phases ``forward`` (the main
        model's pass over [fed, draft]), ``verify`` (its argmaxes and the comparison, without the
        pass) and ``draft module`` (module 1 on the committed positions, its logits and argmax).
    """
    mtp.check_model(model)
    _checks.tensor("prompt", prompt, ndim=1, dtypes=(torch.long, torch.int))
    if not 1 < prompt.numel() <= model.config.block_size - 2:
        raise ValueError(f"prompt must hold 2 .. block_size - 2 = {model.config.block_size - 2} tokens; "
                         f"got {prompt.numel()}")
    idx = prompt.long()[None]  # (1, T)
    dev, dtype = idx.device, next(model.parameters()).dtype
    cache = KVCache(model.config, 1, device=dev, dtype=dtype)
    draft_cache = KVCache(mtp.config, 1, device=dev, dtype=dtype)
    logits, hidden = model(idx, cache)  # (1, T, V), (1, T, C)
    fed = int(logits[0, -1].argmax())
    draft = draft_next(model, mtp, draft_cache, hidden, torch.cat([idx[0, 1:], torch.tensor([fed], device=dev)]))
    start, draft_start = cache.length, draft_cache.length
    pair = torch.tensor([[fed, draft]], device=dev)  # (1, 2)
    pass_logits, _ = model(pair, cache)
    cache.length = start
    step, step_hidden = verify_pass(model, cache, fed, draft)
    committed = torch.tensor(step.committed, device=dev)
    prefill_cache = KVCache(model.config, 1, device=dev, dtype=dtype)

    def forward() -> object:
        cache.length = start
        return model(pair, cache)

    def verify() -> object:
        top = pass_logits[0].argmax(-1).tolist()
        return [draft, top[1]] if top[0] == draft else [top[0]]

    def module() -> object:
        draft_cache.length = draft_start
        return draft_next(model, mtp, draft_cache, step_hidden, committed)

    def whole_step() -> object:
        cache.length, draft_cache.length = start, draft_start
        s, h = verify_pass(model, cache, fed, draft)
        return draft_next(model, mtp, draft_cache, h, torch.tensor(s.committed, device=dev))

    def plain_step() -> object:
        cache.length = start
        out, _ = model(pair[:, :1], cache)
        return out[:, -1].argmax(dim=-1)

    def prefill() -> object:
        prefill_cache.length = 0
        return model(idx, prefill_cache)

    phases: dict[str, Callable[[], object]] = {"forward": forward, "verify": verify, "draft module": module}
    # 50 ms samples: on a shared, busy CPU, short samples mostly measure the scheduler; one
    # untimed call before each sample keeps the cold first call after a switch out of it
    t = compare({**phases, "step": whole_step, "plain": plain_step, "prefill": prefill}, repeats=repeats,
                min_sample_s=0.05, sample_warmup=1)
    return StepBreakdown("mtp", 2, start, {k: t[k] for k in phases}, t["step"], t["plain"], t["prefill"])


@export("mtp.experiment.MTPDecodingStats")
@dataclass(frozen=True)
class MTPDecodingStats:
    """Plain greedy vs MTP decoding over a set of prompts, from one interleaved run."""

    plain: Timing  # one call decodes every prompt
    mtp: Timing
    tokens_per_pass: float  # mean over prompts
    acceptance: float  # mean fraction of drafts accepted, on the model's own greedy text
    results: tuple[MTPResult, ...]  # one per prompt

    @property
    def speedup(self) -> float:
        """plain median / MTP median."""
        return self.plain.median / self.mtp.median


@export("mtp.experiment.compare_mtp_decoding")
def compare_mtp_decoding(model: GPT, mtp: MultiTokenPredictor, prompts: Sequence[torch.Tensor], max_new_tokens: int,
                         repeats: int = 5) -> MTPDecodingStats:
    """Plain greedy vs MTP decoding on the same prompts, timed interleaved; MTP checked lossless.

    Raises:
        ValueError: no prompts.
        AssertionError: MTP decoding wrote different tokens than plain greedy decoding.
    """
    _checks.integer("max_new_tokens", max_new_tokens, minimum=2)
    if not prompts:
        raise ValueError("prompts must hold at least one prompt; got none")
    out: dict[str, list] = {}
    fns = {"plain": lambda: out.__setitem__("plain", [generate(model, p, max_new_tokens) for p in prompts]),
           "mtp": lambda: out.__setitem__("mtp", [mtp_generate(model, mtp, p, max_new_tokens) for p in prompts])}
    t = compare(fns, repeats=repeats, warmup=1, number=1)
    for i, (ref, res) in enumerate(zip(out["plain"], out["mtp"])):
        if not torch.equal(ref, res.tokens):  # an explicit raise: the check must survive python -O
            raise AssertionError(f"MTP decoding differs from plain greedy decoding on prompt {i}")
    results = tuple(out["mtp"])
    return MTPDecodingStats(t["plain"], t["mtp"], sum(r.tokens_per_pass for r in results) / len(results),
                            sum(r.acceptance_rate for r in results) / len(results), results)


@export("mtp.experiment.AblationRow")
@dataclass(frozen=True)
class AblationRow:
    """One depth-1 drafter of the ablation, after ``steps`` training steps, measured live."""

    variant: str  # "mtp", "hidden_only" or "medusa_block" (see course_lib.mtp.mtp_module)
    steps: int  # optimizer steps trained (a snapshot of one run of ``run_steps``)
    run_steps: int  # the run's length: its cosine schedule spans these
    seconds: float  # training time to this snapshot, as recorded in the checkpoint (machine load varies)
    params: int  # the module's parameters (the shared embedding and output head not counted)
    accuracy: float  # teacher-forced top-1 against the true t_{i+2}
    agreement: float  # teacher-forced top-1 against the main model's greedy t_{i+2}
    acceptance: float  # drafts accepted while greedy-decoding the prompts (all passes pooled)


@export("mtp.experiment.ablation_rows")
@torch.no_grad()
def ablation_rows(model: GPT, windows: torch.Tensor, prompts: Sequence[torch.Tensor], max_new_tokens: int,
                  directory: str | Path = MTP_ABLATION_DIR) -> list[AblationRow]:
    """Measure every ``<variant>_<steps>.pt`` in ``directory`` on held-out windows and prompts.

    Args:
        model: the main model the modules were trained on.
        windows: Tensor[B, T + 1] held-out token ids, for accuracy and agreement.
        prompts: Tensor[T] prompts, each greedy-decoded by ``max_new_tokens`` with the module as
            drafter (``mtp_generate``: lossless, so only the acceptance differs between modules).
        max_new_tokens: tokens per decode.
        directory: where the checkpoints are (default: the committed ones).

    Returns:
        One :class:`AblationRow` per checkpoint, ordered by variant (as in ``MTP_VARIANTS``),
        then steps.

    Raises:
        ValueError: no prompts, or no checkpoint in ``directory``.
        course_lib.lm.CheckpointError: a checkpoint that does not load.
    """
    _checks.integer("max_new_tokens", max_new_tokens, minimum=1)
    if not prompts:
        raise ValueError("prompts must hold at least one prompt; got none")
    paths = sorted(Path(directory).glob("*_*.pt"))
    if not paths:
        raise ValueError(f"directory must hold <variant>_<steps>.pt checkpoints; {directory} has none. "
                         "Train them with: python -m course_lib.mtp.train --ablation")
    rows = []
    for path in paths:
        drafter, info = load_mtp(model, path)
        agree = draft_agreement(model, drafter, windows)
        runs = [mtp_generate(model, drafter, p, max_new_tokens) for p in prompts]
        passes = sum(len(r.steps) for r in runs)
        rows.append(AblationRow(drafter.variant, int(info["steps"]), int(info["run_steps"]), float(info["seconds"]),
                                sum(p.numel() for p in drafter.layers[0].parameters()), agree.accuracy,
                                agree.agreement, sum(sum(s.accepted for s in r.steps) for r in runs) / passes))
    return sorted(rows, key=lambda r: (MTP_VARIANTS.index(r.variant), r.steps))
