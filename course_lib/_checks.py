"""Argument checks shared by every chapter, at the public boundary of each function.

Each check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind, wrong
value) with a message that names the argument, says what was expected and what arrived —
``q must have 4 dims (B, H, T, D); got shape (2, 16, 64)`` — so a learner never has to decode a
traceback from deep inside torch. ``assert`` is kept for internal invariants only: it vanishes
under ``python -O``.

Shape specs are strings of dimension names: ``"B H T D"``. Passing the same ``dims`` dict to
several calls checks that dimensions with the same name agree across arguments:

>>> dims: dict[str, int] = {}
>>> shape("q", torch.zeros(2, 3, 5, 8), "B H T D", dims)  # doctest: +SKIP
>>> shape("k", torch.zeros(2, 3, 7, 4), "B H S D", dims)  # doctest: +SKIP
ValueError: k has D=4 (dim 3) but q has D=8; they must agree

Tests: ``tests/test_checks.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection, Iterable
from typing import Any

import torch


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def instance(name: str, value: Any, types: type | tuple[type, ...]) -> Any:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types``; return it."""
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise TypeError(f"{name} must be {wanted}; got {type(value).__name__}: {_describe(value)}")
    return value


def tensor(
    name: str,
    value: Any,
    *,
    ndim: int | Collection[int] | None = None,
    dtypes: Collection[torch.dtype] | None = None,
    floating: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with an allowed number of dims and dtype; return it.

    Args:
        name: the argument's name, for the message.
        value: what the caller passed.
        ndim: the number of dims required (an int, or a collection of allowed ints).
        dtypes: the dtypes allowed.
        floating: require a floating-point dtype.

    Raises:
        TypeError: not a tensor, or a dtype outside ``dtypes`` / not floating.
        ValueError: the wrong number of dims.
    """
    instance(name, value, torch.Tensor)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name} must have {want} dims; got shape {tuple(value.shape)}")
    if dtypes is not None and value.dtype not in dtypes:
        want = ", ".join(str(d) for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({want}); got {value.dtype}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {value.dtype}")
    return value


def shape(name: str, value: torch.Tensor, spec: str, dims: dict[str, int] | None = None) -> dict[str, int]:
    """Check ``value``'s shape against a spec such as ``"B H T D"``; return the named sizes.

    A name may be an integer literal (``"B 3 H W"``) to require that exact size. Sizes bound in
    ``dims`` by earlier calls must agree, which checks consistency across arguments.

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: wrong number of dims, a wrong literal size, or a size that disagrees with
            the one bound earlier under the same name.
    """
    instance(name, value, torch.Tensor)
    names = spec.split()
    if value.dim() != len(names):
        raise ValueError(
            f"{name} must have {len(names)} dims ({', '.join(names)}); got shape {tuple(value.shape)}"
        )
    bound = {} if dims is None else dims
    for axis, (dim_name, size) in enumerate(zip(names, value.shape)):
        if dim_name.isdigit():
            if size != int(dim_name):
                raise ValueError(f"{name} must have size {dim_name} in dim {axis}; got shape {tuple(value.shape)}")
        elif dim_name in bound and bound[dim_name] != size:
            raise ValueError(
                f"{name} has {dim_name}={size} (dim {axis}) but an earlier argument has "
                f"{dim_name}={bound[dim_name]}; they must agree"
            )
        else:
            bound[dim_name] = int(size)
    return bound


def same_device(**tensors: torch.Tensor) -> torch.device:
    """Raise ``ValueError`` unless all the named tensors live on one device; return it."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"{', '.join(devices)} must be on the same device; got {listing}")
    return next(iter(devices.values()))


def same_dtype(**tensors: torch.Tensor) -> torch.dtype:
    """Raise ``TypeError`` unless all the named tensors share one dtype; return it."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise TypeError(f"{', '.join(dtypes)} must have the same dtype; got {listing}")
    return next(iter(dtypes.values()))


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``; return it."""
    options = list(allowed)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check an integer argument (``bool`` is refused) and its bounds; return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}: {_describe(value)}")
    number = int(value)
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an int in [{lo}, {hi}]; got {value}")
    return number


def real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_min: bool = False,
) -> float:
    """Check a finite real number and its bounds (``open_min`` excludes the lower bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}: {_describe(value)}")
    v = float(value)
    too_low = minimum is not None and (v <= minimum if open_min else v < minimum)
    if v != v or too_low or (maximum is not None and v > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be a number in {'(' if open_min else '['}{lo}, {hi}]; got {value}")
    return v
