"""The catalogue of chapters: one entry per notebook, the single source for the README's
chapter table, the doctor's report and the tests that check every chapter has its parts.

Adding a chapter (the one pattern every chapter follows):

1. ``course_lib/<module>/`` — the implementation, with ``exercises.py`` and a pure ``*_view``
   function for the widget (see :mod:`course_lib.widgets`).
2. ``tests/test_<module>.py`` — against the production reference, plus the exercises checked
   with right and wrong learner functions and the widget moved headlessly.
3. ``notebooks/NN_<slug>.py`` — jupytext percent format, first cell the Colab cell; then
   ``python3 course.py notebooks NN_<slug>`` writes and executes the ``.ipynb``.
4. An entry below, then ``python3 course.py readme`` to refresh the README's table.

Tests: ``tests/test_chapters.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Need = Literal["cuda", "triton", "triton-native", "bf16", "multi-gpu"]


@dataclass(frozen=True)
class Fallback:
    """A section of a chapter that needs something this machine may lack.

    A section may list several fallbacks, most severe first (no Triton at all before Triton
    without a GPU): the doctor reports the first one whose need is missing.
    """

    section: str  # the section's heading in the notebook, as written there (a test checks)
    needs: Need  # what it needs to run as written
    otherwise: str  # what runs instead: "skipped with a message", "Triton's interpreter"…


@dataclass(frozen=True)
class Chapter:
    number: int  # position in the course; the notebook is notebooks/{number:02d}_{slug}.ipynb
    slug: str  # the notebook's name after the number
    title: str  # as in the README's table
    module: str  # the course_lib module the notebook imports
    widget: str  # what the chapter's widget shows
    gpu: Literal["optional", "useful"]  # "useful": a section measures GPU speed or runs faster there
    fallbacks: tuple[Fallback, ...] = ()

    @property
    def notebook(self) -> str:
        return f"{self.number:02d}_{self.slug}"


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(0, "start_here", "Start here: how the course works", "course_lib.temperature",
            "softmax temperature: logits to probabilities", "optional"),
    Chapter(1, "autograd", "Reverse-mode autograd from scratch", "course_lib.autograd",
            "the backward pass stepping through a computation graph", "optional"),
    Chapter(2, "nn_vs_functional", "nn.Module vs torch.nn.functional", "course_lib.functional",
            "train/eval × module/functional: dropout masks and batch-norm statistics", "optional"),
    Chapter(3, "floating_point", "Floating-point formats and mixed precision", "course_lib.numerics",
            "a bit editor for FP32/FP16/BF16/FP8 and a number line of representable values",
            "optional",
            (Fallback("The experiment: one model, four precisions", "cuda",
                      "bf16 autocast on the CPU (fp16 autocast + loss scaler on CUDA)"),)),
    Chapter(4, "ddp", "Distributed data parallel and ring all-reduce", "course_lib.distributed",
            "the ring all-reduce stepper: chunks moving around N ranks", "optional",
            (Fallback("Processes, not threads", "multi-gpu",
                      "gloo between CPU processes (NCCL where there is one GPU per rank)"),)),
    Chapter(5, "api_export", "How frameworks export their APIs", "course_lib.api",
            "the export editor: type a symbol's names and v1 names, see the v1/v2 trees, collisions in red "
            "and the attributes api_export writes", "optional"),
    Chapter(6, "self_supervised", "Self-supervised learning: NCE, InfoNCE, CPC and mutual information",
            "course_lib.contrastive",
            "the InfoNCE explorer: similarity matrix, each row's softmax with the positive outlined, "
            "loss and log N - loss bound", "optional"),
    Chapter(7, "faster_rcnn", "Faster R-CNN: anchors, RPN, RoI pooling/Align, NMS", "course_lib.detection",
            "anchors at a feature cell coloured by their RPN label, and the proposals NMS keeps vs suppresses "
            "at an IoU threshold", "optional"),
    Chapter(8, "deformable_conv", "Deformable convolution: learning where to look", "course_lib.deform",
            "the sampling-offsets visualiser: regular vs deformed 3×3 grid, offsets, bilinear neighbours "
            "and weights, mask sizes", "optional"),
    Chapter(9, "flash_attention", "FlashAttention: online softmax, tiling, Triton", "course_lib.attention",
            "the tiling visualiser: active Q/K/V blocks and the running softmax of one row", "useful",
            (Fallback("The Triton kernel", "triton",
                      'skipped with a message; flash_attention(impl="torch") runs the same algorithm in PyTorch'),
             Fallback("The Triton kernel", "triton-native", "Triton's interpreter on the CPU (slow, exact)"),
             Fallback("Exercise 3: the missing line of the Triton kernel", "triton", "skipped with a message"),
             Fallback("On a GPU: TFLOP/s against PyTorch's SDPA", "cuda", "skipped with a message"))),
    Chapter(10, "medusa", "Medusa speculative decoding on a tiny code model", "course_lib.speculative",
            "the draft-tree viewer: candidate tree, tree mask and accepted path", "optional"),
    Chapter(11, "multi_token_prediction", "Multi-token prediction, DeepSeek-V3 style", "course_lib.mtp",
            "the MTP decoding viewer: drafts accepted or fixed, pass by pass, and tokens per pass", "optional"),
)


def by_notebook(name: str) -> Chapter:
    """The chapter whose notebook is ``name`` (e.g. ``"09_flash_attention"``)."""
    for chapter in CHAPTERS:
        if chapter.notebook == name:
            return chapter
    raise LookupError(f"no chapter has notebook {name!r}; known: {', '.join(c.notebook for c in CHAPTERS)}")
