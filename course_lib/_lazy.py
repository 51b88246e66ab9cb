"""Lazy re-exports for a chapter package (PEP 562): heavy parts load on first use.

A chapter's ``__init__`` imports its modules eagerly and lists those that need an optional
package — the Triton kernel modules — for :func:`lazy_exports`. ``import course_lib.attention``
then works without Triton; ``from course_lib.attention import flash_attention_triton`` loads the
kernels at that moment, and the name is cached on the package so later look-ups are plain
attribute reads. (Widget modules are imported eagerly but import matplotlib and ipywidgets
inside their drawing and widget functions; a lazy name must not equal its module's name, or the
submodule attribute set by ``import`` would shadow it.)

This is how torchvision keeps ``torchvision.ops`` importable when its compiled ops are missing, and
what ``scipy``'s subpackages do with ``__getattr__``. Tests: ``tests/test_runtime.py``
(``import course_lib.<chapter>`` imports no matplotlib, ipywidgets or triton).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, modules: Mapping[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair that loads ``package.<module>.<name>`` on first access.

    Args:
        package: the package's ``__name__``.
        modules: ``{submodule: (name, ...)}``, the names each submodule provides.

    Returns:
        Functions to assign to the package's module-level ``__getattr__`` and ``__dir__``.

    Raises:
        ValueError: a name is listed under two submodules.
    """
    where: dict[str, str] = {}
    for module, names in modules.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is listed under {where[name]!r} and {module!r}")
            where[name] = module

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)  # cached: the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
