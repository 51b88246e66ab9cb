"""Tests for the TensorFlow mechanics of chapter 5: unwrap, canonical names, deprecation, the generator."""

from __future__ import annotations

import functools
import itertools
import sys
import types
import warnings

import pytest

from course_lib.api import (
    DeprecatedEndpointWarning,
    SymbolExposedTwiceError,
    canonical_name,
    check_api,
    declared_names,
    deprecated_endpoints,
    deprecated_names,
    deprecating_namespace,
    generate_api,
    name_to_symbol,
    registry,
    symbol_from_name,
    unwrap,
    write_api,
)

_ids = itertools.count()


@pytest.fixture
def scratch_module():
    """Make throw-away modules registered in sys.modules (the generator imports by name); removed afterwards."""
    made: list[str] = []

    def make(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        sys.modules[name] = module
        made.append(name)
        return module

    yield make
    for name in made:
        sys.modules.pop(name, None)


def _logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


# --- unwrap -------------------------------------------------------------------------------


def test_unwrap_returns_every_wrapper_outermost_first_and_the_target():
    def f(x):
        return x

    inner = _logged(f)
    outer = _logged(inner)
    assert unwrap(outer) == ((outer, inner), f)
    assert unwrap(f) == ((), f)
    assert unwrap(3) == ((), 3)


def test_unwrap_refuses_a_cycle():
    def f():
        pass

    def g():
        pass

    f.__wrapped__ = g
    g.__wrapped__ = f
    with pytest.raises(ValueError, match="cycle"):
        unwrap(f)


def test_declared_names_are_found_in_either_decorator_order(toy):
    api, exp = toy

    def below(x):
        return x

    public_below = _logged(exp("below")(below))  # export first, then wrap: wraps copies __dict__

    def above(x):
        return x

    public_above = exp("above")(_logged(above))  # wrap first, then export the wrapper
    assert declared_names(public_below, api) == ("below",)
    assert declared_names(public_above, api) == ("above",)
    assert declared_names(above, api) == ()  # the inner function itself was never exported
    assert registry(api) == {"above": public_above, "below": below}


# --- canonical names and deprecated endpoints ---------------------------------------------


def test_canonical_name_skips_deprecated_names(toy):
    api, exp = toy

    @exp("log", "math.log", v1=["log", "math.log"])
    @deprecated_endpoints("log", api_name=api)
    def log(x):
        return x

    assert deprecated_names(log, api) == ("log",)
    assert canonical_name(log, api) == "math.log"  # first NON-deprecated name, not the first name


def test_canonical_name_falls_back_to_the_first_then_to_v1(toy):
    api, exp = toy

    @exp("old", v1=["old"])
    @deprecated_endpoints("old", api_name=api)
    def all_deprecated():
        pass

    @exp("legacy.only", v1=["legacy.only"])
    def placeholder():
        pass

    v1_only = exp("unused", v1=["contrib.v1_only"])(lambda: None)
    v1_only_names = vars(v1_only)[f"_{api}_api_names"]
    setattr(v1_only, f"_{api}_api_names", ())  # a symbol with v1 names only, as TF's v1-only exports
    assert canonical_name(all_deprecated, api) == "old"  # every name deprecated: the first
    assert canonical_name(v1_only, api) == "contrib.v1_only"
    assert canonical_name(v1_only, api, add_prefix_to_v1_names=True) == "compat.v1.contrib.v1_only"
    assert canonical_name(placeholder, api) == "legacy.only"
    assert canonical_name(len, api) is None and canonical_name(lambda: 0, api) is None
    assert v1_only_names == ("unused",)


def test_deprecated_endpoints_bad_input_and_twice():
    with pytest.raises(ValueError, match="at least one name"):
        deprecated_endpoints()
    with pytest.raises(ValueError, match="dotted identifiers.*'1x'"):
        deprecated_endpoints("1x")
    with pytest.raises(TypeError, match="must be strings"):
        deprecated_endpoints(3)

    def f():
        pass

    deprecated_endpoints("a", api_name="whatever")(f)
    with pytest.raises(ValueError, match="already"):
        deprecated_endpoints("b", api_name="whatever")(f)


def test_name_to_symbol_holds_v2_and_prefixed_v1_names(toy):
    api, exp = toy

    @exp("math.add", v1=["add"])
    def add(a, b):
        return a + b

    assert name_to_symbol(api) == {"math.add": add, "compat.v1.add": add}
    assert symbol_from_name("compat.v1.add", api) is add and symbol_from_name("add", api) is None
    with pytest.raises(TypeError, match="name must be"):
        symbol_from_name(None, api)


def test_deprecated_name_warns_once_and_only_through_that_name(toy):
    api, exp = toy

    @exp("math.log", v1=["math.log", "log"])
    @deprecated_endpoints("log", api_name=api)
    def log(x):
        return x

    ns = deprecating_namespace(api)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ns.math.log is log and ns.compat.v1.math.log is log and ns.compat.v2.math.log is log
        assert not caught  # the canonical names never warn
        assert ns.compat.v1.log is log  # the very same object, not a wrapper
        assert ns.compat.v1.log is log
    assert len(caught) == 1 and issubclass(caught[0].category, DeprecatedEndpointWarning)
    assert f"{api}.compat.v1.log is deprecated; use {api}.math.log" in str(caught[0].message)
    with pytest.raises(AttributeError):
        ns.compat.v1.missing  # noqa: B018


# --- the generator ------------------------------------------------------------------------


def _toy_package(api, exp, make_module):
    """A throw-away module in sys.modules whose functions are exported under ``api``."""
    module = make_module(f"{api}_src")

    def add(a, b):
        return a + b

    def relu(x):
        return x

    add.__module__ = relu.__module__ = module.__name__
    module.add = exp("math.add", "add", v1=["math.add"])(add)
    module.relu = exp("nn.relu")(_logged(relu))  # an export on a wrapper
    module.add_alias = add  # a re-export: the same object under another attribute
    return module


def test_generate_api_writes_one_module_per_namespace_and_picks_the_defining_import(toy, scratch_module, tmp_path):
    api, exp = toy
    module = _toy_package(api, exp, scratch_module)
    texts = generate_api([module.__name__], f"{api}_out", api_name=api, compat=True)
    assert set(texts) == {"", "math", "nn", "compat", "compat.v1", "compat.v1.math", "compat.v1.nn",
                          "compat.v2", "compat.v2.math", "compat.v2.nn"}
    assert f"from {module.__name__} import add\n" in texts["math"]  # priority: name == __name__
    assert "add_alias" not in texts["math"]
    assert f"from {api}_out import math" in texts[""]
    write_api(texts, tmp_path, f"{api}_out")
    assert (tmp_path / f"{api}_out" / "compat" / "v1" / "math" / "__init__.py").exists()
    assert check_api(tmp_path, f"{api}_out", api_name=api, compat=True) == 3 + 2 + 3
    assert f"{api}_out" not in sys.modules


def test_generate_api_refuses_two_objects_under_one_name(toy, scratch_module):
    api, exp = toy
    module = scratch_module(f"{api}_twice")
    module.first = exp("same")(lambda: 1)
    impostor = lambda: 2  # noqa: E731
    setattr(impostor, f"_{api}_api_names", ("same",))  # as TF's dict would take it silently
    module.second = impostor
    with pytest.raises(SymbolExposedTwiceError, match=r"same.*first.*second"):
        generate_api([module.__name__], "out", api_name=api)


def test_generate_api_refuses_a_name_that_is_symbol_and_namespace(toy, scratch_module):
    api, exp = toy
    module = scratch_module(f"{api}_clash")
    module.ops = exp("ops")(lambda: 1)
    module.nms = exp("ops.nms")(lambda: 2)
    with pytest.raises(ValueError, match="also a namespace"):
        generate_api([module.__name__], "out", api_name=api)


def test_generate_api_bad_arguments():
    with pytest.raises(TypeError, match="list of module names"):
        generate_api("course_lib", "out")
    with pytest.raises(TypeError, match="output_package"):
        generate_api(["course_lib"], "not-an-identifier")
    with pytest.raises(ValueError, match="version"):
        generate_api(["course_lib"], "out", version="v3")


def test_check_api_reports_a_missing_name(toy, scratch_module, tmp_path):
    api, exp = toy
    module = _toy_package(api, exp, scratch_module)
    texts = generate_api([module.__name__], f"{api}_gap", api_name=api)
    texts["nn"] = texts["nn"].replace("import relu\n", "import relu as relu_renamed\n")
    write_api(texts, tmp_path, f"{api}_gap")
    with pytest.raises(LookupError, match=r"nn\.relu is missing"):
        check_api(tmp_path, f"{api}_gap", api_name=api)


def test_the_course_api_generated_from_its_registry_resolves_every_name(tmp_path):
    from course_lib.__main__ import load_all_chapters

    load_all_chapters()
    texts = generate_api(["course_lib"], "course_api_generated", compat=True)
    write_api(texts, tmp_path, "course_api_generated")
    checked = check_api(tmp_path, "course_api_generated", compat=True)
    assert checked == len(registry()) * 2 + len(registry(version="v1"))
