"""How a framework exports its public API with a decorator — and how ``course_lib`` does.

Modelled on TensorFlow's ``tf_export`` (``tensorflow/python/util/tf_export.py``): a decorator
that *records* the public names of a symbol and returns **the very same object**, so an
exported function costs nothing extra per call (no wrapper, unlike ``functools.wraps``). The
names are kept in two places:

* on the object itself, in ``obj.__dict__["_<api_name>_api_names"]`` (``__dict__``, not
  ``getattr``, so a subclass does not inherit its parent's names), and
* in a registry ``{api_name: {public name: object}}`` from which a namespace or a table of the
  public API is built.

TensorFlow binds the decorator per API with ``functools.partial`` — ``tf_export =
functools.partial(api_export, api_name="tensorflow")`` — and the same mechanism produces both
``tf.*`` and ``tf.compat.v1.*`` from one annotation. Here::

    export = functools.partial(api_export, api_name="course_lib")

    @export("attention.flash_attention")
    def flash_attention(q, k, v): ...

Differences from TensorFlow: no v1/v2 split and no generated ``__init__`` files; the public
names are checked at test time instead (``tests/test_api.py``: every name resolves to its
object). Notebook: ``05_api_export``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_REGISTRY: dict[str, dict[str, Any]] = {}


class DuplicateExportError(ValueError):
    """Two different objects were exported under the same public name."""


class api_export:  # noqa: N801 — lower case, as a decorator is spelled at its use site
    """Decorator that records public names for a symbol and returns the symbol unchanged.

    Args:
        *names: the public names, dotted, relative to the API root (``"attention.flash_attention"``).
        api_name: which API the names belong to (``"course_lib"``).

    Raises:
        ValueError: no names, or a name that is not a dotted identifier.
        DuplicateExportError: a name already exported for a different object.
        TypeError: the decorated object cannot carry attributes (e.g. a builtin).
    """

    def __init__(self, *names: str, api_name: str) -> None:
        if not names:
            raise ValueError("api_export needs at least one public name; got none")
        for name in names:
            if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"public names must be dotted identifiers like 'ops.nms'; got {name!r}")
        if not isinstance(api_name, str) or not api_name.isidentifier():
            raise ValueError(f"api_name must be an identifier like 'course_lib'; got {api_name!r}")
        self.names = names
        self.api_name = api_name

    @property
    def attribute(self) -> str:
        """The attribute that holds the names on an exported object."""
        return f"_{self.api_name}_api_names"

    def __call__(self, obj: T) -> T:
        registry = _REGISTRY.setdefault(self.api_name, {})
        for name in self.names:
            if name in registry and registry[name] is not obj:
                raise DuplicateExportError(
                    f"{self.api_name}.{name} is already exported for {_qualname(registry[name])}; "
                    f"cannot export {_qualname(obj)} under the same name"
                )
        try:
            setattr(obj, self.attribute, tuple(self.names))
        except (AttributeError, TypeError) as err:
            raise TypeError(f"cannot export {obj!r}: it does not accept attributes") from err
        for name in self.names:
            registry[name] = obj
        return obj


export: Callable[..., api_export] = functools.partial(api_export, api_name="course_lib")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def exported_names(obj: Any, api_name: str = "course_lib") -> tuple[str, ...]:
    """The public names ``obj`` itself was exported under (not inherited from a parent class)."""
    return vars(obj).get(f"_{api_name}_api_names", ()) if hasattr(obj, "__dict__") else ()


def registry(api_name: str = "course_lib") -> dict[str, Any]:
    """A copy of ``{public name: object}`` for ``api_name``, sorted by name."""
    return dict(sorted(_REGISTRY.get(api_name, {}).items()))


def resolve(name: str, api_name: str = "course_lib") -> Any:
    """Import ``api_name.<name>`` the way a user would write it and return the object.

    ``resolve("attention.flash_attention")`` is ``course_lib.attention.flash_attention``.

    Raises:
        LookupError: the module or attribute does not exist.
    """
    module_path, _, attr = f"{api_name}.{name}".rpartition(".")
    try:
        return getattr(importlib.import_module(module_path), attr)
    except (ImportError, AttributeError) as err:
        raise LookupError(f"{api_name}.{name} does not resolve: {err}") from err
