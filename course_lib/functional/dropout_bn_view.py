"""The chapter's widget: train/eval × module/functional, seen through dropout masks and BN stats.

Both spellings end in the same two calls, ``F.dropout`` and ``F.batch_norm``. The view runs one
forward pass of a small :class:`~course_lib.functional.model.Net` in the chosen spelling and
mode, and *records those calls* with a ``TorchFunctionMode`` (:func:`record_calls`) — the same
interceptor sees ``nn.Dropout`` and a hand-written ``F.dropout``, which is the point: a module is
bookkeeping around the functional op. It shows

* the dropout mask of the hidden layer (kept / dropped / already zero after ReLU), and the
  ``training=`` value ``F.dropout`` actually received;
* batch norm's running mean before and after the pass next to the batch mean, and the
  ``training=`` value ``F.batch_norm`` received.

With ``form="functional, mode not passed"`` the mode toggle changes nothing: dropout stays on
(``F.dropout`` defaults to ``training=True``) and batch norm never updates its statistics
(``F.batch_norm`` defaults to ``training=False``).

Notebook: ``02_nn_vs_functional`` (section "Widget"). Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from course_lib import _checks
from course_lib._export import export
from course_lib.functional.model import Net, NetConfig, net_forward, net_forward_naive
from course_lib.widgets import View, ViewWidget

MODES = ("train", "eval")
FORMS = ("module", "functional", "functional, mode not passed")
VIEW_CONFIG = NetConfig(in_features=8, hidden=24, classes=3, p_drop=0.5)
VIEW_BATCH = 12  # rows of the dropout mask picture
SHOWN_FEATURES = 12  # batch-norm features drawn as bars


@export("functional.RecordedCall")
@dataclass(frozen=True)
class RecordedCall:
    """One intercepted call of a ``torch.nn.functional`` op."""

    name: str  # "dropout" or "batch_norm"
    arguments: dict[str, Any]  # every argument by name, defaults filled in
    output: torch.Tensor  # what it returned, detached


class _Recorder(TorchFunctionMode):
    def __init__(self, ops: tuple[Callable[..., Any], ...]) -> None:
        super().__init__()
        self.ops = ops
        self.calls: list[RecordedCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 — torch's protocol
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in self.ops:
            bound = inspect.signature(func).bind(*args, **kwargs)
            bound.apply_defaults()
            self.calls.append(RecordedCall(func.__name__, dict(bound.arguments), out.detach()))
        return out


@export("functional.record_calls")
def record_calls(fn: Callable[[], Any], ops: tuple[Callable[..., Any], ...] = (F.dropout, F.batch_norm)
                 ) -> tuple[Any, list[RecordedCall]]:
    """Run ``fn()`` and record every call of the given ``torch.nn.functional`` ops inside it.

    Works for modules and hand-written functions alike, since ``nn.Dropout`` and
    ``nn.BatchNorm1d`` call ``F.dropout`` and ``F.batch_norm``.

    Returns:
        ``(fn's result, the recorded calls in order)``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of no arguments; got {type(fn).__name__}")
    with _Recorder(tuple(ops)) as recorder:
        result = fn()
    return result, recorder.calls


def _run(mode: str, form: str, seed: int
         ) -> tuple[dict[str, torch.Tensor], list[RecordedCall], torch.Tensor, torch.Tensor]:
    """One forward pass; returns (state before, recorded calls, running mean before, after)."""
    cfg = VIEW_CONFIG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Net(cfg).train(mode == "train")
        x = 1.5 * torch.randn(VIEW_BATCH, cfg.in_features) + 0.5  # (N, D_in); off-centre, so BN has work
        before = net.bn.running_mean.clone()
        params = {k: v.detach() for k, v in net.named_parameters()}
        buffers = dict(net.named_buffers())  # shared with net: an update shows in net.bn.running_mean
        runs = {
            "module": lambda: net(x),
            "functional": lambda: net_forward(params, buffers, x, cfg, training=mode == "train"),
            "functional, mode not passed": lambda: net_forward_naive(params, buffers, x, cfg),
        }
        with torch.no_grad():
            _, calls = record_calls(runs[form])
    return buffers, calls, before, net.bn.running_mean.clone()


@export("functional.dropout_bn_view")
def dropout_bn_view(mode: str = "train", form: str = "module", seed: int = 0) -> View:
    """The dropout mask and batch-norm statistics of one forward pass, for a mode and a spelling.

    Args:
        mode: ``"train"`` or ``"eval"`` (``net.train()``/``net.eval()``, or ``training=`` passed).
        form: ``"module"``, ``"functional"`` or ``"functional, mode not passed"``.
        seed: picks the weights, the batch and the dropout mask.

    Returns:
        A :class:`~course_lib.widgets.View`; the caption states the ``training=`` each op
        received, the fraction of units dropped and how far the running mean moved.

    Raises:
        ValueError: an unknown ``mode`` or ``form``; a negative ``seed``.
    """
    _checks.one_of("mode", mode, MODES)
    _checks.one_of("form", form, FORMS)
    _checks.integer("seed", seed, minimum=0)
    buffers, calls, before, after = _run(mode, form, seed)
    drop = next(c for c in calls if c.name == "dropout")
    bn = next(c for c in calls if c.name == "batch_norm")
    live = drop.arguments["input"] != 0  # (N, H): units that survived the ReLU
    dropped = live & (drop.output == 0)
    frac = dropped.sum().item() / max(live.sum().item(), 1)
    batch_mean = bn.arguments["input"].mean(dim=0)  # (H,)
    moved = (after - before).abs().max().item()

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    picture = torch.where(dropped, 0.0, torch.where(live, 1.0, 0.5))  # 0 dropped, .5 ReLU zero, 1 kept
    left.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    left.set(xlabel="hidden unit", ylabel="sample")
    left.set_title(f"dropout (training={drop.arguments['training']}): black dropped, grey ReLU zero", fontsize=10)
    k = torch.arange(SHOWN_FEATURES)
    width = 0.28
    right.bar(k - width, batch_mean[:SHOWN_FEATURES].numpy(), width, label="batch mean", color="tab:gray")
    right.bar(k, before[:SHOWN_FEATURES].numpy(), width, label="running mean before", color="tab:blue")
    right.bar(k + width, after[:SHOWN_FEATURES].numpy(), width, label="running mean after", color="tab:orange")
    right.axhline(0, color="black", lw=0.5)
    right.set(xlabel="feature", title=f"batch norm (training={bn.arguments['training']})")
    right.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{form} — {mode} mode")
    fig.tight_layout()

    stats = "the batch's own mean/var" if bn.arguments["training"] else "the running mean/var"
    caption = (
        f"mode={mode}  form={form}\n"
        f"F.dropout received training={drop.arguments['training']}: {dropped.sum().item()} of "
        f"{live.sum().item()} live units dropped ({frac:.0%}, p={VIEW_CONFIG.p_drop})\n"
        f"F.batch_norm received training={bn.arguments['training']}: normalised with {stats}; "
        f"running mean moved by max |Δ|={moved:.4f}; "
        f"num_batches_tracked={int(buffers['bn.num_batches_tracked'])}"
    )
    return View(fig, caption)


@export("functional.dropout_bn_widget")
def dropout_bn_widget(mode: str = "train", form: str = "module", seed: int = 0) -> ViewWidget:
    """Toggles for mode and spelling and a seed slider, wired to :func:`dropout_bn_view`."""
    return ViewWidget(
        dropout_bn_view,
        mode=widgets.ToggleButtons(options=MODES, value=mode, description="mode"),
        form=widgets.ToggleButtons(options=FORMS, value=form, description="form"),
        seed=widgets.IntSlider(value=seed, min=0, max=9, description="seed", continuous_update=False),
    )
