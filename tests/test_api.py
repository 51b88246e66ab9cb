"""Tests for course_lib.api: the export decorator, its registry, namespaces and exercises."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.api import (
    DuplicateExportError,
    api_export,
    call_overhead,
    clear,
    export,
    exported_names,
    namespace,
    registry,
    resolve,
    tree,
    wrapping_register,
)
from course_lib.api import exercises as ex
from course_lib.chapters import CHAPTERS

_ids = itertools.count()


# --- the decorator ------------------------------------------------------------------------


def test_export_returns_the_same_object_and_registers_it(toy):
    api, exp = toy

    def f(x):
        return x + 1

    assert exp("x.f")(f) is f
    assert registry(api) == {"x.f": f}
    assert exported_names(f, api) == ("x.f",)
    assert f(1) == 2


def test_course_lib_export_is_the_partial_of_api_export():
    assert isinstance(export, functools.partial)
    assert export.func is api_export and export.keywords == {"api_name": "course_lib"}
    decorator = export("api_test_probe.g")
    assert isinstance(decorator, api_export) and decorator.api_name == "course_lib"


def test_several_names_and_v1_default_to_the_v2_names(toy):
    api, exp = toy

    @exp("math.add", "add")
    def add(a, b):
        return a + b

    assert registry(api) == {"add": add, "math.add": add}
    assert registry(api, "v1") == registry(api)  # no v1= given: TensorFlow's default
    assert exported_names(add, api, "v1") == ("math.add", "add")


def test_explicit_v1_names_and_empty_v1(toy):
    api, exp = toy

    @exp("math.add", v1=["math.add", "add"])
    def add(a, b):
        return a + b

    @exp("nn.gelu", v1=[])
    def gelu(x):
        return x

    assert registry(api) == {"math.add": add, "nn.gelu": gelu}
    assert registry(api, "v1") == {"add": add, "math.add": add}
    assert exported_names(gelu, api, "v1") == ()


def test_duplicate_name_raises_naming_both_objects(toy):
    api, exp = toy

    @exp("ops.nms")
    def nms():
        pass

    def other_nms():
        pass

    with pytest.raises(DuplicateExportError, match=rf"{api}\.ops\.nms is already exported for .*nms.*other_nms"):
        exp("ops.nms")(other_nms)
    assert registry(api) == {"ops.nms": nms}  # the refused export left no trace
    assert exported_names(other_nms, api) == ()
    assert issubclass(DuplicateExportError, ValueError)


def test_duplicate_v1_name_raises_and_leaves_no_trace(toy):
    api, exp = toy
    exp("a", v1=["legacy"])(lambda: 1)
    second = lambda: 2  # noqa: E731
    with pytest.raises(DuplicateExportError, match=r"compat\.v1\.legacy"):
        exp("b", v1=["legacy"])(second)
    assert "b" not in registry(api)


def test_reexporting_the_same_object_is_idempotent_and_merges_names(toy):
    api, exp = toy

    def f():
        pass

    exp("f")(f)
    exp("f")(f)
    exp("g")(f)
    assert exported_names(f, api) == ("f", "g")
    assert registry(api) == {"f": f, "g": f}


def test_class_and_subclass_export_and_subclass_does_not_inherit_names(toy):
    api, exp = toy

    @exp("nn.Layer")
    class Layer:
        pass

    class Plain(Layer):  # not exported
        pass

    @exp("nn.Dense")
    class Dense(Layer):
        pass

    assert exported_names(Layer, api) == ("nn.Layer",)
    assert exported_names(Plain, api) == ()  # getattr would have said ("nn.Layer",)
    assert getattr(Plain, f"_{api}_api_names") == ("nn.Layer",)  # ... which is why vars() is used
    assert exported_names(Dense, api) == ("nn.Dense",)
    assert exported_names(Layer, api) == ("nn.Layer",)  # the subclass did not overwrite the parent
    assert registry(api) == {"nn.Dense": Dense, "nn.Layer": Layer}
    assert isinstance(Dense(), Layer)


@pytest.mark.parametrize(
    "names, error, match",
    [
        ((), ValueError, "at least one public name"),
        (("",), ValueError, "dotted public identifiers.*''"),
        (("a..b",), ValueError, "dotted public identifiers.*'a..b'"),
        (("ops.1nms",), ValueError, "bad part '1nms'"),
        (("ops.my-op",), ValueError, "bad part 'my-op'"),
        (("ops.class",), ValueError, "bad part 'class'"),
        (("ops._private",), ValueError, "bad part '_private'"),
        (("a", "a"), ValueError, "lists a name twice"),
        ((3,), TypeError, "names must be strings.*int: 3"),
    ],
)
def test_bad_names_raise(names, error, match):
    with pytest.raises(error, match=match):
        api_export(*names, api_name="toy_bad")


def test_bad_api_name_and_bad_v1_raise():
    with pytest.raises(ValueError, match="api_name must be an identifier.*'my-api'"):
        api_export("f", api_name="my-api")
    with pytest.raises(TypeError, match=r"v1 must be a list of names, not one string.*v1=\['f'\]"):
        api_export("f", api_name="toy_bad", v1="f")
    with pytest.raises(ValueError, match="bad part 'no way'"):
        api_export("f", api_name="toy_bad", v1=["no way"])
    with pytest.raises(ValueError, match="version must be one of"):
        registry("course_lib", "v3")
    with pytest.raises(ValueError, match="version must be one of"):
        exported_names(len, "course_lib", "v0")


def test_objects_without_attributes_cannot_be_exported(toy):
    api, exp = toy
    with pytest.raises(TypeError, match="cannot export <built-in function len>"):
        exp("len")(len)
    assert registry(api) == {}


def test_the_course_registry_cannot_be_cleared():
    with pytest.raises(ValueError, match="cannot be cleared"):
        clear("course_lib")


PREFIXES = st.sampled_from(["nn", "ops", "math", "io", "compat_old"])
LEAVES = st.sampled_from(["relu", "add", "nms", "Dense", "read", "f"])
NAMES = st.builds(lambda pre, leaf: ".".join([*pre, leaf]), st.lists(PREFIXES, max_size=3), LEAVES)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=8, unique=True), v1_too=st.booleans())
def test_property_export_registry_and_tree_agree(names, v1_too):
    """For any set of names: each export returns its object, the registry maps name -> object,
    and the namespace tree reaches each object by attribute access along its dotted name."""
    api = f"toy_prop_{next(_ids)}"
    try:
        objects = {name: type(name.replace(".", "_"), (), {}) for name in names}  # fresh classes
        for name, obj in objects.items():
            assert api_export(name, api_name=api, v1=None if v1_too else [])(obj) is obj
        assert registry(api) == dict(sorted(objects.items()))
        assert registry(api, "v1") == (registry(api) if v1_too else {})
        root = namespace(api)
        for name, obj in objects.items():
            node = root
            for part in name.split("."):
                node = getattr(node, part)
            assert node is obj and exported_names(obj, api) == (name,)
    finally:
        clear(api)


# --- resolve and namespaces ---------------------------------------------------------------


def test_resolve_follows_modules_then_attributes():
    import course_lib.api.namespaces as namespace_module

    assert resolve("api.export") is export
    assert resolve("api.namespaces.tree") is namespace_module.tree  # module path, then attribute
    assert resolve("api.namespace") is namespace  # the re-exported function, not the submodule
    assert resolve("api.DuplicateExportError.__name__") == "DuplicateExportError"
    with pytest.raises(LookupError, match="course_lib.api.nope does not resolve"):
        resolve("api.nope")
    with pytest.raises(LookupError, match="course_lib.no_such_module.f does not resolve"):
        resolve("no_such_module.f")
    with pytest.raises(LookupError, match="no_such_api.f does not resolve"):
        resolve("f", api_name="no_such_api")
    with pytest.raises(TypeError, match="name must be a non-empty dotted name.*got 3"):
        resolve(3)


def test_tree_rejects_non_dicts():
    with pytest.raises(TypeError, match="entries must be a dict of dotted-name strings"):
        tree([("a", 1)])
    with pytest.raises(TypeError, match="entries must be a dict of dotted-name strings"):
        tree({1: "a"})


def test_tree_builds_nested_namespaces():
    f, g, h = object(), object(), object()
    root = tree({"math.add": f, "math.linalg.inv": g, "relu": h})
    assert root.math.add is f and root.math.linalg.inv is g and root.relu is h
    assert isinstance(root.math, SimpleNamespace)
    assert tree({}) == SimpleNamespace()


@pytest.mark.parametrize("entries", [{"ops": 1, "ops.nms": 2}, {"ops.nms": 2, "ops": 1}])
def test_tree_refuses_a_name_that_is_leaf_and_prefix(entries):
    with pytest.raises(ValueError, match="'ops'"):
        tree(entries)


def test_namespace_with_compat_mirrors_tf(toy):
    api, exp = toy

    @exp("math.add", v1=["math.add", "add"])
    def add(a, b):
        return a + b

    tf = namespace(api, compat=True)
    assert tf.math.add is add
    assert tf.compat.v1.add is add and tf.compat.v1.math.add is add
    assert tf.compat.v2.math.add is add
    assert not hasattr(tf, "add")
    exp("compat.thing")(lambda: 0)
    with pytest.raises(ValueError, match="exports a name under 'compat'"):
        namespace(api, compat=True)


# --- wrapper vs the object itself ----------------------------------------------------------


def test_wrapping_register_returns_a_new_object_that_behaves_the_same():
    table = {}

    def double(x):
        """Twice x."""
        return 2 * x

    wrapped = wrapping_register("double", table)(double)
    assert wrapped is not double and table["double"] is wrapped
    assert wrapped.__name__ == "double" and wrapped.__doc__ == "Twice x." and wrapped.__wrapped__ is double
    assert wrapped(4) == 8


def test_call_overhead_reports_the_exported_function_is_the_bare_one():
    result = call_overhead(number=2000, repeat=3)
    assert result.exported_is_bare and result.exported_ns == result.bare_ns  # one object, one timing
    assert result.bare_ns > 0 and result.wrapped_ns > 0
    assert set(result.timings) == {"bare", "wrapped"} and len(result.timings["bare"].samples) == 3
    assert "overhead_demo" not in {a for a, _ in __import__("course_lib._export")._export._REGISTRY}
    with pytest.raises(ValueError, match="number must be an int in"):
        call_overhead(number=0)
    with pytest.raises(TypeError, match="repeat must be an int"):
        call_overhead(repeat=1.5)


# --- every public name of the course resolves ---------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.notebook)
def test_chapter_module_imports(chapter):
    """A chapter module that exists must import; one not written yet is reported as skipped."""
    if importlib.util.find_spec(chapter.module) is None:
        pytest.skip(f"{chapter.module} (chapter {chapter.notebook}) is not written yet")
    importlib.import_module(chapter.module)  # any error here fails the test


def test_every_registered_name_resolves_to_its_object():
    from course_lib.__main__ import load_all_chapters

    missing = [c.module for c in CHAPTERS if importlib.util.find_spec(c.module) is None]
    if missing:
        for chapter in CHAPTERS:  # import what exists; a broken one fails here, loudly
            if chapter.module not in missing:
                importlib.import_module(chapter.module)
    else:
        load_all_chapters()
    names = registry()
    assert "api.export" in names and "temperature.softmax" in names
    wrong = {name: obj for name, obj in names.items() if resolve(name) is not obj}
    assert not wrong, f"public names that do not resolve to their exported object: {sorted(wrong)}"
    namespace("course_lib", compat=True)  # the whole API forms a tree: no leaf/prefix clash
    if missing:
        pytest.skip(f"checked {len(names)} names; chapters not written yet: {', '.join(missing)}")


# --- exercises -----------------------------------------------------------------------------


def test_exercises_accept_correct_alternatives():
    def own(obj):
        d = getattr(obj, "__dict__", {})
        return tuple(d["_api_names"]) if "_api_names" in d else ()

    def build(entries):
        out = {}
        for name in sorted(entries):
            parts = name.split(".")
            node = out
            while len(parts) > 1:
                node = node.setdefault(parts.pop(0), {})
            node[parts[0]] = entries[name]
        return out

    def tables(exports):
        v2 = {n: s for s, names, _ in exports for n in names}
        v1 = {n: s for s, names, v1 in exports for n in (names if v1 is None else v1)}
        return {"v2": v2, "v1": v1}

    for exercise, fn in ((ex.own_names, own), (ex.build_tree, build), (ex.api_tables, tables)):
        result = exercise.check(fn, quiet=True)
        assert result.passed, result.message
    assert len(ex.EXERCISES) >= 3


@pytest.mark.parametrize(
    "exercise, wrong, shown",
    [
        (ex.own_names, lambda obj: tuple(getattr(obj, "_api_names", ())), "class Dense"),
        (ex.own_names, lambda obj: vars(obj).get("_api_names", ()), "obj = 3"),
        (ex.build_tree, lambda entries: {n.split(".")[0]: v for n, v in entries.items()}, "a.b.c"),
        (ex.build_tree, lambda entries: dict(entries), "a.b.c"),
        (ex.api_tables, lambda exports: ex._api_tables_solution([(s, n, v or None) for s, n, v in exports]),
         "'nn.relu',), ()"),
        (ex.api_tables, lambda exports: {"v2": {n: s for s, ns, _ in exports for n in ns}, "v1": {}},
         "'math.add',), None"),
    ],
)
def test_exercises_reject_wrong_functions_and_name_the_input(exercise, wrong, shown):
    result = exercise.check(wrong, quiet=True)
    assert not result.passed and result.attempted
    assert result.failing_case is not None
    assert shown in result.message and "expected:" in result.message


def test_stub_counts_as_not_attempted():
    def stub(entries):
        raise NotImplementedError

    result = ex.build_tree.check(stub, quiet=True)
    assert not result.passed and not result.attempted


# --- the exporting decorator exercise: run by binding it with functools.partial ---------------------

def _export_via_library(*names, api_name, registry):
    """A correct alternative: the library's own api_export with a private registry copied out."""
    from course_lib._export import api_export, clear
    from course_lib._export import registry as library_registry

    def decorator(obj):
        scratch = f"exercise_{api_name}"
        clear(scratch)
        for name, prior in registry.get(api_name, {}).items():
            api_export(name, api_name=scratch)(prior)
        api_export(*names, api_name=scratch)(obj)  # DuplicateExportError is a ValueError
        registry[api_name] = dict(library_registry(scratch))
        clear(scratch)
        return obj
    return decorator


