"""Deprecated endpoints that warn: once, and only when reached through the deprecated name.

A symbol renamed in TF 2 (``tf.log`` -> ``tf.math.log``) keeps its old name for old code, and old
code should hear about it — once, not on every call, and never when the new name is used.
TensorFlow does this in two places:

* ``TFModuleWrapper`` (``tensorflow/python/util/module_wrapper.py``) wraps each generated TF 1
  module; its ``__getattribute__``/``__getattr__`` call ``_tfmw_add_deprecation_warning(name,
  attr)``, which checks each attribute name once (``_tfmw_deprecated_checked``), warns
  ``"The name tf.log is deprecated. Please use tf.math.log instead."`` when the name is in the
  upgrade script's rename table, and stops after ``_PER_MODULE_WARNING_LIMIT = 1`` warning per
  module. The object returned is the symbol itself.
* ``deprecation.deprecated_alias`` (``tensorflow/python/util/deprecation.py``) instead returns a
  *wrapper* that logs on its first call (``warn_once=True``).

The course's version, :func:`deprecating_namespace`, is the first kind: a read-only view of the
namespace tree that, on attribute access, warns with :class:`DeprecatedEndpointWarning` the first
time each deprecated name is used, naming the canonical replacement
(:func:`~course_lib.api.canonical_name`), and returns the very same object. The deprecated names
come from :func:`~course_lib.api.deprecated_endpoints` rather than a rename table, and there is no
per-module limit (each deprecated name warns once).

Notebook: ``05_api_export`` (section "Deprecated endpoints"). Tests: ``tests/test_api_mechanics.py``.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

from course_lib._export import Version, export, registry
from course_lib.api.canonical import V1_PREFIX, canonical_name, deprecated_names
from course_lib.api.namespaces import namespace


@export("api.DeprecatedEndpointWarning")
class DeprecatedEndpointWarning(DeprecationWarning):
    """A deprecated public name was used; the message names the canonical one."""


@export("api.DeprecatingNamespace")
class DeprecatingNamespace:
    """A view of a ``SimpleNamespace`` tree that warns once per deprecated dotted name.

    Attributes are read from the wrapped tree; sub-namespaces come back wrapped, leaves come back
    as themselves. Built by :func:`deprecating_namespace`.
    """

    __slots__ = ("_api", "_deprecated", "_node", "_path", "_warned")

    def __init__(self, node: SimpleNamespace, api: str, path: str, deprecated: dict[str, str],
                 warned: set[str]) -> None:
        self._node = node
        self._api = api
        self._path = path  # dotted path of this node from the root ("" at the root)
        self._deprecated = deprecated  # {deprecated dotted name: canonical replacement}
        self._warned = warned  # shared by the whole tree: names that already warned

    def __getattr__(self, part: str) -> Any:
        child = getattr(self._node, part)  # AttributeError for a missing name, as a module would
        full = f"{self._path}.{part}" if self._path else part
        if isinstance(child, SimpleNamespace):
            return DeprecatingNamespace(child, self._api, full, self._deprecated, self._warned)
        if full in self._deprecated and full not in self._warned:
            self._warned.add(full)
            warnings.warn(f"the name {self._api}.{full} is deprecated; use {self._api}.{self._deprecated[full]} "
                          "instead", DeprecatedEndpointWarning, stacklevel=2)
        return child

    def __dir__(self) -> list[str]:
        return sorted(vars(self._node))

    def __repr__(self) -> str:
        return f"DeprecatingNamespace({self._api}{'.' + self._path if self._path else ''})"


@export("api.deprecating_namespace")
def deprecating_namespace(api_name: str = "course_lib", version: Version = "v2",
                          compat: bool = True) -> DeprecatingNamespace:
    """The namespace tree of ``api_name`` (:func:`~course_lib.api.namespace`), warning on deprecated names.

    A name warns when its object lists it in :func:`~course_lib.api.deprecated_endpoints`; under
    ``compat.v1`` the v1 names are checked (so ``compat.v1.log`` warns and ``compat.v1.math.log``
    does not). The replacement named is :func:`~course_lib.api.canonical_name` (with the
    ``compat.v1.`` prefix when the symbol has only v1 names).

    Args:
        api_name: the API whose registry to read.
        version: the root's names, ``"v2"`` or ``"v1"``.
        compat: attach ``compat.v1`` / ``compat.v2`` as :func:`~course_lib.api.namespace` does.

    Raises:
        ValueError: as :func:`~course_lib.api.namespace`.
    """
    tree = namespace(api_name, version, compat=compat)
    deprecated: dict[str, str] = {}

    def mark(version_: Version, prefix: str) -> None:
        for name, obj in registry(api_name, version_).items():
            if name in deprecated_names(obj, api_name):
                deprecated[prefix + name] = canonical_name(obj, api_name, add_prefix_to_v1_names=True) or name

    mark(version, "")
    if compat:
        mark("v1", V1_PREFIX)
        mark("v2", "compat.v2.")
    return DeprecatingNamespace(tree, api_name, "", deprecated, set())
