"""A digits classifier trained twice — with our engine and with torch — from the same start.

scikit-learn's ``load_digits`` (1797 8×8 images of handwritten digits, shipped with the
package: nothing to download) is flattened to 64 features in [0, 1]. The model is an MLP

    h = relu(x W₁ + b₁)      logits = h W₂ + b₂      L = mean_i -log_softmax(logits_i)[y_i]

trained by plain minibatch SGD. :func:`mlp_forward` and :func:`cross_entropy` are written once
and run on both engines (our ``Tensor`` mirrors the torch methods they use), the parameters
start from the same arrays (:func:`init_params`, torch ``nn.Linear``'s uniform init) and the
batches come in the same order — so in float64 the two loss curves agree to ~1e-12 for the
first steps; differences come only from the order of floating-point summation. Training runs
on one BLAS/torch thread: the matmuls are tiny, and extra threads only add synchronisation.

Notebook: ``01_autograd`` ("Experiment: the same MLP on both engines"). Tests: ``tests/test_autograd_mlp.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.autograd.grad_mode import no_grad
from course_lib.autograd.tensor import Tensor
from course_lib.runtime import one_thread

Engine = Literal["ours", "torch"]
T = TypeVar("T", Tensor, torch.Tensor)


@export("autograd.DigitsConfig")
@dataclass
class DigitsConfig:
    """How the digits MLP is built and trained."""

    hidden: tuple[int, ...] = (32,)  # widths of the hidden layers
    lr: float = 0.5  # SGD step size
    batch: int = 64  # examples per step
    steps: int = 150  # SGD steps
    seed: int = 0  # seeds the init, the split and the batch order
    test_fraction: float = 0.25  # held out to measure accuracy


@dataclass
class DigitsRun:
    """What one training run produced."""

    losses: list[float]  # training loss before each step
    test_accuracy: float  # after the last step
    params: dict[str, np.ndarray] = field(repr=False)  # final parameters


@export("autograd.load_digits_split")
def load_digits_split(seed: int = 0,
                      test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train (ndarray[N, 64])``, ``y_train (ndarray[N])``, ``x_test``, ``y_test``: pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    _checks.integer("seed", seed, minimum=0)
    _checks.real("test_fraction", test_fraction, minimum=0.0, maximum=1.0, open_min=True)

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target.astype(np.int64)  # (1797, 64), (1797,)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


@export("autograd.init_params")
def init_params(sizes: Sequence[int], seed: int = 0) -> dict[str, np.ndarray]:
    """``W1 (ndarray[sizes[0], sizes[1]])``, ``b1``, ``W2``… drawn from U(-1/√fan_in, 1/√fan_in).

    That is ``torch.nn.Linear``'s default init (weights stored transposed: ``x @ W``).

    Raises:
        ValueError: fewer than two sizes, or a size below 1.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least the input and output widths; got {tuple(sizes)}")
    for i, n in enumerate(sizes):
        _checks.integer(f"sizes[{i}]", n, minimum=1)
    rng = np.random.default_rng(seed)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        bound = 1 / np.sqrt(fan_in)
        params[f"W{i}"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        params[f"b{i}"] = rng.uniform(-bound, bound, fan_out)
    return params


@export("autograd.mlp_forward")
def mlp_forward(params: Mapping[str, T], x: T) -> T:
    """Logits ``(Tensor[B, classes])`` of the MLP for ``x (Tensor[B, features])``, on either engine."""
    n_layers = len(params) // 2
    h = x
    for i in range(1, n_layers + 1):
        h = h @ params[f"W{i}"] + params[f"b{i}"]  # (B, width_i)
        if i < n_layers:
            h = h.relu()
    return h


@export("autograd.cross_entropy")
def cross_entropy(logits: T, y: np.ndarray) -> T:
    """Mean negative log-likelihood of the labels ``y (ndarray[B] of ints)`` under ``logits (Tensor[B, C])``.

    Raises:
        TypeError: ``y`` is not an integer ndarray.
        ValueError: ``logits`` is not 2-d, or ``y`` does not have one label per row.
    """
    _checks.instance("y", y, np.ndarray)
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
    if logits.ndim != 2 or y.shape != (logits.shape[0],):
        raise ValueError(f"logits must be (B, C) and y (B,); got logits {tuple(logits.shape)} and y {y.shape}")
    rows: np.ndarray | torch.Tensor = np.arange(len(y))
    labels: np.ndarray | torch.Tensor = y
    if isinstance(logits, torch.Tensor):
        rows, labels = torch.from_numpy(np.asarray(rows)), torch.from_numpy(y)
    return -logits.log_softmax(dim=1)[rows, labels].mean()  # picks log p(y_i | x_i)


def _to_engine(array: np.ndarray, engine: Engine, requires_grad: bool = False) -> Any:
    if engine == "ours":
        return Tensor(array, requires_grad=requires_grad)
    return torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)


@export("autograd.train_digits")
def train_digits(engine: Engine, config: DigitsConfig | None = None) -> DigitsRun:
    """Train the digits MLP with ``engine`` ("ours" or "torch") by minibatch SGD, in float64.

    Raises:
        ValueError: an unknown engine, or a config with non-positive sizes or steps.
    """
    _checks.one_of("engine", engine, ("ours", "torch"))
    cfg = DigitsConfig() if config is None else _checks.instance("config", config, DigitsConfig)
    for width in cfg.hidden:
        _checks.integer("config.hidden[i]", width, minimum=1)
    _checks.integer("config.batch", cfg.batch, minimum=1)
    _checks.integer("config.steps", cfg.steps, minimum=0)
    x_train, y_train, x_test, y_test = load_digits_split(cfg.seed, cfg.test_fraction)
    init = init_params((x_train.shape[1], *cfg.hidden, 10), cfg.seed)
    params: dict[str, Any] = {k: _to_engine(v, engine, requires_grad=True) for k, v in init.items()}
    rng = np.random.default_rng(cfg.seed + 1)  # the batch order, shared by both engines
    losses = []
    with one_thread():
        for _ in range(cfg.steps):
            idx = rng.choice(len(x_train), size=cfg.batch, replace=False)
            loss: Any = cross_entropy(mlp_forward(params, _to_engine(x_train[idx], engine)), y_train[idx])
            loss.backward()
            losses.append(loss.item())
            _sgd_step(params, cfg.lr)
    final = {k: (p.data if engine == "ours" else p.detach().numpy()).copy() for k, p in params.items()}
    logits = mlp_forward({k: Tensor(v) for k, v in final.items()}, Tensor(x_test))
    accuracy = float((logits.data.argmax(axis=1) == y_test).mean())
    return DigitsRun(losses, accuracy, final)


def _sgd_step(params: Mapping[str, Any], lr: float) -> None:
    """``p -= lr · p.grad`` outside the graph, then clear ``.grad`` (it would accumulate)."""
    for p in params.values():
        if isinstance(p, torch.Tensor):
            assert p.grad is not None  # every parameter is used by the loss
            with torch.no_grad():
                p -= lr * p.grad
        else:
            with no_grad():
                p.data -= lr * p.grad.data
        p.grad = None
