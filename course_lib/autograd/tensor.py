"""Tensor: an n-d float64 array that records the op that made it, for reverse-mode autodiff.

A ``Tensor`` wraps a NumPy array (``.data``) and, when gradients are wanted, remembers its
parents and a vector-Jacobian product (vjp) — see :mod:`course_lib.autograd.engine`. The API
mirrors ``torch.Tensor`` where it overlaps (``requires_grad``, ``.grad``, ``.backward(gradient=)``,
``.detach()``, ``sum(dim, keepdim)``, ``log_softmax(dim)``…), so the same model
code runs on both engines — the digits MLP of the notebook does exactly that.

The math of each vjp, for ``g = ∂L/∂out`` (``⊙`` elementwise, ``Σ↓`` = :func:`unbroadcast`):

    add   a + b      ga = Σ↓ g                 gb = Σ↓ g
    mul   a * b      ga = Σ↓ g ⊙ b             gb = Σ↓ g ⊙ a
    div   a / b      ga = Σ↓ g / b             gb = Σ↓ -g ⊙ a / b²
    pow   a ** p     ga = g ⊙ p a^(p-1)        gp = g ⊙ out ⊙ log a   (tensor exponent)
                     (ga = 0 where p = 0; gp = 0 where a = 0 and p >= 0, as torch)
    matmul a @ b     ga = g @ bᵀ               gb = aᵀ @ g           (batch dims summed back)
    exp, log, tanh   g ⊙ out,  g / a,  g ⊙ (1 - out²)
    relu, sigmoid    where(out <= 0, 0, g),  g ⊙ (1 - out) ⊙ out
    sum / mean       g broadcast back over the reduced dims (/ n for mean; n = 0 gives nan)
    getitem  a[i]    zeros, then g scattered (added) into the positions i read
    log_softmax      g - softmax(a) ⊙ Σ_dim g

Broadcasting follows NumPy/torch: shapes align from the right and size-1 dims stretch. The
gradient of a stretched input is summed back over the stretched dims — :func:`unbroadcast`.

Special values follow torch (``tests/test_autograd_edges.py`` compares every op, forward and
backward, at 0, ±inf, NaN, subnormals, the largest finite values and size-0 dims): IEEE
arithmetic without warnings; masks by ``np.where``, never by multiplication (relu's gradient at
a negative input is 0 even when the upstream gradient is inf); ``pow``'s gradients at base 0
masked as torch masks them; ``mean`` over zero elements is ``0/0 = nan``; products in torch's
order, so overflow happens where torch's does. One pinned difference: the gradient of
``a ** 0.5`` at ``a = -0.0`` and ``-inf`` follows IEEE ``pow`` (+inf, +0) where torch's rsqrt
gives -inf and nan.

Differences from torch: float64 only, CPU only (NumPy); indexing returns a copy, not a view;
no in-place ops. Grad mode (``no_grad``) lives in :mod:`~course_lib.autograd.grad_mode`.

References: A. Paszke et al., *Automatic differentiation in PyTorch* (2017), whose eager,
define-by-run design this follows; A. Karpathy's *micrograd*, the same engine over scalars.

Notebook: ``01_autograd``. Tests: ``tests/test_autograd.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from course_lib._export import export
from course_lib.autograd.engine import run_backward
from course_lib.autograd.grad_mode import is_grad_enabled

Vjp = Callable[[np.ndarray], Sequence["np.ndarray | None"]]  # ∂L/∂out -> ∂L/∂parent, per parent

@export("autograd.unbroadcast")
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the dims that broadcasting stretched, so it gets ``shape`` back.

    Broadcasting ``(3,) -> (2, 3)`` copies the input along a new leading dim, and
    ``(2, 1) -> (2, 3)`` copies it along a size-1 dim; each copy's gradient adds up.

    Args:
        grad (ndarray[*broadcast_shape]): gradient with respect to the broadcast result.
        shape: the shape of the input before broadcasting.

    Returns:
        ndarray[*shape]
    """
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))  # dims broadcasting prepended
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return np.asarray(grad)  # a full reduction gives a NumPy scalar; keep it an array


