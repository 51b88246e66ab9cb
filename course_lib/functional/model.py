"""One model, two spellings: ``nn.Module`` layers and a pure function over a parameter dict.

The model is a small MLP classifier with the two layers whose behaviour depends on the mode::

    x (N, D_in) -> Linear -> BatchNorm1d -> ReLU -> Dropout(p) -> Linear -> logits (N, C)

* :class:`Net` is the ``nn.Module`` spelling: layers own their parameters and buffers, and
  ``net.train()`` / ``net.eval()`` switch dropout and batch norm through ``self.training``.
* :func:`net_forward` is the functional spelling: ``(params, buffers, x, training)`` in, logits
  out, calling the very ``torch.nn.functional`` ops the modules call internally, in the same
  order with the same arguments. Outputs and gradients are therefore *bit-identical*
  (``torch.equal``), given the same RNG state for the dropout mask. Keys follow
  ``Net.state_dict()`` (``"fc1.weight"``, ``"bn.running_mean"``), so
  ``dict(net.named_parameters())`` is a valid ``params``.
* :func:`net_forward_naive` is the same function written *without* passing the mode — the
  classic pitfall. The functional defaults disagree with each other:

  ==================  ===================  ==========================================
  op                  default              effect when the mode is not passed
  ==================  ===================  ==========================================
  ``F.dropout``       ``training=True``    dropout stays on after ``model.eval()``
  ``F.batch_norm``    ``training=False``   training normalises with the running stats,
                                           which are never updated
  ==================  ===================  ==========================================

* :class:`FunctionalNet` is an ``nn.Module`` whose ``forward`` calls either function, so the
  pitfall can be seen inside a module that *looks* correct.

Batch norm in training mode (Ioffe & Szegedy, 2015), per feature j over the batch:
``y = (h - mean_B) / sqrt(var_B + eps) * gamma + beta`` with the biased ``var_B``, and the running
statistics ``r <- (1 - momentum) * r + momentum * stat`` using the *unbiased* variance. In eval
mode ``mean_B, var_B`` are replaced by the running statistics. Inverted dropout keeps each unit
with probability ``1 - p`` and scales kept units by ``1 / (1 - p)``.

Notebook: ``02_nn_vs_functional`` (sections "Two spellings" and "The pitfall").
Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _checks
from course_lib._export import export

PARAM_NAMES = ("fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias")
BUFFER_NAMES = ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked")


@export("functional.NetConfig")
@dataclass(frozen=True)
class NetConfig:
    """Sizes and hyper-parameters of :class:`Net` / :func:`net_forward`."""

    in_features: int = 16  # D_in: input features
    hidden: int = 32  # H: width of the hidden layer (batch norm and dropout act here)
    classes: int = 4  # C: output logits
    p_drop: float = 0.5  # dropout probability of zeroing a hidden unit
    momentum: float = 0.1  # batch norm's running-statistics update rate
    eps: float = 1e-5  # batch norm's variance guard

    def __post_init__(self) -> None:
        for name in ("in_features", "hidden", "classes"):
            _checks.integer(name, getattr(self, name), minimum=1)
        _checks.real("p_drop", self.p_drop, minimum=0.0, maximum=1.0)
        _checks.real("momentum", self.momentum, minimum=0.0, maximum=1.0)
        _checks.real("eps", self.eps, minimum=0.0, open_min=True)


@export("functional.Net")
class Net(nn.Module):
    """The module spelling: ``Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear``.

    Args:
        cfg: sizes and hyper-parameters.

    Example:
        >>> net = Net(NetConfig()).eval()
        >>> net(torch.randn(8, 16)).shape
        torch.Size([8, 4])
    """

    def __init__(self, cfg: NetConfig = NetConfig()) -> None:
        super().__init__()
        _checks.instance("cfg", cfg, NetConfig)
        self.cfg = cfg
        self.fc1 = nn.Linear(cfg.in_features, cfg.hidden)
        self.bn = nn.BatchNorm1d(cfg.hidden, eps=cfg.eps, momentum=cfg.momentum)
        self.drop = nn.Dropout(cfg.p_drop)
        self.fc2 = nn.Linear(cfg.hidden, cfg.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (Tensor[N, D_in])`` -> logits ``(Tensor[N, C])``."""
        _check_input(x, self.cfg, self.fc1.weight)
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def _check_input(x: torch.Tensor, cfg: NetConfig, weight: torch.Tensor) -> None:
    _checks.tensor("x", x, ndim=2, floating=True)
    if x.shape[1] != cfg.in_features:
        raise ValueError(f"x must have shape (N, {cfg.in_features}); got {tuple(x.shape)}")
    _checks.same_dtype(x=x, weight=weight)
    _checks.same_device(x=x, weight=weight)


