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

Shape of every widget module: :func:`dropout_bn_state` (pure, tested without matplotlib),
:func:`dropout_bn_view` (draws it), :func:`dropout_bn_widget` (the controls); matplotlib and
ipywidgets are imported inside the last two.

Notebook: ``02_nn_vs_functional`` (section "Widget"). Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from course_lib import _checks
from course_lib._export import export
from course_lib.functional.model import Net, NetConfig, net_forward, net_forward_naive
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib._view_widget import ViewWidget

MODES = ("train", "eval")
FORMS = ("module", "functional", "functional, mode not passed")
FORM_TOOLTIPS = (  # shown on hover: the labels are short, what they mean is not
    "nn.Module: net.train() / net.eval() set self.training, which Dropout and BatchNorm1d pass on",
    "net_forward(params, buffers, x, training=...): the mode passed explicitly",
    "net_forward_naive: F.dropout and F.batch_norm called with their defaults, the mode never passed",
)
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
        running = net.bn.running_mean
        assert running is not None  # track_running_stats=True, BatchNorm1d's default
        before = running.clone()
        params = {k: v.detach() for k, v in net.named_parameters()}
        buffers = dict(net.named_buffers())  # shared with net: an update shows in net.bn.running_mean
        runs = {
            "module": lambda: net(x),
            "functional": lambda: net_forward(params, buffers, x, cfg, training=mode == "train"),
            "functional, mode not passed": lambda: net_forward_naive(params, buffers, x, cfg),
        }
        with torch.no_grad():
            _, calls = record_calls(runs[form])
    return buffers, calls, before, running.clone()


@export("functional.DropoutBNState")
@dataclass(frozen=True)
class DropoutBNState:
    """What one forward pass did to dropout and batch norm (pure data: no matplotlib)."""

    mode: str  # "train" or "eval"
    form: str  # one of FORMS
    dropout_training: bool  # the training= F.dropout received
    bn_training: bool  # the training= F.batch_norm received
    mask: torch.Tensor  # (N, H): 1 kept, 0.5 zero after ReLU, 0 dropped
    dropped: int  # live units dropout zeroed
    live: int  # units that survived the ReLU
    batch_mean: torch.Tensor  # (H,): the batch's mean of the batch-norm input
    running_before: torch.Tensor  # (H,): running mean before the pass
    running_after: torch.Tensor  # (H,): running mean after the pass
    num_batches_tracked: int  # batch norm's counter after the pass
    caption: str  # the same in words and numbers

    @property
    def moved(self) -> float:
        """How far the running mean moved: max |after - before|."""
        return (self.running_after - self.running_before).abs().max().item()


@export("functional.dropout_bn_state")
def dropout_bn_state(mode: str = "train", form: str = "module", seed: int = 0) -> DropoutBNState:
    """One forward pass of the view's :class:`~course_lib.functional.model.Net` in ``form`` and ``mode``.

    Args:
        mode: ``"train"`` or ``"eval"`` (``net.train()``/``net.eval()``, or ``training=`` passed).
        form: ``"module"``, ``"functional"`` or ``"functional, mode not passed"``.
        seed: picks the weights, the batch and the dropout mask.

    Returns:
        A :class:`DropoutBNState`; the caption states the ``training=`` each op received, the
        fraction of live units dropped and how far the running mean moved.

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
    mask = torch.where(dropped, 0.0, torch.where(live, 1.0, 0.5))  # (N, H)
    n_dropped, n_live = int(dropped.sum()), int(live.sum())
    share = f"{n_dropped / n_live:.0%}" if n_live else "no live units"  # no max(1, n): 0 of 0 is not 0 %
    stats = "the batch's own mean/var" if bn.arguments["training"] else "the running mean/var"
    moved = (after - before).abs().max().item()
    caption = (
        f"mode={mode}  form={form}\n"
        f"F.dropout received training={drop.arguments['training']}: {n_dropped} of "
        f"{n_live} live units dropped ({share}, p={VIEW_CONFIG.p_drop})\n"
        f"F.batch_norm received training={bn.arguments['training']}: normalised with {stats}; "
        f"running mean moved by max |Δ|={moved:.4f}; "
        f"num_batches_tracked={int(buffers['bn.num_batches_tracked'])}"
    )
    return DropoutBNState(mode, form, bool(drop.arguments["training"]), bool(bn.arguments["training"]), mask,
                          n_dropped, n_live, bn.arguments["input"].mean(dim=0), before, after,
                          int(buffers["bn.num_batches_tracked"]), caption)


@export("functional.dropout_bn_view")
def dropout_bn_view(mode: str = "train", form: str = "module", seed: int = 0) -> View:
    """Draw :func:`dropout_bn_state`: the dropout mask (left), batch-norm means (right).

    Same arguments and errors as :func:`dropout_bn_state`; the caption is the state's.
    """
    import matplotlib.pyplot as plt

    s = dropout_bn_state(mode, form, seed)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.3), gridspec_kw={"width_ratios": [1, 1.25]})
    left.imshow(s.mask.numpy(), cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    left.set(xlabel="hidden unit", ylabel="sample")
    left.set_title(f"dropout (training={s.dropout_training})\nblack dropped, grey zero after ReLU", fontsize=9)
    k = torch.arange(SHOWN_FEATURES)
    width = 0.28
    right.bar(k - width, s.batch_mean[:SHOWN_FEATURES].numpy(), width, label="batch mean", color="tab:gray")
    right.bar(k, s.running_before[:SHOWN_FEATURES].numpy(), width, label="running mean before", color="tab:blue")
    right.bar(k + width, s.running_after[:SHOWN_FEATURES].numpy(), width, label="running mean after",
              color="tab:orange")
    right.axhline(0, color="black", lw=0.5)
    right.set_xticks(range(0, SHOWN_FEATURES, 2))  # integer features
    right.set(xlabel="feature")
    right.set_title(f"batch norm (training={s.bn_training})", fontsize=9)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the data
    fig.suptitle(f"{s.form}: {s.mode} mode", fontsize=10)
    fig.tight_layout()
    return View(fig, s.caption)


@export("functional.dropout_bn_widget")
def dropout_bn_widget(mode: str = "train", form: str = "module", seed: int = 0) -> ViewWidget:
    """Toggles for mode and spelling and a seed slider, wired to :func:`dropout_bn_view`.

    The spelling buttons size to their labels (``button_width="auto"``, so "functional, mode not
    passed" is shown whole) and explain themselves on hover.
    """
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    return ViewWidget(
        dropout_bn_view,
        mode=widgets.ToggleButtons(options=MODES, value=mode, description="mode",
                                   tooltips=["net.train() / training=True", "net.eval() / training=False"],
                                   style={"button_width": "auto"}),
        form=widgets.ToggleButtons(options=FORMS, value=form, description="form", tooltips=list(FORM_TOOLTIPS),
                                   style={"button_width": "auto"}),
        seed=widgets.IntSlider(value=seed, min=0, max=9, step=1, description="seed", continuous_update=False),
    )
