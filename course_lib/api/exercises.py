"""Exercises for chapter 5 (notebook ``05_api_export``): the registry's three moves.

1. :data:`own_names` — read the names an object was exported under *itself* (``vars`` vs
   ``getattr``: a subclass must not report its parent's names).
2. :data:`build_tree` — turn flat dotted names into a nested namespace.
3. :data:`api_tables` — TensorFlow's v1/v2 rule: without ``v1=``, v1 names default to the v2 names.
4. :data:`export_decorator` — the chapter's mechanism: a registering decorator bound with
   ``functools.partial``, with duplicate detection; the check binds it, applies it to a scripted
   series of exports and builds the library's namespace (:func:`course_lib.api.tree`) from it.

Tests: ``tests/test_api.py``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from course_lib.exercises import Exercise, Result

ATTR = "_api_names"  # the attribute the exercises' toy decorator writes


class _Described(type):
    """A metaclass whose repr shows the class chain and each class's own names (for feedback)."""

    def __repr__(cls) -> str:
        chain = [c for c in cls.__mro__ if c is not object]
        return " -> ".join(f"class {c.__name__}(own _api_names={vars(c).get(ATTR)!r})" for c in chain)


def _exported_class(name: str, names: tuple[str, ...] | None, base: type = object) -> type:
    """A class named ``name`` deriving from ``base``; exported under ``names`` unless None."""
    cls = _Described(name, (base,), {})
    if names is not None:
        setattr(cls, ATTR, names)
    return cls


def _chain(spec: list[tuple[str, tuple[str, ...] | None]]) -> type:
    """A chain of subclasses, each exported or not; returns the last (most derived) class."""
    cls: type = object
    for name, names in spec:
        cls = _exported_class(name, names, cls)
    return cls


def _own_names_solution(obj: Any) -> tuple[str, ...]:
    return tuple(vars(obj).get("_api_names", ())) if hasattr(obj, "__dict__") else ()


def _random_chain(rng: random.Random) -> dict[str, Any]:
    depth = rng.randint(1, 4)
    spec = []
    for level in range(depth):
        exported = rng.random() < 0.5
        names = tuple(f"layers.L{level}_{k}" for k in range(rng.randint(1, 2))) if exported else None
        spec.append((f"L{level}", names))
    return {"obj": _chain(spec)}


own_names = Exercise(
    title="names an object was exported under itself",
    task="""
        Our toy decorator stores public names on an object as the attribute `_api_names`
        (a tuple of strings). Write `own_names(obj) -> tuple[str, ...]`: the names `obj` was
        exported under ITSELF — () when it was not exported, even if its parent class was.
        (A subclass of an exported class is not exported: its parent's names are not its own.)
    """,
    reference=_own_names_solution,
    edge_cases=[
        {"obj": _chain([("Plain", None)])},
        {"obj": _chain([("Layer", ("nn.Layer",))])},
        {"obj": _chain([("Layer", ("nn.Layer",)), ("Dense", None)])},
        {"obj": _chain([("Layer", ("nn.Layer",)), ("Dense", ("nn.Dense", "nn.Linear"))])},
        {"obj": 3},
    ],
    random_case=_random_chain,
    hints=[
        "`getattr(cls, name)` searches the parent classes too; what looks only at `cls` itself?",
        "`vars(obj)` is the object's own `__dict__`; some objects (like 3) have none.",
    ],
)