def _check_state(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], cfg: NetConfig) -> None:
    _checks.instance("params", params, dict)
    _checks.instance("buffers", buffers, dict)
    for argument, table, names in (("params", params, PARAM_NAMES), ("buffers", buffers, BUFFER_NAMES[:2])):
        missing = [n for n in names if n not in table]
        if missing:
            raise ValueError(f"{argument} is missing {missing}; it needs the keys {list(names)} "
                             f"(as in Net.state_dict()); got {sorted(table)}")
    expected = {"fc1.weight": (cfg.hidden, cfg.in_features), "fc2.weight": (cfg.classes, cfg.hidden),
                "bn.running_mean": (cfg.hidden,)}
    for name, shape in expected.items():
        got = (params | buffers)[name]
        _checks.tensor(name, got)
        if tuple(got.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {cfg}; got {tuple(got.shape)}")


@export("functional.init_params")
def init_params(cfg: NetConfig = NetConfig(), seed: int = 0,
                dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Fresh ``(params, buffers)`` for :func:`net_forward`, initialised exactly as :class:`Net` is.

    Built by constructing a :class:`Net` under ``torch.manual_seed(seed)`` (inside a forked RNG, so
    the caller's random state is untouched) and detaching its state: one initialisation rule, not two.

    Returns:
        ``params`` (leaf tensors with ``requires_grad=True``) and ``buffers`` (running statistics).
    """
    _checks.instance("cfg", cfg, NetConfig)
    _checks.integer("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Net(cfg).to(dtype)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
    return params, buffers


@export("functional.net_forward")
def net_forward(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                cfg: NetConfig = NetConfig(), *, training: bool) -> torch.Tensor:
    """The functional spelling of :class:`Net`; updates ``buffers`` in place when ``training``.

    Args:
        params: ``"fc1.weight" (Tensor[H, D_in])``, ``"fc1.bias" (Tensor[H])``, ``"bn.weight"``,
            ``"bn.bias" (Tensor[H])``, ``"fc2.weight" (Tensor[C, H])``, ``"fc2.bias" (Tensor[C])``.
        buffers: ``"bn.running_mean"``, ``"bn.running_var" (Tensor[H])`` and optionally
            ``"bn.num_batches_tracked"`` (a 0-d int64 counter, incremented like the module's).
        x (Tensor[N, D_in]): the input batch.
        cfg: the hyper-parameters (dropout p, batch-norm momentum and eps).
        training: the mode — required, keyword-only: forgetting it is the pitfall this chapter is about.

    Returns:
        Tensor[N, C]: logits.

    Raises:
        ValueError: missing keys, wrong shapes, mismatched devices.
        TypeError: non-float input, or dtypes that differ between ``x`` and the weights.
    """
    _checks.instance("training", training, bool)
    _check_state(params, buffers, cfg)
    _check_input(x, cfg, params["fc1.weight"])
    if training and "bn.num_batches_tracked" in buffers:
        buffers["bn.num_batches_tracked"].add_(1)  # nn.BatchNorm1d counts batches the same way
    h = F.linear(x, params["fc1.weight"], params["fc1.bias"])  # (N, H)
    h = F.batch_norm(h, buffers["bn.running_mean"], buffers["bn.running_var"], params["bn.weight"],
                     params["bn.bias"], training, cfg.momentum, cfg.eps)
    h = F.dropout(torch.relu(h), cfg.p_drop, training)
    return F.linear(h, params["fc2.weight"], params["fc2.bias"])  # (N, C)


@export("functional.net_forward_naive")
def net_forward_naive(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                      cfg: NetConfig = NetConfig()) -> torch.Tensor:
    """:func:`net_forward` with the mode left to the ``F.*`` defaults — the pitfall, kept to be shown.

    ``F.dropout`` defaults to ``training=True`` (always dropping) and ``F.batch_norm`` to
    ``training=False`` (always the running statistics, never updated). Do not use it to train.
    """
    _check_state(params, buffers, cfg)
    _check_input(x, cfg, params["fc1.weight"])
    h = F.linear(x, params["fc1.weight"], params["fc1.bias"])
    h = F.batch_norm(h, buffers["bn.running_mean"], buffers["bn.running_var"], params["bn.weight"],
                     params["bn.bias"], momentum=cfg.momentum, eps=cfg.eps)
    h = F.dropout(torch.relu(h), cfg.p_drop)
    return F.linear(h, params["fc2.weight"], params["fc2.bias"])


@export("functional.FunctionalNet")
class FunctionalNet(nn.Module):
    """An ``nn.Module`` whose ``forward`` is written with ``torch.nn.functional`` calls.

    Its parameters and buffers carry :class:`Net`'s names, so ``load_state_dict`` works both ways.

    Args:
        cfg: sizes and hyper-parameters.
        pass_training: ``True`` passes ``training=self.training`` (correct); ``False`` relies on
            the ``F.*`` defaults (:func:`net_forward_naive`), so ``.eval()`` changes nothing.
    """

    def __init__(self, cfg: NetConfig = NetConfig(), pass_training: bool = True) -> None:
        super().__init__()
        _checks.instance("pass_training", pass_training, bool)
        self.cfg = cfg
        self.pass_training = pass_training
        template = Net(cfg)  # the same initialisation rule as the module spelling
        for layer in ("fc1", "bn", "fc2"):
            holder = nn.Module()  # an empty module just to carry "fc1.weight"-style names
            for name, param in template.get_submodule(layer).named_parameters(recurse=False):
                holder.register_parameter(name, nn.Parameter(param.detach().clone()))
            for name, buffer in template.get_submodule(layer).named_buffers(recurse=False):
                holder.register_buffer(name, buffer.detach().clone())
            self.add_module(layer, holder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (Tensor[N, D_in])`` -> logits ``(Tensor[N, C])``."""
        params: dict[str, torch.Tensor] = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        if self.pass_training:
            return net_forward(params, buffers, x, self.cfg, training=self.training)
        return net_forward_naive(params, buffers, x, self.cfg)
