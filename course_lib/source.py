"""Show library code in a notebook: the code shown is the code tested.

Notebooks narrate and the library implements (house style, rule 17), so a chapter prints the
library's own source instead of a copy. :func:`show_source` is the one way every notebook does
it: it unwraps ``functools.wraps`` decorators (``__wrapped__``) and Triton's ``@triton.jit``
(``.fn``), and by default drops the docstring — the notebook's prose already says what it says —
keeping signature, comments and body exactly as they are in the file.

Tests: ``tests/test_source.py``.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from course_lib._export import export


def _unwrap(obj: Any) -> Any:
    """The Python object whose source is wanted: through ``__wrapped__``, ``.fn`` and ``__func__``."""
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        if hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        elif hasattr(obj, "fn") and callable(obj.fn) and not inspect.isclass(obj):  # triton.JITFunction
            obj = obj.fn
        elif hasattr(obj, "__func__"):  # bound or class method
            obj = obj.__func__
        else:
            break
    return obj


def _docstring_lines(tree: ast.Module) -> set[int]:
    """1-based line numbers of every docstring of a function or class in ``tree``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


@export("source.source_of")
def source_of(obj: Any, docstring: bool = False) -> str:
    """The source text of a function, method, class or Triton kernel, dedented.

    Args:
        obj: what to show; decorated functions are unwrapped (``__wrapped__``, Triton's ``.fn``).
        docstring: keep docstrings (of ``obj`` and of everything defined inside it).

    Returns:
        The source as it stands in the library's file, without docstrings unless asked.

    Raises:
        TypeError: ``obj`` has no Python source (a builtin, a C extension function, a value).
    """
    target = _unwrap(obj)
    try:
        text = textwrap.dedent(inspect.getsource(target))
    except (TypeError, OSError) as err:
        raise TypeError(f"obj must be a Python function, method, class or Triton kernel; got "
                        f"{type(obj).__name__}: {err}") from err
    if docstring:
        return text
    drop = _docstring_lines(ast.parse(text))
    return "\n".join(line for i, line in enumerate(text.splitlines(), start=1) if i not in drop) + "\n"


@export("source.show_source")
def show_source(*objs: Any, docstring: bool = False) -> None:
    """Print :func:`source_of` each object, separated by a blank line (the notebooks' helper).

    Raises:
        TypeError: no object given, or one without Python source.
    """
    if not objs:
        raise TypeError("show_source needs at least one function, method, class or kernel")
    print("\n".join(source_of(obj, docstring) for obj in objs), end="")
