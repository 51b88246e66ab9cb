"""The draft-tree viewer: one Medusa decoding step as a picture and a caption.

Left: the candidate tree of step ``step`` — the root (the base model's next token) at depth 0,
head k's guesses at depth k + 1, a token on every node, the accepted path in green. Right: the
tree attention mask (node i may attend to node j) with the accepted nodes' rows marked. The
caption states the same in text: the nodes, the accepted tokens and the text so far.

:func:`draft_tree_view` is pure (a :class:`~course_lib.speculative.medusa_decode.MedusaResult`
and a step in, a :class:`~course_lib.widgets.View` out); :func:`draft_tree_widget` decodes once
and wires a slider to it. Notebook: ``10_medusa`` ("Watch the tree"). Tests:
``tests/test_speculative.py``.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import matplotlib.pyplot as plt

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT
from course_lib.lm.tokenizer import decode, encode, token_label
from course_lib.speculative.medusa_decode import MedusaResult, medusa_generate
from course_lib.speculative.medusa_heads import MedusaHeads
from course_lib.speculative.medusa_tree import MedusaTree
from course_lib.widgets import View, ViewWidget


def _layout(tree: MedusaTree) -> list[tuple[float, float]]:
    """(x, y) per node: x = depth; leaves get consecutive y, a parent the mean of its children."""
    children: dict[int, list[int]] = {i: [] for i in range(tree.num_nodes)}
    for i, p in enumerate(tree.parents):
        if p >= 0:
            children[p].append(i)
    y: dict[int, float] = {}

    def place(node: int, next_leaf: list[int]) -> float:
        if not children[node]:
            y[node] = float(next_leaf[0])
            next_leaf[0] += 1
        else:
            y[node] = sum(place(c, next_leaf) for c in children[node]) / len(children[node])
        return y[node]

    place(0, [0])
    depths = tree.depths.tolist()
    return [(float(depths[i]), -y[i]) for i in range(tree.num_nodes)]


@export("speculative.draft_tree_view")
def draft_tree_view(result: MedusaResult, step: int) -> View:
    """Draw step ``step`` of a Medusa decoding run: the candidate tree, its mask, the text so far.

    Args:
        result: the output of :func:`~course_lib.speculative.medusa_generate`.
        step: which step, in ``[0, len(result.steps))``.

    Returns:
        A :class:`View` whose caption lists the tree's tokens, the accepted path and the text.

    Raises:
        ValueError: ``step`` out of range.
    """
    _checks.instance("result", result, MedusaResult)
    _checks.integer("step", step, minimum=0, maximum=len(result.steps) - 1)
    s = result.steps[step]
    tree, accepted = s.tree, set(s.accepted_nodes)
    xy = _layout(tree)
    fig, (ax_tree, ax_mask) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    for i, p in enumerate(tree.parents):
        if p >= 0:
            on_path = i in accepted and p in accepted
            ax_tree.plot([xy[p][0], xy[i][0]], [xy[p][1], xy[i][1]], color="tab:green" if on_path else "0.7",
                         lw=3 if on_path else 1, zorder=1)
    for i, (x, y) in enumerate(xy):
        ax_tree.scatter([x], [y], s=520, zorder=2, edgecolors="k",
                        color="tab:green" if i in accepted else ("tab:orange" if i == 0 else "white"))
        ax_tree.text(x, y, token_label(s.node_tokens[i]), ha="center", va="center", zorder=3,
                     fontsize=11 if len(token_label(s.node_tokens[i])) == 1 else 6,
                     family="monospace")
    ax_tree.set_xticks(range(tree.depth + 1), ["root"] + [f"head {k}" for k in range(tree.depth)])
    ax_tree.set_yticks([])
    ax_tree.set_xlim(-0.5, max(tree.depth, 1) + 0.5)
    ax_tree.set_title(f"step {step + 1}/{len(result.steps)}: {tree.num_nodes} nodes, "
                      f"kept {len(s.accepted_nodes)} (root + {len(s.accepted_nodes) - 1} drafted)")
    mask = tree.mask.float().numpy()
    ax_mask.imshow(mask, cmap="Blues", vmin=0, vmax=1.4)
    for i in s.accepted_nodes:
        ax_mask.add_patch(plt.Rectangle((-0.5, i - 0.5), tree.num_nodes, 1, fill=False, ec="tab:green", lw=2))
    labels = [f"{i}:{token_label(t)}" for i, t in enumerate(s.node_tokens)]
    ax_mask.set_xticks(range(tree.num_nodes), labels, rotation=90, fontsize=7, family="monospace")
    ax_mask.set_yticks(range(tree.num_nodes), labels, fontsize=7, family="monospace")
    ax_mask.set_title("tree attention mask (row attends to column)")
    fig.tight_layout()
    end = s.position + len(s.accepted_nodes)
    text = decode(result.tokens[:end])
    new = decode(result.tokens[result.prompt_length:end])
    caption = (
        f"step {step + 1} of {len(result.steps)} at position {s.position}: {tree.num_nodes} nodes, depth {tree.depth}\n"
        f"nodes: {' '.join(labels)}\n"
        f"accepted nodes {s.accepted_nodes} -> tokens {''.join(token_label(t) for t in s.accepted_tokens)!r} "
        f"({len(s.accepted_nodes) - 1} drafted + root)\n"
        f"generated so far ({len(new.encode())} bytes in {step + 1} steps):\n{text[-300:]}"
    )
    return View(fig, caption)


@export("speculative.draft_tree_widget")
def draft_tree_widget(model: GPT, heads: MedusaHeads, prompt: str, max_new_tokens: int = 48,
                      tree: MedusaTree | str | list = "medium", acceptance: str = "greedy") -> ViewWidget:
    """Decode ``prompt`` once with Medusa and return a slider over its steps (see the module doc)."""
    _checks.instance("prompt", prompt, str)
    result = medusa_generate(model, heads, encode(prompt), max_new_tokens, tree=tree, acceptance=acceptance)
    view = functools.partial(draft_tree_view, result)
    return ViewWidget(view, step=widgets.IntSlider(value=0, min=0, max=len(result.steps) - 1, description="step"))


