"""Canonical names, deprecated endpoints and the name -> symbol table.

One symbol often has several public names (``tf.math.log``, ``tf.log``, ``tf.compat.v1.log``).
Docs, error messages and the upgrade script need **one** of them, the *canonical name*.
TensorFlow's rule (``tensorflow/python/util/tf_export.py``, ``get_canonical_name_for_symbol``
and ``get_canonical_name``)::

    target = tf_decorator.unwrap(symbol)[1]            # names live on the innermost target
    v2 = target._tf_api_names; deprecated = target._tf_deprecated_api_names (or [])
    first v2 name not in deprecated  ->  else the first v2 name  ->  else (no v2 names at all)
    the same rule on target._tf_api_names_v1, prefixed "compat.v1." when add_prefix_to_v1_names

Deprecated names are declared by ``deprecation.deprecated_endpoints(*names)``
(``tensorflow/python/util/deprecation.py``), which only sets ``_tf_deprecated_api_names`` on the
function (its docstring: "This decorator does not print deprecation messages") and raises
``DeprecatedNamesAlreadySet`` when they are set twice.

The reverse direction, name -> symbol: ``api_export.__call__`` fills one module-level dict,
``_NAME_TO_SYMBOL_MAPPING[name] = func`` for each v2 name and
``_NAME_TO_SYMBOL_MAPPING['compat.v1.%s' % name_v1] = func`` for each v1 name, read back by
``get_symbol_from_name(name)`` (``.get``, so ``None`` when missing). A second symbol exported
under a name already in that dict simply replaces the first there (plain dict assignment); two
symbols under one name are refused later, by the API generator (``SymbolExposedTwiceError``,
see :mod:`course_lib.api.generator`). The course's registry refuses them at decoration time
instead (:class:`~course_lib.api.DuplicateExportError`).

The course's versions: :func:`deprecated_endpoints`, :func:`canonical_name`,
:func:`name_to_symbol` and :func:`symbol_from_name`. Differences: the attributes are named per
API (``_<api>_deprecated_api_names``) as the course's names are; names are read along the
``__wrapped__`` chain (:func:`~course_lib.api.declared_names`); with ``add_prefix_to_v1_names``
and no names at all, TensorFlow returns the string ``'compat.v1.None'``, this returns ``None``.

Notebook: ``05_api_export`` (section "Canonical names"). Tests: ``tests/test_api_mechanics.py``.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any, TypeVar

from course_lib._export import export, registry
from course_lib.api.unwrapping import declared_names, unwrap

T = TypeVar("T")
V1_PREFIX = "compat.v1."  # how a v1 name is spelled in the one name -> symbol table


def _deprecated_attribute(api_name: str) -> str:
    """TensorFlow: ``_tf_deprecated_api_names``; here one attribute per API."""
    return f"_{api_name}_deprecated_api_names"


@export("api.deprecated_endpoints")
def deprecated_endpoints(*names: str, api_name: str = "course_lib") -> Callable[[T], T]:
    """Decorator that marks some of a symbol's public names as deprecated; returns the symbol itself.

    Like TensorFlow's ``deprecation.deprecated_endpoints``, it only records the names (in the
    object's own ``__dict__``); :func:`canonical_name` then skips them, and
    :func:`course_lib.api.deprecating_namespace` warns when one is used.

    Args:
        *names: deprecated public names, dotted, as given to ``export`` (v2 or v1 names).
        api_name: the API they belong to.

    Raises:
        ValueError: no names, or a name that is not a dotted identifier; (when applied) the
            object already has deprecated names (TensorFlow: ``DeprecatedNamesAlreadySet``).
        TypeError: a name that is not a string.
    """
    if not names:
        raise ValueError("deprecated_endpoints needs at least one name; got none")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"deprecated_endpoints names must be strings like 'log'; got {name!r}")
        if not all(p.isidentifier() and not keyword.iskeyword(p) for p in name.split(".")):
            raise ValueError(f"deprecated_endpoints names must be dotted identifiers like 'math.log'; got {name!r}")
    attribute = _deprecated_attribute(api_name)

    def mark(obj: T) -> T:
        already = vars(obj).get(attribute) if hasattr(obj, "__dict__") else None
        if already is not None:
            raise ValueError(f"cannot set deprecated names of {obj!r:.60} to {names}; they are already {already}")
        setattr(obj, attribute, tuple(names))
        return obj

    return mark


@export("api.deprecated_names")
def deprecated_names(obj: Any, api_name: str = "course_lib") -> tuple[str, ...]:
    """The names :func:`deprecated_endpoints` recorded on ``obj`` or along its ``__wrapped__`` chain."""
    wrappers, target = unwrap(obj)
    for candidate in (*wrappers, target):
        names = vars(candidate).get(_deprecated_attribute(api_name)) if hasattr(candidate, "__dict__") else None
        if names:
            return tuple(names)
    return ()


def _first_preferred(names: tuple[str, ...], deprecated: tuple[str, ...]) -> str | None:
    """TensorFlow's ``get_canonical_name``: first non-deprecated name, else the first, else None."""
    return next((n for n in names if n not in deprecated), names[0] if names else None)


@export("api.canonical_name")
def canonical_name(obj: Any, api_name: str = "course_lib", add_prefix_to_v1_names: bool = False) -> str | None:
    """The one public name to show for ``obj``, by TensorFlow's ``get_canonical_name_for_symbol`` rule.

    Args:
        obj: an exported object (or a wrapper of one).
        api_name: the API whose names to read.
        add_prefix_to_v1_names: when only v1 names exist, return ``"compat.v1.<name>"``.

    Returns:
        The first non-deprecated v2 name; else the first v2 name (all deprecated); else the same
        choice among the v1 names; ``None`` when ``obj`` has no names in ``api_name``.
    """
    deprecated = deprecated_names(obj, api_name)
    v2 = _first_preferred(declared_names(obj, api_name, "v2"), deprecated)
    if v2 is not None:
        return v2
    v1 = _first_preferred(declared_names(obj, api_name, "v1"), deprecated)
    if v1 is None:
        return None
    return V1_PREFIX + v1 if add_prefix_to_v1_names else v1


@export("api.name_to_symbol")
def name_to_symbol(api_name: str = "course_lib") -> dict[str, Any]:
    """TensorFlow's ``_NAME_TO_SYMBOL_MAPPING`` for ``api_name``: v2 names, then ``compat.v1.``-prefixed v1 names.

    Built from the course's registry, which has refused every duplicate already, so no entry
    was overwritten (in TensorFlow's dict a later export would have replaced an earlier one).
    """
    table = dict(registry(api_name, "v2"))
    table.update({V1_PREFIX + name: obj for name, obj in registry(api_name, "v1").items()})
    return table


@export("api.symbol_from_name")
def symbol_from_name(name: str, api_name: str = "course_lib") -> Any:
    """TensorFlow's ``get_symbol_from_name``: the object exported as ``name``, or ``None``.

    ``name`` is relative to the API root; v1 names are spelled ``"compat.v1.<name>"``.

    Raises:
        TypeError: ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a dotted string like 'math.add' or 'compat.v1.add'; got {name!r}")
    return name_to_symbol(api_name).get(name)
