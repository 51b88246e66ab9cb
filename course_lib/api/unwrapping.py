"""Seeing through stacked decorators: the ``__wrapped__`` chain, and where export names live.

A wrapper made with ``functools.wraps(f)`` (``functools.update_wrapper``) gets
``wrapper.__wrapped__ = f``, and its ``__dict__`` is *updated* with a copy of ``f.__dict__``
(``functools.WRAPPER_UPDATES``). Stack three decorators and the public name holds the outermost
wrapper; the function that was written is three ``__wrapped__`` hops away::

    unwrap(outer) == ((outer, middle, inner_wrapper), f)     # wrappers outermost first, then f

TensorFlow's ``tf_export`` stores its names on the **innermost** target: ``api_export.__call__``
runs ``_, undecorated_func = tf_decorator.unwrap(func)`` and sets ``_tf_api_names`` on
``undecorated_func``, then returns ``func`` unchanged (``tensorflow/python/util/tf_export.py``,
``api_export.__call__``). The API generator unwraps every module attribute the same way before it
reads the names (``create_python_api.py``, ``get_api_init_text``:
``_, attr = tf_decorator.unwrap(attr)``), and ``get_canonical_name_for_symbol`` does too. So the
names are found however many decorators are stacked, in whichever order.

Difference from TensorFlow: ``tf_decorator.unwrap`` follows TensorFlow's own ``_tf_decorator``
attribute (a ``TFDecorator`` with ``decorated_target``), which ``tf_decorator.make_decorator``
sets together with ``__wrapped__`` (``tensorflow/python/util/tf_decorator.py``, ``unwrap`` and
``make_decorator``); a plain ``functools.wraps`` wrapper is opaque to it. :func:`unwrap` here
follows ``__wrapped__``, as :func:`inspect.unwrap` does, so it sees through any well-behaved
decorator. The course's :class:`~course_lib.api.api_export` stores names on the object it is
given; :func:`declared_names` therefore reads the first object along the chain that has names
of its own.

Notebook: ``05_api_export`` (section "Stacked decorators"). Tests: ``tests/test_api_mechanics.py``.
"""

from __future__ import annotations

from typing import Any

from course_lib._export import Version, export, exported_names

MAX_DEPTH = 100  # a longer __wrapped__ chain is treated as a cycle (inspect.unwrap uses sys.getrecursionlimit())


@export("api.unwrap")
def unwrap(obj: Any) -> tuple[tuple[Any, ...], Any]:
    """Follow ``__wrapped__`` from ``obj`` to the object that was originally decorated.

    Args:
        obj: any object; a function made by ``functools.wraps`` has ``__wrapped__``.

    Returns:
        ``(wrappers, target)``: every wrapper passed through, outermost first, and the innermost
        object (``obj`` itself and ``()`` when nothing wraps it) — the shape of
        ``tf_decorator.unwrap``'s ``(decorators, target)``.

    Raises:
        ValueError: the chain is a cycle (or longer than :data:`MAX_DEPTH`).

    Example:
        >>> import functools
        >>> def f(): pass
        >>> g = functools.wraps(f)(lambda: f())
        >>> unwrap(g) == ((g,), f)
        True
    """
    wrappers: list[Any] = []
    seen: set[int] = set()
    current = obj
    while hasattr(current, "__wrapped__"):
        if id(current) in seen or len(wrappers) >= MAX_DEPTH:
            raise ValueError(f"the __wrapped__ chain of {obj!r:.60} is a cycle or deeper than {MAX_DEPTH}")
        seen.add(id(current))
        wrappers.append(current)
        current = current.__wrapped__
    return tuple(wrappers), current


@export("api.declared_names")
def declared_names(obj: Any, api_name: str = "course_lib", version: Version = "v2") -> tuple[str, ...]:
    """The export names of ``obj`` or of the first object along its ``__wrapped__`` chain that has some.

    ``@export`` above other decorators leaves its names on the outermost wrapper; ``@export``
    below them leaves them on the function, and ``functools.wraps`` copies them onto each wrapper
    it builds afterwards. Reading along the chain finds them in every order (TensorFlow avoids the
    question by always writing to, and reading from, the innermost target).

    Raises:
        ValueError: an unknown ``version``, or a cyclic ``__wrapped__`` chain.
    """
    wrappers, target = unwrap(obj)
    for candidate in (*wrappers, target):
        names = exported_names(candidate, api_name, version)
        if names:
            return names
    return ()