def _as_array(name: str, value: Any) -> np.ndarray:
    """A float64 copy of a number, nested list, ndarray, torch tensor or Tensor."""
    if isinstance(value, Tensor):
        return value.data.copy()
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real | np.ndarray | list | tuple):
        raise TypeError(f"{name} must be a real number, a (nested) list, an ndarray or a tensor; "
                        f"got {type(value).__name__}: {value!r:.80}")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {array.dtype}")
    return np.array(array, dtype=np.float64)  # one copy: the Tensor owns its data


def _lift(name: str, value: Any) -> Tensor:
    """The other operand of a binary op as a Tensor (a constant, unless it already is one)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name} is a torch.Tensor; mix engines explicitly: Tensor(x) turns it into a "
                        "course_lib.autograd.Tensor (a constant)")
    return Tensor(_as_array(name, value))


def _dims(op: str, dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``dim`` as a tuple of non-negative axes, checked against ``ndim``."""
    if dim is None or ndim == 0:  # torch accepts dim 0 / -1 for a 0-d tensor: nothing to reduce
        return tuple(range(ndim))
    if not isinstance(dim, numbers.Integral | tuple | list):
        raise TypeError(f"{op}: dim must be an int or a tuple of ints; got {type(dim).__name__}: {dim!r}")
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints; got {dim!r}")
        if not -max(ndim, 1) <= int(d) < max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor with {ndim} dims")
    return tuple(sorted({int(d) % max(ndim, 1) for d in dims}))


def _broadcast(op: str, a: Tensor, b: Tensor) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: cannot broadcast shapes {a.shape} and {b.shape} (dims align from the "
                         "right; each pair must be equal or one of them 1)") from None


