"""Medusa speculative decoding on the tiny code model (:mod:`course_lib.lm`).

Paper: Cai et al., "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding
Heads" (ICML 2024); reference code FasterDecoding/Medusa. The parts, bottom-up:

* :mod:`~course_lib.speculative.medusa_heads` — :class:`MedusaHeads` (residual block + head per
  offset, starting as the base head), :func:`save_heads`, :func:`load_heads`.
* :mod:`~course_lib.speculative.medusa_training` — Medusa-1 (:func:`train_heads`, frozen
  backbone) and :func:`head_accuracy`.
* :mod:`~course_lib.speculative.medusa_tree` — :class:`MedusaTree`: mask, position ids, tree and
  retrieve indices from a list of paths.
* :mod:`~course_lib.speculative.medusa_acceptance` — :func:`greedy_acceptance`,
  :func:`typical_acceptance`.
* :mod:`~course_lib.speculative.medusa_decode` — :func:`medusa_step`, :func:`medusa_generate`.
* :mod:`~course_lib.speculative.experiment` — :func:`forward_time`, :func:`compare_decoding`.
* :mod:`~course_lib.speculative.draft_tree_view` — :func:`draft_tree_view`, :func:`draft_tree_widget`.
* :mod:`~course_lib.speculative.exercises` — the chapter's exercises.

Command line: ``python -m course_lib.speculative.train`` retrains the committed heads
(``checkpoints/medusa_heads.pt``) on the committed model. Benchmark: ``benchmarks/bench_medusa.py``.

Notebook: ``10_medusa``. Tests: ``tests/test_speculative.py``.
"""

from course_lib.speculative.draft_tree_view import draft_tree_view, draft_tree_widget
from course_lib.speculative.experiment import DecodingStats, compare_decoding, forward_time
from course_lib.speculative.medusa_acceptance import greedy_acceptance, typical_acceptance
from course_lib.speculative.medusa_decode import MedusaResult, MedusaStep, medusa_generate, medusa_step
from course_lib.speculative.medusa_heads import HEADS_CHECKPOINT, MedusaHeads, load_heads, save_heads
from course_lib.speculative.medusa_training import HeadAccuracy, head_accuracy, train_heads
from course_lib.speculative.medusa_tree import EXAMPLE_TREES, MedusaTree, medusa_tree

__all__ = [
    "EXAMPLE_TREES",
    "HEADS_CHECKPOINT",
    "DecodingStats",
    "HeadAccuracy",
    "MedusaHeads",
    "MedusaResult",
    "MedusaStep",
    "MedusaTree",
    "compare_decoding",
    "draft_tree_view",
    "draft_tree_widget",
    "greedy_acceptance",
    "forward_time",
    "head_accuracy",
    "load_heads",
    "medusa_generate",
    "medusa_step",
    "medusa_tree",
    "save_heads",
    "train_heads",
    "typical_acceptance",
]
