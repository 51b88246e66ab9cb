"""Multi-token prediction, DeepSeek-V3 style, on the tiny code model (:mod:`course_lib.lm`).

Paper: DeepSeek-AI, "DeepSeek-V3 Technical Report" (2024), §2.2 (MTP) and §5.4.3 (MTP for
speculative decoding). The parts, bottom-up:

* :mod:`~course_lib.mtp.mtp_module` — :class:`MTPModule` (one depth: norms, projection, one
  causal block) and :class:`MultiTokenPredictor` (the chain), :func:`save_mtp`, :func:`load_mtp`.
* :mod:`~course_lib.mtp.mtp_training` — :func:`mtp_loss`, :func:`train_mtp` (frozen main model),
  :func:`depth_accuracy`.
* :mod:`~course_lib.mtp.mtp_decode` — :func:`mtp_generate`: self-speculative decoding with the
  depth-1 module as the draft model (:func:`verify_pass`, :func:`draft_next`), lossless against
  greedy decoding; :class:`MTPDrafter` for lossless speculative sampling.
* :mod:`~course_lib.mtp.decoding_view` — :func:`mtp_decoding_state`, :func:`mtp_decoding_view`,
  :func:`mtp_decoding_widget`.
* :mod:`~course_lib.mtp.experiment` — measurements (``pass_breakdown``, ``draft_agreement``):
  reached as ``course_lib.mtp.experiment.<name>``, not re-exported here.

With the main model frozen, the design is EAGLE's (Li et al., "EAGLE: Speculative Sampling
Requires Rethinking Feature Uncertainty", ICML 2024): a one-block drafter on the main model's
features and the next token's embedding.
* :mod:`~course_lib.mtp.exercises` — the chapter's exercises.

Command line: ``python -m course_lib.mtp.train`` retrains the committed modules
(``checkpoints/mtp_modules.pt``) on the committed model.

Notebook: ``11_multi_token_prediction``. Tests: ``tests/test_mtp.py``.
"""

from course_lib.mtp.decoding_view import (
    MTPDecodingState,
    committed_kinds,
    mtp_decoding_state,
    mtp_decoding_view,
    mtp_decoding_widget,
)
from course_lib.mtp.mtp_decode import MTPDrafter, MTPResult, MTPStep, draft_next, mtp_generate, verify_pass
from course_lib.mtp.mtp_module import MTP_CHECKPOINT, MTPModule, MultiTokenPredictor, load_mtp, save_mtp
from course_lib.mtp.mtp_training import DepthAccuracy, depth_accuracy, mtp_loss, train_mtp

__all__ = [
    "MTP_CHECKPOINT",
    "DepthAccuracy",
    "MTPDecodingState",
    "MTPDrafter",
    "MTPModule",
    "MTPResult",
    "MTPStep",
    "MultiTokenPredictor",
    "committed_kinds",
    "depth_accuracy",
    "draft_next",
    "load_mtp",
    "mtp_decoding_state",
    "mtp_decoding_view",
    "mtp_decoding_widget",
    "mtp_generate",
    "mtp_loss",
    "save_mtp",
    "train_mtp",
    "verify_pass",
]
