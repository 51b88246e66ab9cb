"""The export decorator and its registry: record public names, return the very same object.

The library's core, beside :mod:`course_lib._checks`: every chapter exports its public names
through :data:`export`, so nothing here may depend on a chapter. Chapter 5 (:mod:`course_lib.api`)
re-exports and teaches it.

Modelled on TensorFlow's ``tf_export`` (``tensorflow/python/util/tf_export.py``). Applying
``api_export("ops.nms", api_name="course_lib")`` to a function or class

1. checks that every name is a dotted public identifier and not taken by another object,
2. writes the names onto the object itself, in ``obj.__dict__["_<api_name>_api_names"]``
   (``__dict__``, read back with ``vars()``, so a subclass does not inherit its parent's names),
3. records ``{public name: object}`` in a module-level registry, one table per API, and
4. returns ``obj`` unchanged — no wrapper, so an exported function costs nothing per call.

TensorFlow binds the decorator once per API with ``functools.partial``::

    tf_export = functools.partial(api_export, api_name="tensorflow")
    export = functools.partial(api_export, api_name="course_lib")   # ours

and one annotation serves two API versions: ``tf_export("math.add", v1=["math.add", "add"])``
puts the symbol in ``tf.math.add`` and in ``tf.compat.v1.math.add`` / ``tf.compat.v1.add``;
without ``v1=`` the v1 names default to the v2 names, as in TensorFlow. TensorFlow then
*generates* ``__init__.py`` files from the registry; here :func:`course_lib.api.namespace`
builds the same tree as ``types.SimpleNamespace`` objects, and ``tests/test_api.py`` checks that
every ``course_lib`` name resolves to its object through ordinary imports.

Differences from TensorFlow: exporting one object twice merges its names (TensorFlow raises
``SymbolAlreadyExposedError``); names starting with ``_`` and Python keywords are refused.

Notebook: ``05_api_export``. Tests: ``tests/test_api.py``.
"""

from __future__ import annotations

import functools
import importlib
import keyword
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Version = Literal["v2", "v1"]  # "v2": the main API (tf.*); "v1": the compat API (tf.compat.v1.*)
VERSIONS: tuple[Version, ...] = ("v2", "v1")
PROTECTED_APIS = ("course_lib",)  # registries :func:`clear` refuses to empty

# {(api_name, version): {public name: object}}
_REGISTRY: dict[tuple[str, Version], dict[str, Any]] = {}


class DuplicateExportError(ValueError):
    """Two different objects were exported under the same public name."""


