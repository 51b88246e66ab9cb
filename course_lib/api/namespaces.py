"""From a flat registry to a namespace tree: what ``tf.*`` and ``tf.compat.v1.*`` are made of.

The registry is flat — ``{"math.add": add, "nn.relu": relu}``. A user wants attribute access —
``tf.math.add``. TensorFlow's build generates one ``__init__.py`` per dotted prefix from the
registry; :func:`namespace` does the same in memory with ``types.SimpleNamespace``:

    for each "a.b.c" -> obj:   root.a (create if missing) .b (create if missing) .c = obj

``namespace(api, compat=True)`` adds ``root.compat.v1`` (built from the v1 names) and
``root.compat.v2`` (the root's own names), the shape of TensorFlow 2's public package.

A name that is both a leaf and a prefix (``"ops"`` and ``"ops.nms"``) cannot become a tree;
that is reported, never silently overwritten.

Notebook: ``05_api_export`` (section "From registry to namespace"). Tests: ``tests/test_api.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from course_lib._export import Version, api_export, registry

# Applied by hand: ``export`` is defined in the package ``__init__``, after this module.
_export = api_export


def tree(entries: dict[str, Any]) -> SimpleNamespace:
    """Build a ``SimpleNamespace`` tree from ``{dotted name: object}``.

    Args:
        entries: flat public names and their objects, e.g. ``{"ops.nms": nms}``.

    Returns:
        The root namespace: ``tree({"ops.nms": f}).ops.nms is f``.

    Raises:
        TypeError: ``entries`` is not a dict with string keys.
        ValueError: a name is both a leaf and a prefix of another name.
    """
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise TypeError(f"entries must be a dict of dotted-name strings to objects; got {entries!r:.80}")
    root = SimpleNamespace()
    for name, obj in sorted(entries.items()):
        *prefix, leaf = name.split(".")
        node = root
        for depth, part in enumerate(prefix):
            child = getattr(node, part, None)
            if child is None:
                child = SimpleNamespace()
                setattr(node, part, child)
            elif not isinstance(child, SimpleNamespace):
                taken = ".".join(prefix[: depth + 1])
                raise ValueError(f"{name!r} needs {taken!r} to be a namespace, but {taken!r} is an exported object")
            node = child
        if isinstance(getattr(node, leaf, None), SimpleNamespace):
            raise ValueError(f"{name!r} is exported as an object but is also the prefix of other names")
        setattr(node, leaf, obj)
    return root


def namespace(api_name: str = "course_lib", version: Version = "v2", compat: bool = False) -> SimpleNamespace:
    """The namespace tree of an API, built from its registry.

    Args:
        api_name: the API whose registry to read.
        version: ``"v2"`` (the main names) or ``"v1"`` (the compat names).
        compat: also attach ``compat.v1`` and ``compat.v2`` sub-trees, as ``tf.compat`` does.

    Returns:
        The root ``SimpleNamespace``.

    Raises:
        ValueError: an unknown version, a leaf/prefix clash, or (with ``compat``) an exported
            name that already starts with ``compat``.
    """
    root = tree(registry(api_name, version))
    if compat:
        if hasattr(root, "compat"):
            raise ValueError(f"{api_name} exports a name under 'compat'; compat=True would overwrite it")
        root.compat = SimpleNamespace(v1=tree(registry(api_name, "v1")), v2=tree(registry(api_name, "v2")))
    return root


_export("api.tree", api_name="course_lib")(tree)
_export("api.namespace", api_name="course_lib")(namespace)
