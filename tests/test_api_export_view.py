"""Tests for course_lib.api.export_view: the pure state (against the real decorator), the view, the widget."""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.api import DuplicateExportError, api_export, clear, export_state, export_view, tree
from course_lib.api.export_view import API, BASE_EXPORTS, SYMBOL

_ids = itertools.count()


def _really_export(names: str, v1_names: str, v1_default: bool):
    """Apply the real api_export to the base symbols and my_op; return (outcome, my_op, api)."""
    api = f"{API}_check_{next(_ids)}"
    exp = functools.partial(api_export, api_name=api)
    try:
        for base in BASE_EXPORTS:
            exp(*base.names, v1=base.v1_names)(type(base.symbol, (), {}))
        my_op = type(SYMBOL, (), {})
        parsed = [n.strip() for n in names.split(",") if n.strip()]
        parsed_v1 = [n.strip() for n in v1_names.split(",") if n.strip()]
        try:
            exp(*parsed, v1=None if v1_default else parsed_v1)(my_op)
        except DuplicateExportError:
            return "duplicate", my_op, api
        except (ValueError, TypeError):
            return "invalid", my_op, api
        from course_lib.api import registry

        try:
            tree(registry(api)), tree(registry(api, "v1"))
        except ValueError:
            return "clash", my_op, api
        return "ok", my_op, api
    finally:
        clear(api)


NAME = st.sampled_from(["math.add", "add", "math", "nn.relu.x", "matmul", "x", "linalg.inv", "keras.layers.Dense",
                        "1bad", "a b", "_private", "keras", "add.more"])


@settings(max_examples=60, deadline=None)
@given(names=st.lists(NAME, max_size=3), v1=st.lists(NAME, max_size=3), v1_default=st.booleans())
def test_state_agrees_with_really_applying_api_export(names, v1, v1_default):
    names_text, v1_text = ", ".join(names), ", ".join(v1)
    state = export_state(names_text, v1_text, v1_default)
    outcome, my_op, api = _really_export(names_text, v1_text, v1_default)
    if outcome == "invalid":
        assert state.error is not None and not state.accepted
    elif outcome == "duplicate":
        assert state.error is None and any("already exported" in c.reason for c in state.collisions)
    elif outcome == "clash":
        assert state.error is None and state.collisions
        assert not any("already exported" in c.reason for c in state.collisions)
    else:
        assert state.accepted
        real = {attr.replace(api, API): value for attr, value in vars(my_op).items() if attr.startswith(f"_{api}")}
        assert dict(state.attributes) == real
        mine = {v: {n for n, s in state.tables[v].items() if s == SYMBOL} for v in ("v2", "v1")}
        assert mine == {"v2": set(state.names), "v1": set(state.v1_names)}


def test_default_export_is_accepted_with_tf_style_attributes():
    state = export_state("math.add_one, add_one")
    assert state.accepted and state.canonical == "math.add_one"
    assert dict(state.attributes) == {"_toyflow_api_names": ("math.add_one", "add_one"),
                                      "_toyflow_api_names_v1": ("math.add_one", "add_one")}
    assert "canonical name: math.add_one" in state.caption


def test_collision_names_the_holder_in_both_tables():
    state = export_state("math.add", "matmul", v1_default=False)
    assert [c.message for c in state.collisions] == [
        "toyflow.math.add: already exported for add", "toyflow.compat.v1.matmul: already exported for matmul"]
    assert state.attributes == () and "COLLISION toyflow.math.add" in state.caption
    assert state.tables["v2"]["math.add"] == "add"  # the holder keeps its name


def test_symbol_and_namespace_clash_is_a_collision():
    state = export_state("math")
    assert not state.accepted and "needs it to be a namespace" in state.collisions[0].reason


@pytest.mark.parametrize("names, match", [("1bad", "bad part '1bad'"), ("", "at least one public name"),
                                          ("a b", "dotted public identifiers"), ("x, x", "twice")])
def test_invalid_names_give_a_message_not_an_exception(names, match):
    state = export_state(names)
    assert state.error is not None and match in state.error and "INVALID" in state.caption


def test_empty_v1_field_means_no_v1_names():
    state = export_state("x", "", v1_default=False)
    assert state.accepted and state.v1_names == () and dict(state.attributes)["_toyflow_api_names_v1"] == ()


def test_bad_argument_types_raise():
    with pytest.raises(TypeError, match="names must be a comma-separated string"):
        export_state(["x"])
    with pytest.raises(TypeError, match="v1_default must be True or False"):
        export_state("x", "", v1_default="yes")


def test_view_draws_two_trees_and_its_caption_follows_the_state():
    view = export_view("math.add")
    assert len(view.figure.axes) == 2
    texts = [t.get_text() for ax in view.figure.axes for t in ax.texts]
    assert any("COLLISION" in t or "claims it too" in t for t in texts)
    assert view.caption == export_state("math.add").caption
    import matplotlib.pyplot as plt

    plt.close(view.figure)


def test_widget_text_fields_update_the_caption_including_a_collision_and_an_invalid_name():
    pytest.importorskip("ipywidgets")
    from course_lib.api import export_widget

    w = export_widget()
    assert set(w.controls) == {"names", "v1_names", "v1_default"}
    first, image = w.caption.value, w.image.value
    assert "canonical name: math.add_one" in first
    w.controls["names"].value = "math.add, ops.add"
    assert "COLLISION toyflow.math.add: already exported for add" in w.caption.value
    assert w.image.value != image
    w.controls["v1_default"].value = False
    w.controls["v1_names"].value = "ops.add, matmul"
    assert "COLLISION toyflow.compat.v1.matmul" in w.caption.value
    w.controls["names"].value = "ops..add"
    assert "INVALID" in w.caption.value and "Traceback" not in w.caption.value
    for name in ("names", "v1_names"):  # text fields take a whole row each: they stack
        assert w.controls[name].layout.width == "96%"
