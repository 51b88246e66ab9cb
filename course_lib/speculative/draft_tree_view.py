"""The draft-tree viewer: one Medusa decoding step as a picture and a caption.

Left: the candidate tree of step ``step`` — the root (the base model's next token) at depth 0,
head k's guesses at depth k + 1, a token on every node, and under it the node's position id and
the base model's argmax there (what the model would write next after that node: a child is
accepted iff it equals its parent's argmax); the accepted path in green. Right: the tree
attention mask (node i may attend to node j) with the accepted nodes' rows outlined. The
caption states the same in text.

Three layers (house style, rule 19): :func:`draft_tree_state` is pure (a
:class:`~course_lib.speculative.medusa_decode.MedusaResult` and a step in, a frozen
:class:`DraftTreeState` out; tested without matplotlib), :func:`draft_tree_view` draws it, and
:func:`draft_tree_widget` decodes once and wires a step slider to the view. matplotlib and
ipywidgets are imported inside the drawing and widget functions. Notebook: ``10_medusa``
("Watch the tree"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT
from course_lib.lm.tokenizer import decode, encode, token_label
from course_lib.speculative.medusa_decode import MedusaResult, medusa_generate
from course_lib.speculative.medusa_heads import MedusaHeads
from course_lib.speculative.medusa_tree import MedusaTree

if TYPE_CHECKING:
    from course_lib.widgets import View, ViewWidget

FIGSIZE = (8.4, 4.4)  # inches: 756 px wide at the widget's 90 dpi, inside an 850 px output area
FONT = 9  # points: 11 px at 90 dpi, above the 9 px floor


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


@export("speculative.DraftTreeState")
@dataclass(frozen=True)
class DraftTreeState:
    """Everything one picture of the draft-tree viewer shows (pure data)."""

    step: int  # 0-based step shown
    num_steps: int  # steps in the run
    position: int  # the root's position (tokens committed before the step)
    depth: int  # the tree's depth
    tokens: tuple[str, ...]  # each node's token, as a one-glyph label
    argmax: tuple[str, ...]  # the base model's argmax at each node ("?" for a step without a pass)
    position_ids: tuple[int, ...]  # each node's position id: position + depth
    parents: tuple[int, ...]  # each node's parent (-1 for the root)
    xy: tuple[tuple[float, float], ...]  # each node's place in the drawing (x = depth)
    accepted: tuple[int, ...]  # node indices of the kept path, root first
    mask: tuple[tuple[bool, ...], ...]  # the tree attention mask, row attends to column
    text: str  # the prompt and the text written up to the end of this step (last 300 characters)
    new_bytes: int  # bytes written up to the end of this step

    @property
    def num_nodes(self) -> int:
        return len(self.tokens)

    @property
    def caption(self) -> str:
        nodes = " ".join(f"{i}:{t}" for i, t in enumerate(self.tokens))
        kept = "".join(self.tokens[i] for i in self.accepted)
        return (
            f"step {self.step + 1} of {self.num_steps} at position {self.position}: {self.num_nodes} nodes, "
            f"depth {self.depth}\n"
            f"nodes: {nodes}\n"
            f"base-model argmax at each node: {' '.join(f'{i}:{a}' for i, a in enumerate(self.argmax))}\n"
            f"position ids: {list(self.position_ids)}\n"
            f"accepted nodes {list(self.accepted)} -> tokens {kept!r} ({len(self.accepted) - 1} drafted + root)\n"
            f"generated so far ({self.new_bytes} bytes in {self.step + 1} steps):\n{self.text}"
        )


@export("speculative.draft_tree_state")
def draft_tree_state(result: MedusaResult, step: int) -> DraftTreeState:
    """The state of step ``step`` (in ``[0, len(result.steps))``) of a Medusa run.

    Raises:
        TypeError: ``result`` is not a :class:`MedusaResult`.
        ValueError: ``step`` out of range.
    """
    _checks.instance("result", result, MedusaResult)
    _checks.integer("step", step, minimum=0, maximum=len(result.steps) - 1)
    s = result.steps[step]
    tree = s.tree
    argmax = tuple(token_label(a) for a in s.node_argmax) if s.node_argmax else ("?",) * tree.num_nodes
    end = s.position + len(s.accepted_nodes)
    return DraftTreeState(
        step=step, num_steps=len(result.steps), position=s.position, depth=tree.depth,
        tokens=tuple(token_label(t) for t in s.node_tokens), argmax=argmax, position_ids=tuple(s.position_ids),
        parents=tuple(tree.parents), xy=tuple(_layout(tree)), accepted=tuple(s.accepted_nodes),
        mask=tuple(tuple(bool(v) for v in row) for row in tree.mask.tolist()),
        text=decode(result.tokens[:end])[-300:],
        new_bytes=len(decode(result.tokens[result.prompt_length:end]).encode()),
    )


@export("speculative.draft_tree_view")
def draft_tree_view(result: MedusaResult, step: int) -> View:
    """Draw step ``step`` of a Medusa decoding run: the candidate tree, its mask, the text so far.

    Args:
        result: the output of :func:`~course_lib.speculative.medusa_generate`.
        step: which step, in ``[0, len(result.steps))``.

    Returns:
        A :class:`View` whose caption lists the tree's tokens, each node's argmax and position
        id, the accepted path and the text.

    Raises:
        ValueError: ``step`` out of range.
    """
    import matplotlib.pyplot as plt

    from course_lib.widgets import View

    st = draft_tree_state(result, step)
    accepted = set(st.accepted)
    fig, (ax_tree, ax_mask) = plt.subplots(1, 2, figsize=FIGSIZE, gridspec_kw={"width_ratios": [1.5, 1]})
    for i, p in enumerate(st.parents):
        if p >= 0:
            on_path = i in accepted and p in accepted
            ax_tree.plot([st.xy[p][0], st.xy[i][0]], [st.xy[p][1], st.xy[i][1]],
                         color="tab:green" if on_path else "0.7", lw=3 if on_path else 1, zorder=1)
    for i, (x, y) in enumerate(st.xy):
        ax_tree.scatter([x], [y], s=420, zorder=2, edgecolors="k",
                        color="tab:green" if i in accepted else ("tab:orange" if i == 0 else "white"))
        ax_tree.text(x, y, st.tokens[i], ha="center", va="center", zorder=3, family="monospace",
                     fontsize=11 if len(st.tokens[i]) == 1 else FONT)
        ax_tree.text(x + 0.17, y, f"p{st.position_ids[i]} →{st.argmax[i]}", ha="left", va="center",
                     fontsize=FONT, family="monospace", color="0.2", zorder=3,
                     bbox={"fc": "white", "ec": "none", "pad": 0.3, "alpha": 0.85})  # edges pass behind
    ax_tree.set_xticks(range(st.depth + 1), ["root"] + [f"head {k}" for k in range(st.depth)], fontsize=FONT)
    ax_tree.set_yticks([])
    ax_tree.set_xlim(-0.4, max(st.depth, 1) + 0.8)
    ys = [y for _, y in st.xy]
    ax_tree.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax_tree.set_title(f"step {step + 1}/{st.num_steps}: kept {len(st.accepted)} of {st.num_nodes} nodes\n"
                      "beside each node: position id → base-model argmax", fontsize=FONT + 1)
    n = st.num_nodes
    ax_mask.imshow([[float(v) for v in row] for row in st.mask], cmap="Blues", vmin=0, vmax=1.4)
    for i in st.accepted:
        ax_mask.add_patch(plt.Rectangle((-0.5, i - 0.5), n, 1, fill=False, ec="tab:green", lw=2))
    every = 1 if n <= 14 else 2  # at most ~14 tick labels per axis keep 9 pt text apart
    ticks = list(range(0, n, every))
    ax_mask.set_xticks(ticks, [str(i) for i in ticks], fontsize=FONT)
    ax_mask.set_yticks(ticks, [f"{i} {st.tokens[i]}" for i in ticks], fontsize=FONT, family="monospace")
    ax_mask.set_xlabel("node (attended to)", fontsize=FONT)
    ax_mask.set_title("tree attention mask\n(row attends to column)", fontsize=FONT + 1)
    fig.tight_layout()
    return View(fig, st.caption)


@export("speculative.draft_tree_widget")
def draft_tree_widget(model: GPT, heads: MedusaHeads, prompt: str, max_new_tokens: int = 48,
                      tree: MedusaTree | str | list = "medium", acceptance: str = "greedy") -> ViewWidget:
    """Decode ``prompt`` once with Medusa and return a slider over its steps (see the module doc)."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    _checks.instance("prompt", prompt, str)
    result = medusa_generate(model, heads, encode(prompt), max_new_tokens, tree=tree, acceptance=acceptance)
    view = functools.partial(draft_tree_view, result)
    return ViewWidget(view, step=widgets.IntSlider(value=0, min=0, max=len(result.steps) - 1, step=1,
                                                   description="step"))
