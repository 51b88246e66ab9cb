"""Byte-level tokenizer: every UTF-8 byte is one token, so the vocabulary has 256 entries.

No merges, no unknown token, no training: ``encode`` is ``list(text.encode("utf-8"))`` and
``decode`` reverses it. A byte-level model sees Python source exactly as written (indentation,
docstring quotes, ``self.``), which makes its next token easy to guess where code is repetitive — the
situation speculative decoding exploits.

Difference from production tokenizers (GPT-2's byte-level BPE, tiktoken): no merges, so a
sequence is ~3-4x longer in tokens than with BPE. Limitation: ``decode`` of a sequence cut in
the middle of a multi-byte character replaces the broken bytes with U+FFFD.

Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export

VOCAB_SIZE = 256  # one token per byte value
_GLYPHS = {ord(" "): "␣", ord("\n"): "↵", ord("\t"): "⇥"}  # whitespace a reader can see


@export("lm.encode")
def encode(text: str) -> torch.Tensor:
    """Encode ``text`` as UTF-8 bytes.

    Args:
        text: any string.

    Returns:
        Tensor[T] of dtype long with values in [0, 256).

    Raises:
        TypeError: ``text`` is not a ``str``.

    Example:
        >>> encode("def").tolist()
        [100, 101, 102]
    """
    _checks.instance("text", text, str)
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


@export("lm.decode")
def decode(tokens: torch.Tensor | list[int]) -> str:
    """Decode byte tokens back to text (invalid UTF-8 becomes U+FFFD).

    Args:
        tokens: Tensor[T] or a list of ints in [0, 256).

    Returns:
        The decoded string.

    Raises:
        TypeError: ``tokens`` is neither a tensor nor a list.
        ValueError: a tensor that is not 1-D, or a value outside [0, 256).
    """
    if isinstance(tokens, torch.Tensor):
        _checks.tensor("tokens", tokens, ndim=1)
        values = tokens.tolist()
    else:
        values = list(_checks.instance("tokens", tokens, (list, tuple)))
    bad = [v for v in values if not 0 <= int(v) < VOCAB_SIZE]
    if bad:
        raise ValueError(f"tokens must be byte values in [0, {VOCAB_SIZE}); got {bad[0]}")
    return bytes(int(v) for v in values).decode("utf-8", errors="replace")


@export("lm.token_label")
def token_label(token: int) -> str:
    """A one-glyph label for a byte token: ``␣`` space, ``↵`` newline, ``\\xNN`` if unprintable.

    Used by the decoding viewers of chapters 10 and 11 to draw one token per node.

    Raises:
        ValueError: ``token`` is not a byte value in [0, 256).
    """
    token = _checks.integer("token", token, minimum=0, maximum=VOCAB_SIZE - 1)
    if token in _GLYPHS:
        return _GLYPHS[token]
    return chr(token) if 32 < token < 127 else f"\\x{token:02x}"
