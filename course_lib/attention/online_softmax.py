"""Online softmax: the softmax of a row seen one block at a time, and the rule that merges blocks.

A softmax needs the row's maximum (for stability) and its normaliser before it can emit anything,
which seems to require the whole row at once. Milakov & Gimelshein (2018,
https://arxiv.org/abs/1805.02867) keep instead a *state* for the part of the row seen so far:

    m = max_j s_j                    the running maximum
    l = Σ_j exp(s_j - m)             the running sum, relative to m
    acc = Σ_j exp(s_j - m) v_j       (attention only) the un-normalised output, relative to m

Two states over disjoint parts of a row merge exactly — the rule FlashAttention applies once per
K/V tile (Dao et al., 2022, Algorithm 1, lines 9-12):

    m   = max(m₁, m₂)
    l   = exp(m₁ - m) l₁   + exp(m₂ - m) l₂
    acc = exp(m₁ - m) acc₁ + exp(m₂ - m) acc₂

and the result is ``acc / l`` (= softmax(s) @ v) or ``exp(s - m) / l`` (= softmax(s)). The
factors ``exp(mᵢ - m) <= 1`` *rescale* an old partial sum to a new maximum; nothing overflows.

Legend: ``m`` running max, ``l`` running sum, ``acc`` partial output. A state with ``m = -inf``
is empty (every score masked); merging with it changes nothing, and no ``nan`` arises.

Notebook: ``09_flash_attention`` §2 (online softmax). Tests: ``tests/test_attention.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export


@export("attention.SoftmaxState")
@dataclass
class SoftmaxState:
    """The softmax of part of a row, kept relative to its own maximum."""

    m: torch.Tensor  # Tensor[...]: the maximum score seen (-inf when none)
    l: torch.Tensor  # Tensor[...]: Σ exp(s_j - m) over the scores seen
    acc: torch.Tensor | None = None  # Tensor[..., D]: Σ exp(s_j - m) v_j, or None for a plain softmax

    def output(self) -> torch.Tensor:
        """``acc / l``: the attention output over the scores seen, Tensor[..., D].

        Raises:
            TypeError: the state has no ``acc`` (a plain softmax state).
        """
        if self.acc is None:
            raise TypeError("output() needs a state with acc (values); this one is a plain softmax state")
        return self.acc / self.l[..., None]


def _finite(m: torch.Tensor) -> torch.Tensor:
    # An empty state has m = -inf; exp(-inf - (-inf)) would be nan. Any finite stand-in works
    # because such a state's l and acc are 0. Only -inf is replaced: a +inf or nan score makes the
    # row nan, as in torch.softmax.
    return torch.where(m == float("-inf"), torch.zeros_like(m), m)


@export("attention.block_state")
def block_state(s: torch.Tensor, v: torch.Tensor | None = None) -> SoftmaxState:
    """The state of one block of scores, and of the values they weight.

    Args:
        s (Tensor[..., n]): the scores of ``n`` keys for each row ``...``.
        v (Tensor[..., n, D] | None): the values of those keys. Its leading dims broadcast against
            ``s``'s: one block ``V_j (Tensor[n, D])`` shared by every row of a tile
            ``S_ij (Tensor[B, H, bm, n])`` is passed as ``V_j[..., None, :, :]``.

    Returns:
        :class:`SoftmaxState` with ``m``, ``l`` of shape ``(...)`` and ``acc`` of shape ``(..., D)``
        (``None`` without ``v``). A block with no scores (``n = 0``) or only ``-inf`` ones gives the
        empty state ``(m = -inf, l = 0, acc = 0)``; a ``+inf`` or ``nan`` score gives ``nan``.

    Raises:
        TypeError: not floating tensors, or dtypes that differ.
        ValueError: ``s`` with no dims, ``v`` with fewer than 2, ``v.shape[-2] != n``, or leading
            dims of ``v`` that do not broadcast to ``s``'s.

    Example:
        >>> st = block_state(torch.tensor([[0.0, 1.0]]), torch.eye(2)[None])  # s (1, 2), v (1, 2, 2)
        >>> st.acc / st.l[..., None]  # the softmax row: V = I
        tensor([[0.2689, 0.7311]])
    """
    _checks.tensor("s", s, ndim=range(1, 9), floating=True)
    if v is not None:
        _checks.tensor("v", v, ndim=range(2, 10), floating=True)
        _checks.same_dtype(s=s, v=v)
        lead = s.shape[:-1]
        try:
            fits = torch.broadcast_shapes(lead, v.shape[:-2]) == lead
        except RuntimeError:
            fits = False
        if v.shape[-2] != s.shape[-1] or not fits:
            raise ValueError(f"v must have shape (..., n, D) with n = s.shape[-1] = {s.shape[-1]} and leading dims "
                             f"that broadcast to s's {tuple(lead)}; got s {tuple(s.shape)}, v {tuple(v.shape)}")
    if s.shape[-1] == 0:  # no keys: the empty state
        m = torch.full(s.shape[:-1], float("-inf"), dtype=s.dtype, device=s.device)
    else:
        m = s.amax(dim=-1)  # (...,)
    p = torch.exp(s - _finite(m)[..., None])  # (..., n); masked scores (-inf) give 0
    acc = None if v is None else torch.einsum("...n,...nd->...d", p, v)  # (..., D): row r gets p[r] @ v[r]
    return SoftmaxState(m, p.sum(dim=-1), acc)


@export("attention.merge_states")
def merge_states(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """Merge the states of two disjoint parts of the same rows (the online-softmax rule).

    Args:
        a: state over some keys; ``m``, ``l`` of shape (...), ``acc`` (..., D) or None.
        b: state over other keys, same shapes.

    Returns:
        The state over both: max of the maxima, sums rescaled to it and added.

    Raises:
        TypeError: not states, or one has ``acc`` and the other not.
        ValueError: shapes of ``m`` differ.
    """
    _checks.instance("a", a, SoftmaxState)
    _checks.instance("b", b, SoftmaxState)
    if a.m.shape != b.m.shape:
        raise ValueError(f"a.m and b.m must have the same shape; got {tuple(a.m.shape)} and {tuple(b.m.shape)}")
    if (a.acc is None) != (b.acc is None):
        raise TypeError("a.acc and b.acc must both be tensors or both be None")
    m = torch.maximum(a.m, b.m)
    alpha = torch.exp(a.m - _finite(m))  # <= 1: rescales a's sums from a.m to m
    beta = torch.exp(b.m - _finite(m))
    l = alpha * a.l + beta * b.l
    acc = None if a.acc is None or b.acc is None else alpha[..., None] * a.acc + beta[..., None] * b.acc
    return SoftmaxState(m, l, acc)


@export("attention.online_softmax")
def online_softmax(x: torch.Tensor, block_size: int = 4) -> torch.Tensor:
    """Softmax over the last dim, reading ``x`` in blocks of ``block_size`` with a running state.

    One pass gathers ``(m, l)`` block by block with :func:`merge_states`; the output is then
    ``exp(x - m) / l``. Equal to ``torch.softmax(x, dim=-1)`` up to rounding.

    Args:
        x (Tensor[..., N]): scores, floating point; ``-inf`` entries get probability 0.
        block_size: how many scores each step reads (>= 1).

    Returns:
        Tensor[..., N]: probabilities, rows summing to 1.

    Raises:
        TypeError: ``x`` not a floating tensor or ``block_size`` not an int.
        ValueError: ``x`` has no dims or ``block_size < 1``.

    Example:
        >>> x = torch.tensor([1.0, 1000.0, 3.0])
        >>> torch.allclose(online_softmax(x, 2), torch.softmax(x, -1))
        True
    """
    _checks.tensor("x", x, ndim=range(1, 9), floating=True)
    block_size = _checks.integer("block_size", block_size, minimum=1)
    state = SoftmaxState(torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype, device=x.device),
                         torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device))
    for start in range(0, x.shape[-1], block_size):
        state = merge_states(state, block_state(x[..., start:start + block_size]))
    return torch.exp(x - _finite(state.m)[..., None]) / state.l[..., None]  # (..., N)
