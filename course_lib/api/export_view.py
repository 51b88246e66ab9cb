"""The export editor: type a symbol's names and v1 names, see the v1/v2 trees, collisions and attributes.

A toy API, ``toyflow``, already exports four symbols (:data:`BASE_EXPORTS`). The learner edits
the export of one more, ``my_op`` — ``@tf_export(<names>, v1=[<v1 names>])`` — and sees what the
registry would build:

* the ``toyflow.*`` (v2) and ``toyflow.compat.v1.*`` trees, ``my_op``'s entries in blue;
* **collisions** in red: a name another symbol already holds (:class:`~course_lib.api.api_export`
  raises :class:`~course_lib.api.DuplicateExportError`; TensorFlow's generator raises
  ``SymbolExposedTwiceError``), or a name that is both a symbol and a namespace
  (:func:`~course_lib.api.tree` raises ``ValueError``);
* the attributes ``api_export`` writes on ``my_op`` (TensorFlow: ``_tf_api_names`` and
  ``_tf_api_names_v1``; here ``_toyflow_api_names`` and ``_toyflow_api_names_v1``) and its
  canonical name (:func:`~course_lib.api.canonical_name`'s rule).

:func:`export_state` is pure (no registry is touched): it validates the names by building the
real decorator (``api_export(...)`` without applying it) and computes collisions from the tables;
``tests/test_api_export_view.py`` checks it against really applying ``api_export`` and ``tree``.
:func:`export_view` draws it; :func:`export_widget` wires two stacked text fields and a
checkbox ("v1 = names", TensorFlow's default when ``v1=`` is omitted).

Notebook: ``05_api_export`` (section "Widget: edit an export"). Tests: ``tests/test_api_export_view.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from course_lib._export import Version, api_export, export

if TYPE_CHECKING:  # matplotlib and ipywidgets load only when a picture is drawn
    from course_lib.widgets import View, ViewWidget

API = "toyflow"  # the toy API's name
SYMBOL = "my_op"  # the symbol whose export the learner edits


@dataclass(frozen=True)
class ToyExport:
    """One ``@tf_export`` already in the toy API."""

    symbol: str  # the object's name
    names: tuple[str, ...]  # v2 names
    v1_names: tuple[str, ...]  # v1 names


BASE_EXPORTS = (
    ToyExport("add", ("math.add", "add"), ("math.add", "add")),
    ToyExport("matmul", ("linalg.matmul",), ("linalg.matmul", "matmul")),
    ToyExport("relu", ("nn.relu",), ("nn.relu",)),
    ToyExport("Dense", ("keras.layers.Dense",), ()),  # TF 2 only: v1=[]
)


@dataclass(frozen=True)
class Collision:
    """A name ``my_op`` cannot take."""

    version: Version  # which table
    name: str  # the dotted name, relative to the root
    reason: str  # what is in the way, in words

    @property
    def message(self) -> str:
        where = API if self.version == "v2" else f"{API}.compat.v1"
        return f"{where}.{self.name}: {self.reason}"


@export("api.ExportState")
@dataclass(frozen=True)
class ExportState:
    """What ``api_export(<names>, v1=<v1 names>)`` applied to ``my_op`` would do in the toy API."""

    names: tuple[str, ...]  # parsed v2 names (as typed, even when invalid)
    v1_names: tuple[str, ...]  # the v1 names in effect (= names when v1_default)
    v1_default: bool  # v1= omitted: the v1 names default to the v2 names
    error: str | None  # why the names are invalid (the decorator's own message), else None
    collisions: tuple[Collision, ...]  # names another symbol holds, or symbol/namespace clashes
    tables: dict[Version, dict[str, str]]  # {version: {name: symbol}}, my_op's names included
    attributes: tuple[tuple[str, tuple[str, ...]], ...]  # what api_export writes on my_op (() if refused)
    canonical: str | None  # my_op's canonical name (first v2 name, else compat.v1.<first v1 name>)

    @property
    def accepted(self) -> bool:
        """The export would succeed and the namespace trees could be built."""
        return self.error is None and not self.collisions

    @property
    def caption(self) -> str:
        v1 = "" if self.v1_default else f", v1={list(self.v1_names)!r}"
        lines = [f"@tf_export({', '.join(map(repr, self.names))}{v1}) applied to {SYMBOL}"
                 + (" (v1 names default to the names)" if self.v1_default else "")]
        if self.error is not None:
            lines.append(f"INVALID: {self.error}")
            return "\n".join(lines)
        for version in ("v2", "v1"):
            root = API if version == "v2" else f"{API}.compat.v1"
            mine = sorted(n for n, s in self.tables[version].items() if s == SYMBOL)
            lines.append(f"{root}.*: {len(self.tables[version])} names, {SYMBOL}'s: {', '.join(mine) or 'none'}")
        if self.collisions:
            lines += [f"COLLISION {c.message}" for c in self.collisions]
            lines.append(f"api_export refuses this export: {SYMBOL} gets no attributes")
        else:
            lines += [f"{SYMBOL}.{attr} = {value!r}" for attr, value in self.attributes]
            lines.append(f"canonical name: {self.canonical}")
        return "\n".join(lines)


def _parse(text: str, argument: str) -> tuple[str, ...]:
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a comma-separated string like 'math.add, add'; got {text!r}")
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _clashes(table: dict[str, str], version: Version) -> list[Collision]:
    """Names that are both a symbol and the namespace of another name, involving my_op."""
    found = []
    for name, symbol in table.items():
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix in table and SYMBOL in (symbol, table[prefix]):
                found.append(Collision(version, prefix, f"is {table[prefix]}, but {name} ({symbol}) needs it "
                                                        "to be a namespace"))
    return found


@export("api.export_state")
def export_state(names: str, v1_names: str = "", v1_default: bool = True) -> ExportState:
    """What exporting ``my_op`` under ``names`` (and ``v1_names``) would do in the toy API (pure).

    Args:
        names: comma-separated v2 names, ``"math.add_one, add_one"``.
        v1_names: comma-separated v1 names; ignored when ``v1_default``; ``""`` means ``v1=[]``.
        v1_default: omit ``v1=``, so the v1 names are the v2 names (TensorFlow's default).

    Returns:
        An :class:`ExportState`; invalid names give ``error`` (the decorator's message), never raise.

    Raises:
        TypeError: ``names`` or ``v1_names`` is not a string, ``v1_default`` not a bool.
    """
    parsed = _parse(names, "names")
    parsed_v1 = _parse(v1_names, "v1_names")
    if not isinstance(v1_default, bool):
        raise TypeError(f"v1_default must be True or False; got {v1_default!r}")
    effective_v1 = parsed if v1_default else parsed_v1
    tables: dict[Version, dict[str, str]] = {"v2": {}, "v1": {}}
    for base in BASE_EXPORTS:
        tables["v2"].update(dict.fromkeys(base.names, base.symbol))
        tables["v1"].update(dict.fromkeys(base.v1_names, base.symbol))
    try:  # the real decorator validates (it is built, not applied: nothing is registered)
        decorator = api_export(*parsed, api_name=API, v1=None if v1_default else parsed_v1)
    except (ValueError, TypeError) as err:
        return ExportState(parsed, effective_v1, v1_default, str(err), (), tables, (), None)
    collisions: list[Collision] = []
    wanted: dict[Version, tuple[str, ...]] = {"v2": decorator.names, "v1": decorator.v1_names}
    for version, table in tables.items():
        for name in wanted[version]:
            if name in table and table[name] != SYMBOL:
                collisions.append(Collision(version, name, f"already exported for {table[name]}"))
        for name in wanted[version]:
            table.setdefault(name, SYMBOL)
        collisions += _clashes(table, version)
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    canonical = None
    if not collisions:
        attributes = ((decorator.attribute, decorator.names), (decorator.attribute + "_v1", decorator.v1_names))
        canonical = decorator.names[0] if decorator.names else None  # no deprecated names here
    return ExportState(parsed, decorator.v1_names, v1_default, None, tuple(collisions), tables, attributes, canonical)


def _tree_lines(table: dict[str, str]) -> list[tuple[int, str, str]]:
    """(depth, text, full name or "") per line: namespaces ("math/") before their names."""
    lines: list[tuple[int, str, str]] = []
    opened: set[str] = set()
    for name in sorted(table, key=lambda n: n.split(".")):
        parts = name.split(".")
        for depth in range(len(parts) - 1):
            prefix = ".".join(parts[: depth + 1])
            if prefix not in opened:
                opened.add(prefix)
                lines.append((depth, parts[depth] + "/", ""))
        lines.append((len(parts) - 1, f"{parts[-1]}  -> {table[name]}", name))
    return lines


@export("api.export_view")
def export_view(names: str = "math.add_one, add_one", v1_names: str = "", v1_default: bool = True) -> View:
    """Draw :func:`export_state`: the v2 and v1 trees side by side, collisions in red, the attributes below."""
    import matplotlib.pyplot as plt

    from course_lib.widgets import View

    state = export_state(names, v1_names, v1_default)
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 4.0))
    bad = {(c.version, c.name) for c in state.collisions}
    versions: tuple[Version, ...] = ("v2", "v1")
    for ax, version in zip(axes, versions):
        ax.axis("off")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        root = f"{API}.*" if version == "v2" else f"{API}.compat.v1.*"
        ax.text(0.0, 1.0, f"{version}: {root}", fontsize=11, fontweight="bold", va="top")
        if state.error is not None:
            continue
        table = state.tables[version]
        lines = _tree_lines(table)
        step = min(0.06, 0.86 / max(1, len(lines)))
        for row, (depth, text, full) in enumerate(lines):
            mine = bool(full) and table[full] == SYMBOL
            clash = (version, full) in bad or (not full and (version, text[:-1]) in bad)
            color = "tab:red" if clash else ("tab:blue" if mine else "black")
            note = ""
            if clash:
                note = f"   <- {SYMBOL} claims it too" if full and not mine else "   <- symbol AND namespace"
            ax.text(0.03 + 0.06 * depth, 0.92 - row * step, text + note,
                    family="monospace", fontsize=9, color=color, va="top",
                    fontweight="bold" if (mine or clash) else "normal")
    if state.error is not None:
        footer, color = f"invalid names: {state.error}", "tab:red"
    elif state.collisions:
        footer = "\n".join(f"COLLISION {c.message}" for c in state.collisions[:4])
        color = "tab:red"
    else:
        footer = "\n".join(f"{SYMBOL}.{attr} = {value!r}" for attr, value in state.attributes)
        footer += f"\ncanonical name: {state.canonical}"
        color = "black"
    fig.text(0.02, 0.02, footer, fontsize=9, family="monospace", color=color, va="bottom", wrap=True)
    fig.suptitle(f"exporting {SYMBOL} in the toy API '{API}' (blue: {SYMBOL}'s names, red: collisions)",
                 fontsize=10)
    fig.subplots_adjust(bottom=0.22, top=0.9)
    return View(fig, state.caption)


@export("api.export_widget")
def export_widget(names: str = "math.add_one, add_one", v1_names: str = "math.add_one",
                  v1_default: bool = True) -> ViewWidget:
    """Two stacked text fields (names, v1 names) and a "v1 = names" checkbox, wired to :func:`export_view`."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    export_state(names, v1_names, v1_default)  # bad argument types fail here, not inside a callback
    full_row = {"width": "96%"}  # one field per line: the row wraps, so the fields stack
    return ViewWidget(
        export_view,
        names=widgets.Text(value=names, description="names", placeholder="comma-separated, e.g. math.add_one, add_one",
                           layout=widgets.Layout(**full_row)),
        v1_names=widgets.Text(value=v1_names, description="v1 names", placeholder="comma-separated; empty = v1=[]",
                              layout=widgets.Layout(**full_row)),
        v1_default=widgets.Checkbox(value=v1_default, description="v1 = names (TensorFlow's default)"),
    )