def _export_records_before_checking(*names, api_name, registry):
    table = registry.setdefault(api_name, {})

    def decorator(obj):
        for name in names:
            if name in table and table[name] is not obj:
                raise ValueError(name)
            table[name] = obj  # a refused export leaves its first names behind
        return obj
    return decorator


def _export_without_duplicate_check(*names, api_name, registry):
    def decorator(obj):
        registry.setdefault(api_name, {}).update(dict.fromkeys(names, obj))
        return obj
    return decorator


def _export_wrapping(*names, api_name, registry):
    import functools

    def decorator(obj):
        @functools.wraps(obj)
        def wrapper(*args):
            return obj(*args)
        registry.setdefault(api_name, {}).update(dict.fromkeys(names, wrapper))
        return wrapper
    return decorator


def test_export_decorator_exercise_binds_and_applies_the_learners_factory():
    assert ex.export_decorator.check(_export_via_library, quiet=True).passed
    for wrong, script in ((_export_records_before_checking, 4), (_export_without_duplicate_check, 3),
                          (_export_wrapping, 1)):
        result = ex.export_decorator.check(wrong, quiet=True)
        assert not result.passed and result.attempted, wrong.__name__
        assert f"wrong on script {script} of" in result.message and "expected:" in result.message, result.message

    def stub(*names, api_name, registry):
        raise NotImplementedError

    assert not ex.export_decorator.check(stub, quiet=True).attempted
    assert "def _api_export" in ex.export_decorator.solution()
