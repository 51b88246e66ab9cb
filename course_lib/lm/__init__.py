"""A tiny byte-level GPT trained on Python's standard library: the shared language model.

Used by the Medusa chapter (``10_medusa``, :mod:`course_lib.speculative`) and meant to be reused
by later chapters (multi-token prediction). The parts, bottom-up:

* :mod:`~course_lib.lm.tokenizer` — bytes as tokens (:func:`encode`, :func:`decode`, :func:`token_label`).
* :mod:`~course_lib.lm.corpus` — the stdlib source split by file (:func:`load_corpus`).
* :mod:`~course_lib.lm.model` — :class:`GPT`, :class:`GPTConfig`, :class:`KVCache`.
* :mod:`~course_lib.lm.checkpoint` — :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`evaluate`.
* :mod:`~course_lib.lm.generate` — greedy and sampled decoding with or without the cache.
* :mod:`~course_lib.lm.quality` — :func:`continuation_nll`, :func:`repetition_rate`: judging a continuation.
* :mod:`~course_lib.lm.training` — :func:`train_model`, :class:`AddonConfig` (fitting heads or modules
  on the frozen model); CLI ``python -m course_lib.lm.train --preset quick|full``.

Tests: ``tests/test_lm.py``.
"""

from course_lib.lm.checkpoint import (
    CHECKPOINT_DIR,
    DEFAULT_CHECKPOINT,
    CheckpointError,
    evaluate,
    load_checkpoint,
    save_checkpoint,
)
from course_lib.lm.corpus import Corpus, code_prompts, load_corpus, validation_slice
from course_lib.lm.generate import generate
from course_lib.lm.model import GPT, GPTConfig, KVCache, lm_loss
from course_lib.lm.quality import continuation_nll, repetition_rate
from course_lib.lm.tokenizer import VOCAB_SIZE, decode, encode, token_label
from course_lib.lm.training import PRESETS, AddonConfig, TrainConfig, train_model

__all__ = [
    "AddonConfig",
    "CHECKPOINT_DIR",
    "DEFAULT_CHECKPOINT",
    "VOCAB_SIZE",
    "CheckpointError",
    "Corpus",
    "GPT",
    "GPTConfig",
    "PRESETS",
    "TrainConfig",
    "KVCache",
    "code_prompts",
    "continuation_nll",
    "decode",
    "encode",
    "evaluate",
    "generate",
    "lm_loss",
    "load_checkpoint",
    "load_corpus",
    "repetition_rate",
    "save_checkpoint",
    "token_label",
    "train_model",
    "validation_slice",
]