def _build_tree_solution(entries: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for name, obj in entries.items():
        *prefix, leaf = name.split(".")
        node = root
        for part in prefix:
            node = node.setdefault(part, {})
        node[leaf] = obj
    return root


def _random_entries(rng: random.Random) -> dict[str, Any]:
    # Prefix words and leaf words are disjoint, so no name is both a leaf and a prefix.
    prefixes, leaves = ("nn", "ops", "math", "io"), ("relu", "add", "nms", "read", "f")
    entries = {}
    for value in range(rng.randint(1, 6)):
        parts = [rng.choice(prefixes) for _ in range(rng.randint(0, 2))] + [rng.choice(leaves)]
        entries[".".join(parts)] = value
    return {"entries": entries}


build_tree = Exercise(
    title="flat names to a namespace tree",
    task="""
        Write `build_tree(entries) -> dict`: `entries` maps dotted public names to objects,
        e.g. {"nn.relu": 1, "nn.init.zeros": 2, "add": 3}. Return nested dicts, one level per
        dot: {"nn": {"relu": 1, "init": {"zeros": 2}}, "add": 3}. (No name in the input is both
        a leaf and a prefix.)
    """,
    reference=_build_tree_solution,
    edge_cases=[
        {"entries": {}},
        {"entries": {"add": 1}},
        {"entries": {"a.b.c": 1, "a.b.d": 2, "a.e": 3, "g": 4}},
    ],
    random_case=_random_entries,
    hints=[
        "Split each name on '.': all parts but the last are namespaces, the last is the leaf.",
        "Walk down from the root, creating a dict for each missing namespace (`dict.setdefault`).",
    ],
)


Export = tuple[str, tuple[str, ...], tuple[str, ...] | None]  # (symbol, v2 names, v1 names or None)


def _api_tables_solution(exports: list[Export]) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {"v2": {}, "v1": {}}
    for symbol, names, v1 in exports:
        for name in names:
            tables["v2"][name] = symbol
        for name in names if v1 is None else v1:
            tables["v1"][name] = symbol
    return tables


def _random_exports(rng: random.Random) -> dict[str, Any]:
    exports = []
    for i in range(rng.randint(1, 5)):
        names = (f"m{i}.f{i}",) + ((f"f{i}",) if rng.random() < 0.3 else ())
        v1 = rng.choice([None, (), (f"compat_f{i}",), names])
        exports.append((f"sym{i}", names, v1))
    return {"exports": exports}


api_tables = Exercise(
    title="the v2 and v1 tables of a TensorFlow-style API",
    task="""
        Each export is a triple (symbol, names, v1): `names` are its main (v2) public names,
        `v1` its compat.v1 names — or None, which means "the same as names" (TensorFlow's rule);
        () means "not in v1 at all". Write `api_tables(exports) -> {"v2": {...}, "v1": {...}}`,
        each table mapping a public name to its symbol.
    """,
    reference=_api_tables_solution,
    edge_cases=[
        {"exports": []},
        {"exports": [("add", ("math.add",), None)]},
        {"exports": [("add", ("math.add",), ("math.add", "add")), ("relu", ("nn.relu",), ())]},
    ],
    random_case=_random_exports,
    hints=[
        "Build both tables in one loop over the exports.",
        "`v1 or names` is wrong for one case: () is falsy but means 'no v1 names'. Test `v1 is None`.",
    ],
)

def _api_export(*names: str, api_name: str, registry: dict[str, dict[str, Any]]):
    table = registry.setdefault(api_name, {})  # one table per API

    def decorator(obj: Any) -> Any:
        for name in names:  # check every name before recording any
            if name in table and table[name] is not obj:
                raise ValueError(f"{name!r} is already exported as {table[name]!r} in {api_name!r}")
        for name in names:
            table[name] = obj
        return obj  # the object itself: no wrapper, no cost per call

    return decorator


# Each script is a list of (names, object label) exports; a label names one fresh object, so a
# label seen twice is the same object exported again (allowed), a new label under a taken name
# is a duplicate (refused with ValueError, and nothing of that export is recorded).
_SCRIPTS: list[list[tuple[tuple[str, ...], str]]] = [
    [(("math.add", "add"), "add")],
    [(("math.add",), "add"), (("math.add",), "add")],  # the same object again: fine
    [(("math.add",), "add"), (("math.sub", "math.add"), "sub"), (("math.sub",), "sub")],  # duplicate, then ok
    [(("math.add",), "add"), (("math.sub", "math.add"), "sub"), (("math.sub",), "mul")],  # refused: nothing kept
    [(("nn.relu",), "relu"), (("nn.gelu",), "gelu"), (("keras.layers.Dense",), "Dense")],
]


@dataclass
class DecoratorExercise(Exercise):
    """Checked by *using* the learner's decorator factory: bound with functools.partial, applied."""

    scripts: tuple = tuple(tuple(script) for script in _SCRIPTS)

    @staticmethod
    def _run(factory, script) -> tuple[list[str], dict[str, str]]:
        """Apply ``partial(factory, api_name="toyflow", registry=...)`` along ``script``."""
        from course_lib.api.namespaces import tree

        registry: dict[str, dict[str, Any]] = {}
        export = functools.partial(factory, api_name="toyflow", registry=registry)
        objects: dict[str, Any] = {}
        outcome = []
        for names, label in script:
            obj = objects.setdefault(label, type(label, (), {"__repr__": lambda self, label=label: label})())
            try:
                returned = export(*names)(obj)
            except ValueError:
                outcome.append(f"{label} under {list(names)}: ValueError")
                continue
            outcome.append(f"{label} under {list(names)}: {'the same object' if returned is obj else repr(returned)}")
        table = registry.get("toyflow", {})
        root = tree(table)  # the library's namespace, built from the learner's table
        for name, obj in table.items():
            node = root
            for part in name.split("."):
                node = getattr(node, part)
            assert node is obj
        return outcome, {name: repr(obj) for name, obj in sorted(table.items())}

    def _judge(self, fn, seed: int) -> Result:
        for i, script in enumerate(self.scripts):
            expected = self._run(self.reference, script)
            try:
                got = self._run(fn, script)
            except NotImplementedError:
                return Result(False, False, f"… {self.title}: not attempted yet — replace the "
                              "`raise NotImplementedError` with your code and run this cell again.")
            except Exception as exc:  # noqa: BLE001 — the learner's bug, against the script that caused it
                got = ([f"raised {type(exc).__name__}: {exc}"], {})
            if got != expected:
                steps = "\n".join(f"    export{tuple(n)} applied to {label}" for n, label in script)
                return Result(False, True, f"✗ {self.title}: wrong on script {i + 1} of {len(self.scripts)}:\n"
                              f"{steps}\n  expected: {expected}\n  got:      {got}", {"script": script})
        return Result(True, True, f"✓ {self.title}: correct on all {len(self.scripts)} scripts; the "
                      "namespace built from your registry resolves every name to its object.")


export_decorator = DecoratorExercise(
    title="an exporting decorator, bound with functools.partial",
    task="""
        Write `api_export(*names, api_name, registry)` that returns a decorator. Applied to an
        object, the decorator records it under each of `names` in `registry[api_name]` (a dict
        {name: object}; create it if missing) and returns THE OBJECT ITSELF. If a name is already
        taken by a DIFFERENT object, raise ValueError and record none of the names; exporting
        the same object again is fine. The check binds your function the way TensorFlow binds
        tf_export — `export = functools.partial(api_export, api_name="toyflow", registry=...)` —
        applies `export("math.add", "add")(obj)` along a few scripts, and builds
        course_lib.api.tree from your registry.
    """,
    reference=_api_export,
    hints=["Two levels of functions: api_export(*names, ...) returns decorator(obj), which returns obj.",
           "table = registry.setdefault(api_name, {}) gives the API's table, creating it once.",
           "Loop over the names twice: first only check (`table[name] is not obj`), then record."],
)

EXERCISES = (own_names, build_tree, api_tables, export_decorator)
