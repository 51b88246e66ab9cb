"""How a framework exports its public API with a decorator — and how ``course_lib`` does.

Modelled on TensorFlow's ``tf_export`` (``tensorflow/python/util/tf_export.py``): a decorator
that *records* the public names of a symbol and returns **the very same object**, so an
exported function costs nothing extra per call (no wrapper, unlike ``functools.wraps``)::

    export = functools.partial(api_export, api_name="course_lib")

    @export("attention.flash_attention")
    def flash_attention(q, k, v): ...

    assert flash_attention is course_lib.attention.flash_attention   # tests/test_api.py

The parts, bottom-up:

* :mod:`course_lib._export` — :class:`api_export`, the registry (:func:`registry`,
  :func:`exported_names`, :func:`resolve`, :func:`clear`) and :class:`DuplicateExportError`;
  an optional ``v1=`` list of names models ``tf.compat.v1``. It lives in the library's core,
  beside ``_checks``, because every chapter exports through it (as TensorFlow keeps
  ``tf_export`` in ``tensorflow/python/util``); this chapter re-exports and teaches it.
* :mod:`~course_lib.api.namespaces` — :func:`tree` / :func:`namespace`: the flat registry as an
  attribute tree (``tf.math.add``, ``tf.compat.v1.add``).
* :mod:`~course_lib.api.wrapping` — the ``functools.wraps`` alternative and
  :func:`call_overhead`, which measures what a wrapper costs per call.
* :mod:`~course_lib.api.unwrapping` — :func:`unwrap` (the ``__wrapped__`` chain of stacked
  decorators) and :func:`declared_names` (export names found through it).
* :mod:`~course_lib.api.canonical` — :func:`deprecated_endpoints`, :func:`canonical_name`
  (TensorFlow's ``get_canonical_name_for_symbol`` rule), :func:`name_to_symbol` and
  :func:`symbol_from_name` (``_NAME_TO_SYMBOL_MAPPING`` / ``get_symbol_from_name``).
* :mod:`~course_lib.api.deprecation` — :func:`deprecating_namespace`: deprecated names warn
  once, and only when used.
* :mod:`~course_lib.api.generator` — :func:`generate_api` / :func:`write_api` /
  :func:`check_api`: the ``__init__.py`` files TensorFlow's ``create_python_api.py`` would write.
* :mod:`~course_lib.api.export_view` — :func:`export_state` / :func:`export_view` /
  :func:`export_widget`: edit an export's names and see trees, collisions and attributes.
* :mod:`~course_lib.api.exercises` — the chapter's exercises.

Differences from TensorFlow: the course's own package is written by hand, not generated — the
names are checked at test time instead (every name resolves to its object, and
:func:`generate_api` rebuilds the package from the registry in the notebook and the tests);
re-exporting an object merges its names.
Limitation: the registry is filled by imports, so it is complete only after every chapter's
module is imported (``course_lib.__main__.load_all_chapters``).

Notebook: ``05_api_export``. Tests: ``tests/test_api.py``, ``tests/test_api_mechanics.py``,
``tests/test_api_export_view.py``.
"""

from __future__ import annotations

from course_lib._export import (
    VERSIONS,
    DuplicateExportError,
    Version,
    api_export,
    clear,
    export,
    exported_names,
    registry,
    resolve,
)
from course_lib.api.canonical import (
    canonical_name,
    deprecated_endpoints,
    deprecated_names,
    name_to_symbol,
    symbol_from_name,
)
from course_lib.api.deprecation import DeprecatedEndpointWarning, DeprecatingNamespace, deprecating_namespace
from course_lib.api.export_view import ExportState, export_state, export_view, export_widget
from course_lib.api.generator import SymbolExposedTwiceError, check_api, generate_api, write_api
from course_lib.api.namespaces import namespace, tree
from course_lib.api.unwrapping import declared_names, unwrap
from course_lib.api.wrapping import CallOverhead, call_overhead, wrapping_register

export("api.api_export")(api_export)
export("api.export")(export)
export("api.registry")(registry)
export("api.exported_names")(exported_names)
export("api.resolve")(resolve)
export("api.clear")(clear)
export("api.DuplicateExportError")(DuplicateExportError)

__all__ = [
    "VERSIONS",
    "CallOverhead",
    "DeprecatedEndpointWarning",
    "DeprecatingNamespace",
    "DuplicateExportError",
    "ExportState",
    "SymbolExposedTwiceError",
    "Version",
    "api_export",
    "call_overhead",
    "canonical_name",
    "check_api",
    "clear",
    "declared_names",
    "deprecated_endpoints",
    "deprecated_names",
    "deprecating_namespace",
    "export",
    "export_state",
    "export_view",
    "export_widget",
    "exported_names",
    "generate_api",
    "name_to_symbol",
    "namespace",
    "registry",
    "resolve",
    "symbol_from_name",
    "tree",
    "unwrap",
    "wrapping_register",
    "write_api",
]