def _check_names(argument: str, names: Sequence[str]) -> tuple[str, ...]:
    """Validate public names: dotted identifiers, no keywords, no private parts."""
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{argument} must be strings like 'ops.nms'; got {type(name).__name__}: {name!r}")
        parts = name.split(".")
        bad = [p for p in parts if not p.isidentifier() or keyword.iskeyword(p) or p.startswith("_")]
        if bad:
            raise ValueError(
                f"{argument} must be dotted public identifiers like 'ops.nms' (no keywords, no "
                f"leading '_'); got {name!r} (bad part {bad[0]!r})"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{argument} lists a name twice; got {tuple(names)!r}")
    return tuple(names)


def _attribute(api_name: str, version: Version) -> str:
    """Where the names live on an exported object (TensorFlow: ``_tf_api_names[_v1]``)."""
    return f"_{api_name}_api_names" + ("_v1" if version == "v1" else "")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class api_export:  # noqa: N801 — lower case, as a decorator is spelled at its use site
    """Decorator that records public names for a symbol and returns the symbol unchanged.

    Args:
        *names: the public names, dotted, relative to the API root (``"attention.flash_attention"``).
        api_name: which API the names belong to (``"course_lib"``).
        v1: names in the compat API (``<api>.compat.v1``); defaults to ``names``, as in TensorFlow.
            Pass ``()`` to keep a symbol out of v1.

    Raises:
        ValueError: no names, a name that is not a dotted public identifier, or a bad ``api_name``.
        TypeError: a name that is not a string.
        DuplicateExportError: (when applied) a name already exported for a different object.

    Example:
        >>> import functools
        >>> export = functools.partial(api_export, api_name="demo")
        >>> @export("maths.double")
        ... def double(x): return 2 * x
        >>> registry("demo")["maths.double"] is double
        True
    """

    def __init__(self, *names: str, api_name: str, v1: Sequence[str] | None = None) -> None:
        if not names:
            raise ValueError("api_export needs at least one public name; got none")
        if not isinstance(api_name, str) or not api_name.isidentifier():
            raise ValueError(f"api_name must be an identifier like 'course_lib'; got {api_name!r}")
        if isinstance(v1, str):
            raise TypeError(f"v1 must be a list of names, not one string; got {v1!r} (write v1=[{v1!r}])")
        self.names = _check_names("names", names)
        self.v1_names = self.names if v1 is None else _check_names("v1", tuple(v1))
        self.api_name = api_name

    @property
    def attribute(self) -> str:
        """The attribute that holds the (v2) names on an exported object."""
        return _attribute(self.api_name, "v2")

    def __call__(self, obj: T) -> T:
        wanted: dict[Version, tuple[str, ...]] = {"v2": self.names, "v1": self.v1_names}
        # Check everything before changing anything, so a refused export leaves no trace.
        for version, names in wanted.items():
            table = _REGISTRY.get((self.api_name, version), {})
            for name in names:
                if name in table and table[name] is not obj:
                    where = self.api_name if version == "v2" else f"{self.api_name}.compat.v1"
                    raise DuplicateExportError(
                        f"{where}.{name} is already exported for {_qualname(table[name])}; "
                        f"cannot export {_qualname(obj)} under the same name"
                    )
        for version, names in wanted.items():
            attr = _attribute(self.api_name, version)
            own = vars(obj).get(attr, ()) if hasattr(obj, "__dict__") else ()
            try:
                setattr(obj, attr, own + tuple(n for n in names if n not in own))
            except (AttributeError, TypeError) as err:
                raise TypeError(f"cannot export {obj!r}: it does not accept attributes") from err
        for version, names in wanted.items():
            table = _REGISTRY.setdefault((self.api_name, version), {})
            for name in names:
                table[name] = obj
        return obj


def exported_names(obj: Any, api_name: str = "course_lib", version: Version = "v2") -> tuple[str, ...]:
    """The public names ``obj`` itself was exported under (not inherited from a parent class)."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}; got {version!r}")
    return vars(obj).get(_attribute(api_name, version), ()) if hasattr(obj, "__dict__") else ()


def registry(api_name: str = "course_lib", version: Version = "v2") -> dict[str, Any]:
    """A copy of ``{public name: object}`` for ``api_name`` (and ``version``), sorted by name."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}; got {version!r}")
    return dict(sorted(_REGISTRY.get((api_name, version), {}).items()))


def clear(api_name: str) -> None:
    """Forget every export of a throw-away API (a notebook's toy API re-run from the top).

    The names stay on the objects; only the registry tables are emptied.

    Raises:
        ValueError: ``api_name`` is the course's own API, which must stay complete.
    """
    if api_name in PROTECTED_APIS:
        raise ValueError(f"the {api_name!r} registry cannot be cleared; use a toy api_name")
    for version in VERSIONS:
        _REGISTRY.pop((api_name, version), None)


def resolve(name: str, api_name: str = "course_lib") -> Any:
    """Look up ``api_name.<name>`` the way a user's code would reach it, and return the object.

    ``resolve("attention.flash_attention")`` is ``course_lib.attention.flash_attention``. Each
    part is an attribute of the one before; a part that is not (yet) an attribute of a module is
    imported as its submodule first — exactly what ``import course_lib.attention`` followed by
    attribute access does. So a function re-exported by a package wins over a same-named submodule.

    Raises:
        TypeError: ``name`` or ``api_name`` is not a non-empty string.
        LookupError: a part is neither an attribute nor an importable submodule.
    """
    for argument, value in (("name", name), ("api_name", api_name)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{argument} must be a non-empty dotted name like 'ops.nms'; got {value!r}")
    path = api_name
    try:
        obj: Any = importlib.import_module(api_name)
    except ModuleNotFoundError as err:
        raise LookupError(f"{api_name}.{name} does not resolve: {err}") from err
    for part in name.split("."):
        path = f"{path}.{part}"
        if isinstance(obj, ModuleType) and not hasattr(obj, part):
            try:
                importlib.import_module(path)
            except ModuleNotFoundError as err:
                if err.name is None or not path.startswith(err.name):
                    # A dependency missing inside an existing module: a real error, not a bad name.
                    raise LookupError(f"{api_name}.{name} does not resolve: {err}") from err
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise LookupError(f"{api_name}.{name} does not resolve: {path} does not exist") from err
    return obj


export: Callable[..., api_export] = functools.partial(api_export, api_name="course_lib")
export.__doc__ = """``api_export`` bound to the ``course_lib`` API: ``@export("module.name")`` records the name."""
