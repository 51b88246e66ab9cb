"""course_lib.source: the source a notebook shows is the library's, docstrings dropped on request."""

import functools
import inspect

import pytest

from course_lib.source import show_source, source_of


def _decorate(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@_decorate
def documented(x: int) -> int:
    """A docstring
    over two lines."""
    def inner():
        """inner doc"""
        return '"""not a docstring"""'

    return x + len(inner())  # the body stays


class Thing:
    """Class doc."""

    def method(self) -> int:
        """Method doc."""
        return 1


def test_unwraps_decorators_and_drops_every_docstring():
    text = source_of(documented)
    assert text.startswith("@_decorate\ndef documented(x: int) -> int:")
    assert "A docstring" not in text and "over two lines" not in text and "inner doc" not in text
    assert "'\"\"\"not a docstring\"\"\"'" in text and "# the body stays" in text
    assert source_of(documented, docstring=True) == inspect.getsource(documented.__wrapped__)


def test_methods_and_classes_dedented():
    assert source_of(Thing().method) == "def method(self) -> int:\n    return 1\n"
    assert "Class doc" not in source_of(Thing) and "Method doc" not in source_of(Thing)


def test_triton_kernel_shown_through_fn():
    pytest.importorskip("triton")
    from course_lib.attention import flash_triton

    text = source_of(flash_triton._flash_attention_fwd_kernel)
    assert text.startswith("@triton.jit\ndef _flash_attention_fwd_kernel(")


def test_show_source_prints_and_refuses_builtins(capsys):
    show_source(Thing.method, documented)
    out = capsys.readouterr().out
    assert "def method" in out and "def documented" in out
    with pytest.raises(TypeError, match="obj must be a Python function"):
        source_of(len)
    with pytest.raises(TypeError, match="at least one"):
        show_source()
