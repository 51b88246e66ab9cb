"""The README's gallery: one picture per chapter's widget, drawn by the library's own views.

``python -m course_lib readme`` (``python3 course.py readme``) builds each chapter's widget as its
notebook does, writes the picture the widget first shows to ``docs/gallery/<notebook>.png``, and
rewrites the README's gallery block, so the README never drifts from the code.
``tests/test_widgets.py`` renders them again and compares. Chapters without a widget are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from course_lib import _notebooks
from course_lib.chapters import CHAPTERS

if TYPE_CHECKING:
    from course_lib._view_widget import ViewWidget

GALLERY = _notebooks.ROOT / "docs" / "gallery"


def _temperature() -> ViewWidget:
    from course_lib.temperature import temperature_widget

    return temperature_widget()


def _autograd() -> ViewWidget:
    from course_lib.autograd import backward_widget

    return backward_widget()


def _functional() -> ViewWidget:
    from course_lib.functional import dropout_bn_widget

    return dropout_bn_widget()


def _numerics() -> ViewWidget:
    from course_lib.numerics import bit_editor_widget

    return bit_editor_widget("fp16", 1.0)


def _distributed() -> ViewWidget:
    from course_lib.distributed import ring_widget

    return ring_widget(4)


def _api() -> ViewWidget:
    from course_lib.api import export_widget

    return export_widget()


def _contrastive() -> ViewWidget:
    from course_lib.contrastive import info_nce_widget

    return info_nce_widget()


def _detection() -> ViewWidget:
    from course_lib.detection import anchors_nms_widget

    return anchors_nms_widget()


def _deform() -> ViewWidget:
    from course_lib.deform import sampling_widget

    return sampling_widget(preset="rotation", strength=0.5)


def _attention() -> ViewWidget:
    from course_lib.attention import tiling_widget

    return tiling_widget()


def _speculative() -> ViewWidget:
    from course_lib import lm, speculative

    model, _ = lm.load_checkpoint()
    heads = speculative.load_heads(model)[0]
    prompt = lm.code_prompts(lm.load_corpus().val, 16, 64)[10]
    return speculative.draft_tree_widget(model, heads, lm.decode(prompt), max_new_tokens=48, tree="medium")


def _mtp() -> ViewWidget:
    from course_lib import lm, mtp

    model, _ = lm.load_checkpoint()
    chain, _ = mtp.load_mtp(model)
    prompt = lm.code_prompts(lm.load_corpus().val, 8, 64)[3]
    return mtp.mtp_decoding_widget(model, chain, lm.decode(prompt), max_new_tokens=64)


# The widget each chapter's notebook shows first, built with the notebook's arguments.
BUILDERS: dict[int, Callable[[], ViewWidget]] = {
    0: _temperature, 1: _autograd, 2: _functional, 3: _numerics, 4: _distributed, 5: _api, 6: _contrastive,
    7: _detection, 8: _deform, 9: _attention, 10: _speculative, 11: _mtp,
}


def render(number: int) -> bytes:
    """The PNG chapter ``number``'s widget shows when it first appears."""
    return bytes(BUILDERS[number]().image.value)


def gallery_markdown() -> str:
    """The README's gallery block: a two-column table of the pictures, each with its chapter."""
    cells = []
    for c in CHAPTERS:
        if c.number in BUILDERS:
            cells.append(f"[![{c.title}](docs/gallery/{c.notebook}.png)](notebooks/{c.notebook}.ipynb)<br>"
                         f"**{c.number} · {c.title}** — {c.widget}")
    if len(cells) % 2:
        cells.append("")
    rows = ["| | |", "| --- | --- |"]
    rows += [f"| {left} | {right} |" for left, right in zip(cells[::2], cells[1::2])]
    return "\n".join(rows)


def stale_pictures(folder: Path = GALLERY) -> list[str]:
    """The chapters' pictures in ``folder`` that differ from what the library draws now."""
    stale = []
    for c in CHAPTERS:
        if c.number in BUILDERS:
            path = folder / f"{c.notebook}.png"
            if not path.exists() or path.read_bytes() != render(c.number):
                stale.append(path.name)
    return stale


def write_pictures(folder: Path = GALLERY) -> list[str]:
    """Draw every chapter's picture into ``folder``; return the names of the files that changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for c in CHAPTERS:
        if c.number in BUILDERS:
            path, png = folder / f"{c.notebook}.png", render(c.number)
            if not path.exists() or path.read_bytes() != png:
                path.write_bytes(png)
                changed.append(path.name)
    return changed