@export("autograd.Tensor")
class Tensor:
    """An n-d float64 array with reverse-mode autodiff (a small ``torch.Tensor``).

    Args:
        data: a number, nested list, ndarray or torch tensor (copied, converted to float64).
        requires_grad: record ops on this tensor and give it a ``.grad`` after ``backward()``.
        name: a label for the graph picture (``graph.backward_view``); optional.

    Raises:
        TypeError: ``data`` is not real numbers, or ``requires_grad`` is not a bool.

    Example:
        >>> x = Tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        Tensor([2. 4.])
    """

    __array_ufunc__ = None  # makes `ndarray + Tensor` call Tensor.__radd__ instead of NumPy's loop

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool; got {type(requires_grad).__name__}: {requires_grad!r}")
        self.data: np.ndarray = _as_array("data", data)
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self.name = name
        self._op = "leaf"  # what made this tensor; the graph picture and gradcheck show it
        self._parents: tuple[Tensor, ...] = ()
        self._vjp: Vjp | None = None  # None for leaves

    @classmethod
    def from_op(cls, op: str, data: np.ndarray, parents: Sequence[Tensor], vjp: Vjp) -> Tensor:
        """The result of an op: records ``parents`` and ``vjp`` when a gradient may be needed.

        Every op below is built with it, and so can a new one (the notebook builds a buggy
        sigmoid this way to watch :func:`~course_lib.autograd.gradcheck.gradcheck` catch it).

        Args:
            op: the op's name, e.g. ``"mul"``.
            data: the forward value.
            parents: the Tensors the value was computed from.
            vjp: maps ``∂L/∂out`` (shape of ``data``) to one gradient per parent (its shape).
        """
        out = cls.__new__(cls)
        out.data, out.grad, out.name, out._op = np.asarray(data, dtype=np.float64), None, None, op
        out.requires_grad = is_grad_enabled() and any(p.requires_grad for p in parents)
        out._parents, out._vjp = (tuple(parents), vjp) if out.requires_grad else ((), None)
        return out

    # ---- inspection -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (or under no_grad), False for recorded op results."""
        return self._vjp is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; got shape {self.shape}")
        return float(self.data.item())

    def __repr__(self) -> str:
        extra = f", op={self._op}" if self._vjp else (", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({np.array2string(self.data, precision=4)}{extra})"

    # ---- gradients ------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same values (same memory, as in torch), cut from the graph: no gradient flows back."""
        out = Tensor(0.0)
        out.data = self.data
        return out

    def accumulate_grad(self, grad: np.ndarray) -> None:
        """``.grad += grad`` for a leaf (the engine calls it; ``grad`` may be shared with the graph)."""
        total = grad.copy() if self.grad is None else self.grad.data + grad
        self.grad = Tensor(0.0)
        self.grad.data = total  # no copy through _as_array: total is already a fresh float64 array

    def backward(self, gradient: Any = None) -> None:
        """Add ``∂(self)/∂leaf``-weighted gradients into every leaf's ``.grad``.

        Args:
            gradient: ``v`` in the vector-Jacobian product ``v · ∂self/∂leaf``, shaped like
                ``self``; may be omitted only when ``self`` has one element (then ``v = 1``).

        Raises:
            ValueError: ``self`` does not require grad, or ``gradient`` is missing/misshapen.
        """
        if not self.requires_grad:
            raise ValueError("backward() called on a tensor that does not require grad: none of its inputs "
                             "had requires_grad=True, or it was computed under no_grad() or from detach()")
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(f"backward() on a tensor of shape {self.shape} needs gradient= of that shape "
                                 "(the vector v in v·J); only one-element tensors default to 1")
            seed = np.ones_like(self.data)
        else:
            seed = _as_array("gradient", gradient)
            if seed.shape != self.shape:
                raise ValueError(f"gradient must have the shape of the tensor, {self.shape}; got {seed.shape}")
        run_backward(self, seed)

    # ---- elementwise binary ops (broadcasting) -----------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        a, b = self, _lift("other", other)
        _broadcast("add", a, b)
        with np.errstate(all="ignore"):  # IEEE: inf - inf = nan, 0 * inf = nan, no warning
            out = a.data + b.data
        return Tensor.from_op("add", out, (a, b),
                              lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)))

    def __sub__(self, other: Any) -> Tensor:
        a, b = self, _lift("other", other)
        _broadcast("sub", a, b)
        with np.errstate(all="ignore"):  # IEEE: inf - inf = nan, 0 * inf = nan, no warning
            out = a.data - b.data
        return Tensor.from_op("sub", out, (a, b),
                              lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape)))

    def __mul__(self, other: Any) -> Tensor:
        a, b = self, _lift("other", other)
        _broadcast("mul", a, b)
        with np.errstate(all="ignore"):  # IEEE: inf - inf = nan, 0 * inf = nan, no warning
            out = a.data * b.data
        return Tensor.from_op("mul", out, (a, b),
                              lambda g: (unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)))

    def __truediv__(self, other: Any) -> Tensor:
        a, b = self, _lift("other", other)
        _broadcast("div", a, b)
        with np.errstate(all="ignore"):  # x/0 -> ±inf or nan, as in torch
            out = a.data / b.data
        def vjp(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with np.errstate(all="ignore"):
                # -g · ((a / b) / b), torch's order: (a / b²) would underflow b² to 0 first
                return unbroadcast(g / b.data, a.shape), unbroadcast(-g * (out / b.data), b.shape)

        return Tensor.from_op("div", out, (a, b), vjp)

    def __pow__(self, exponent: Any) -> Tensor:
        """``a ** p``; at ``a = 0`` the gradients follow torch, not the raw formulas (see below).

        The formulas ``p·a^(p-1)`` and ``out·log a`` give ``0·inf = nan`` or ``-inf`` at ``a = 0``;
        torch defines ``∂/∂a = 0`` where ``p == 0`` (``a^0 = 1`` is constant) and ``∂/∂p = 0``
        where ``a == 0 and p >= 0`` (``0^p`` is 0 or 1 for every such ``p``: flat from the right).
        """
        a = self
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
            p = float(exponent)
            with np.errstate(all="ignore"):
                out = a.data**p

            def vjp_scalar(g: np.ndarray) -> tuple[np.ndarray]:
                if p == 0:  # d(a**0)/da = 0, also at a = 0 where 0 * a**-1 would be nan
                    return (np.zeros_like(g),)
                with np.errstate(all="ignore"):
                    return (g * (p * a.data ** (p - 1)),)  # torch's order: the local derivative first

            return Tensor.from_op("pow", out, (a,), vjp_scalar)
        b = _lift("exponent", exponent)
        _broadcast("pow", a, b)
        with np.errstate(all="ignore"):
            out = a.data**b.data

        def vjp(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with np.errstate(all="ignore"):
                # torch's formulas, masks included: the base's where() covers g too (an inf g
                # still gives 0 where b == 0); the exponent's covers only the local derivative
                ga = np.where(b.data == 0, 0.0, g * (b.data * a.data ** (b.data - 1)))
                gb = g * np.where((a.data == 0) & (b.data >= 0), 0.0, out * np.log(a.data))
            return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)

        return Tensor.from_op("pow", out, (a, b), vjp)

    def __matmul__(self, other: Any) -> Tensor:
        a, b = self, _lift("other", other)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dim; got shapes {a.shape} and {b.shape}")
        a2 = a.data if a.ndim > 1 else a.data[None, :]  # (..., n, k): a vector is one row
        b2 = b.data if b.ndim > 1 else b.data[:, None]  # (..., k, m): a vector is one column
        if a2.shape[-1] != b2.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit: a's last dim ({a2.shape[-1]}) "
                             f"must equal b's {'only' if b.ndim == 1 else 'second-to-last'} dim ({b2.shape[-2]})")
        try:
            with np.errstate(all="ignore"):
                out2 = a2 @ b2  # (..., n, m)
        except ValueError:
            raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} do not broadcast") from None
        out = out2
        if b.ndim == 1:
            out = out[..., 0]
        if a.ndim == 1:
            out = out[..., 0, :] if b.ndim > 1 else out[..., 0]

        def vjp(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g2 = g.reshape(out2.shape)  # (..., n, m): undo the vector squeezes
            ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape)  # (..., n, k)
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape)  # (..., k, m)
            return ga.reshape(a.shape), gb.reshape(b.shape)

        return Tensor.from_op("matmul", out, (a, b), vjp)

    def __neg__(self) -> Tensor:
        return Tensor.from_op("neg", -self.data, (self,), lambda g: (-g,))

    def __radd__(self, other: Any) -> Tensor:
        return _lift("other", other) + self

    def __rsub__(self, other: Any) -> Tensor:
        return _lift("other", other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return _lift("other", other) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift("other", other) / self

    def __rpow__(self, other: Any) -> Tensor:
        return _lift("base", other) ** self

    def __rmatmul__(self, other: Any) -> Tensor:
        return _lift("other", other) @ self

    # ---- elementwise unary ops ----------------------------------------------------------------
    def exp(self) -> Tensor:
        with np.errstate(all="ignore"):
            out = np.exp(self.data)

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            with np.errstate(all="ignore"):  # 0 · inf = nan, as in torch
                return (g * out,)

        return Tensor.from_op("exp", out, (self,), vjp)

    def log(self) -> Tensor:
        a = self
        with np.errstate(all="ignore"):  # log(0) = -inf, log(<0) = nan, as torch
            out = np.log(a.data)

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            with np.errstate(all="ignore"):
                return (g / a.data,)

        return Tensor.from_op("log", out, (a,), vjp)

    def tanh(self) -> Tensor:
        out = np.tanh(self.data)

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            with np.errstate(all="ignore"):
                return (g * (1 - out * out),)

        return Tensor.from_op("tanh", out, (self,), vjp)

    def relu(self) -> Tensor:
        out = np.maximum(self.data, 0)  # nan stays nan
        # where, not g * mask: a masked inf or nan gradient must give 0, not nan; torch's test is
        # on the output (out <= 0 -> 0), so a nan input passes its gradient through
        return Tensor.from_op("relu", out, (self,), lambda g: (np.where(out <= 0, 0.0, g),))

    def sigmoid(self) -> Tensor:
        e = np.exp(-np.abs(self.data))  # exponent <= 0: no overflow for large |x|
        out = np.where(self.data >= 0, 1 / (1 + e), e / (1 + e))

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            with np.errstate(all="ignore"):
                return (g * (1 - out) * out,)  # torch's order of the products

        return Tensor.from_op("sigmoid", out, (self,), vjp)

    # ---- reductions ---------------------------------------------------------------------------
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return self._reduce("sum", dim, keepdim, count=None)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        """The mean over ``dim``; over zero elements it is ``0 / 0 = nan``, as in torch."""
        dims = _dims("mean", dim, self.ndim)
        return self._reduce("mean", dim, keepdim, count=int(np.prod([self.shape[d] for d in dims])))

    def _reduce(self, op: str, dim: int | Sequence[int] | None, keepdim: bool, count: int | None) -> Tensor:
        """Sum over ``dim``, divided by ``count`` for a mean (no clamp: an empty mean is nan)."""
        a, dims = self, _dims(op, dim, self.ndim)
        with np.errstate(all="ignore"):  # max + max = inf, 0 / 0 = nan: IEEE, no warning
            kept = a.data.sum(axis=dims, keepdims=True)  # size 1 where reduced
            if count is not None:
                kept = kept / count
        out = kept if keepdim else kept.reshape([n for i, n in enumerate(kept.shape) if i not in dims])

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            g = g.reshape(kept.shape)
            if count is not None:
                with np.errstate(all="ignore"):
                    g = g / count
            return (np.broadcast_to(g, a.shape).copy(),)

        return Tensor.from_op(op, out, (a,), vjp)

    # ---- shape ops ----------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        a = self
        target = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], Sequence) else shape
        try:
            out = a.data.reshape(target)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.data.size} elements) "
                             f"into {target}") from None
        return Tensor.from_op("reshape", out, (a,), lambda g: (g.reshape(a.shape),))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        if self.ndim == 0:
            raise ValueError("transpose: needs a tensor with at least 1 dim; got a 0-d tensor")
        d0, d1 = (_dims("transpose", d, self.ndim)[0] for d in (dim0, dim1))
        return Tensor.from_op("transpose", np.swapaxes(self.data, d0, d1), (self,),
                              lambda g: (np.swapaxes(g, d0, d1),))

    @property
    def T(self) -> Tensor:  # noqa: N802 — the name torch and NumPy use
        """All dims reversed (the usual transpose of a matrix)."""
        return Tensor.from_op("transpose", self.data.T, (self,), lambda g: (g.T,))

    def __getitem__(self, index: Any) -> Tensor:
        a = self
        index = _index(index)
        out = np.array(a.data[index])  # a copy: basic indexing would give a view

        def vjp(g: np.ndarray) -> tuple[np.ndarray]:
            ga = np.zeros_like(a.data)
            np.add.at(ga, index, g)  # unbuffered: a position read twice gets both gradients
            return (ga,)

        return Tensor.from_op("getitem", out, (a,), vjp)

    def log_softmax(self, dim: int = -1) -> Tensor:
        """``a - logsumexp(a, dim)``, computed with the max subtracted so exp cannot overflow."""
        if self.ndim == 0:  # one element: log_softmax is 0, as in torch
            return self.reshape(1).log_softmax(0).reshape(())
        (d,) = _dims("log_softmax", dim, self.ndim)
        with np.errstate(all="ignore"):  # an inf or nan in a row: nan, as torch
            shifted = self.data - self.data.max(axis=d, keepdims=True, initial=-np.inf)  # initial: empty dim
            out = shifted - np.log(np.exp(shifted).sum(axis=d, keepdims=True))
        return Tensor.from_op("log_softmax", out, (self,),
                              lambda g: (g - np.exp(out) * g.sum(axis=d, keepdims=True),))


def _index(index: Any) -> Any:
    """An index for NumPy: torch integer/bool tensors and lists become arrays; floats refused."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        raise TypeError("index must be ints, slices, or integer/bool arrays; got a (float64) Tensor — "
                        "use an integer ndarray or torch.LongTensor")
    if isinstance(index, torch.Tensor):
        index = index.cpu().numpy()
    if isinstance(index, list):
        index = np.asarray(index)
    if isinstance(index, np.ndarray) and index.dtype.kind not in "biu":
        raise TypeError(f"index arrays must hold integers or bools; got dtype {index.dtype}")
    return index
