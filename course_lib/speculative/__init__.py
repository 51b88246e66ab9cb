"""Medusa speculative decoding on the tiny code model (:mod:`course_lib.lm`).

Paper: Cai et al., "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding
Heads" (ICML 2024); reference code FasterDecoding/Medusa. The parts, bottom-up:

* :mod:`~course_lib.speculative.medusa_heads` — :class:`MedusaHeads` (residual block + head per
  offset, starting as the base head), :func:`save_heads`, :func:`load_heads`.
* :mod:`~course_lib.speculative.medusa_training` — Medusa-1 (:func:`train_heads`, frozen
  backbone) and :func:`head_accuracy`; Medusa-2's combined loss (:func:`medusa2_loss`) and
  learning-rate recipe (:class:`Medusa2Recipe`).
* :mod:`~course_lib.speculative.medusa_tree` — :class:`MedusaTree`: mask, position ids, tree and
  retrieve indices from a list of paths; :func:`greedy_tree` builds one from measured
  per-rank acceptance (:func:`rank_agreement`), :func:`expected_accept_length` scores one.
* :mod:`~course_lib.speculative.medusa_acceptance` — :func:`greedy_acceptance`,
  :func:`typical_acceptance` (deterministic; parameters in :class:`TypicalConfig`).
* :mod:`~course_lib.speculative.medusa_decode` — the phases :func:`draft_candidates`,
  :func:`verify_tree`, :func:`accept_path`; :func:`medusa_step`, :func:`medusa_generate`.
* :mod:`~course_lib.speculative.speculative_sampling` — lossless speculative *sampling*
  (:func:`speculative_accept`, :func:`speculative_sample`, :class:`MedusaDrafter`).
* :mod:`~course_lib.speculative.cost_model` — :class:`StepBreakdown`: a step's measured phases and
  the speed-up they predict.
* :mod:`~course_lib.speculative.draft_tree_view` — :func:`draft_tree_state`,
  :func:`draft_tree_view`, :func:`draft_tree_widget`.
* :mod:`~course_lib.speculative.experiment` — the measurements (``forward_time``,
  ``step_breakdown``, ``compare_decoding``): reached as ``course_lib.speculative.experiment.<name>``,
  not re-exported here.
* :mod:`~course_lib.speculative.exercises` — the chapter's exercises.

Command line: ``python -m course_lib.speculative.train`` retrains the committed heads
(``checkpoints/medusa_heads.pt``) on the committed model. Benchmark: ``benchmarks/bench_medusa.py``.

Notebook: ``10_medusa``. Tests: ``tests/test_speculative.py``.
"""

from course_lib.speculative.cost_model import StepBreakdown
from course_lib.speculative.draft_tree_view import DraftTreeState, draft_tree_state, draft_tree_view, draft_tree_widget
from course_lib.speculative.medusa_acceptance import TypicalConfig, greedy_acceptance, typical_acceptance
from course_lib.speculative.medusa_decode import (
    MedusaResult,
    MedusaStep,
    accept_path,
    draft_candidates,
    medusa_generate,
    medusa_step,
    verify_tree,
)
from course_lib.speculative.medusa_heads import HEADS_CHECKPOINT, MedusaHeads, load_heads, save_heads
from course_lib.speculative.medusa_training import (
    HeadAccuracy,
    Medusa2Loss,
    Medusa2Recipe,
    head_accuracy,
    medusa2_loss,
    rank_agreement,
    train_heads,
)
from course_lib.speculative.medusa_tree import (
    EXAMPLE_TREES,
    MedusaTree,
    expected_accept_length,
    greedy_tree,
    medusa_tree,
)
from course_lib.speculative.speculative_sampling import (
    MedusaDrafter,
    SpeculativeResult,
    speculative_accept,
    speculative_sample,
)

__all__ = [
    "DraftTreeState",
    "EXAMPLE_TREES",
    "HEADS_CHECKPOINT",
    "HeadAccuracy",
    "Medusa2Loss",
    "Medusa2Recipe",
    "MedusaDrafter",
    "MedusaHeads",
    "MedusaResult",
    "MedusaStep",
    "MedusaTree",
    "SpeculativeResult",
    "StepBreakdown",
    "TypicalConfig",
    "accept_path",
    "draft_candidates",
    "draft_tree_state",
    "draft_tree_view",
    "draft_tree_widget",
    "expected_accept_length",
    "greedy_acceptance",
    "greedy_tree",
    "head_accuracy",
    "load_heads",
    "medusa2_loss",
    "medusa_generate",
    "medusa_step",
    "medusa_tree",
    "rank_agreement",
    "save_heads",
    "speculative_accept",
    "speculative_sample",
    "train_heads",
    "typical_acceptance",
    "verify_tree",
]
