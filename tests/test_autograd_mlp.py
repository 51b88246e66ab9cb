"""The digits MLP on both engines from the same init, and the cheap-gradient measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.autograd import (
    DigitsConfig,
    Tensor,
    cross_entropy,
    init_params,
    load_digits_split,
    mlp_forward,
    train_digits,
)
from course_lib.autograd.experiment import gradient_cost, matmul_flop_ratio


def test_same_init_same_losses_on_both_engines():
    cfg = DigitsConfig(hidden=(17, 13), steps=25, batch=31, lr=0.3, seed=3)
    ours, ref = train_digits("ours", cfg), train_digits("torch", cfg)
    assert len(ours.losses) == 25
    assert np.allclose(ours.losses, ref.losses, rtol=0, atol=1e-10)
    assert ours.losses[-1] < ours.losses[0]  # it learns
    for k in ref.params:
        assert np.allclose(ours.params[k], ref.params[k], atol=1e-10)


def test_short_training_beats_chance_by_far():
    run = train_digits("ours", DigitsConfig(steps=60))
    assert run.test_accuracy > 0.8  # chance is 0.1


def test_forward_and_loss_match_torch_functional():
    x_train, y_train, _, _ = load_digits_split(0)
    params = init_params((64, 97, 10), seed=1)
    x, y = x_train[:57], y_train[:57]
    ours = cross_entropy(mlp_forward({k: Tensor(v) for k, v in params.items()}, Tensor(x)), y)
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    logits = torch.relu(torch.from_numpy(x) @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
    assert ours.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item(), rel=1e-13)


def test_init_is_torch_linear_bounds_and_data_split():
    params = init_params((64, 32, 10), seed=0)
    assert params["W1"].shape == (64, 32) and params["b2"].shape == (10,)
    assert np.abs(params["W1"]).max() <= 1 / 8 and np.abs(params["W2"]).max() <= 1 / np.sqrt(32)
    x_train, y_train, x_test, y_test = load_digits_split(0)
    assert len(x_train) + len(x_test) == 1797 and x_train.shape[1] == 64 and 0 <= x_train.min() and x_train.max() <= 1
    assert set(np.unique(y_test)) == set(range(10))


def test_gradient_cost_measures_both_engines():
    for engine in ("ours", "torch"):
        cost = gradient_cost(16, engine, batch=8, repeats=2)
        assert cost.forward_s > 0 and cost.forward_backward_s > 0 and cost.ratio == cost.forward_backward_s / cost.forward_s
    assert torch.get_num_threads() >= 1  # restored after timing on one thread


def test_matmul_flop_ratio_tends_to_three():
    assert matmul_flop_ratio((10, 10), batch=4) == 2.0  # one layer: no ∂X needed
    assert 2.9 < matmul_flop_ratio((64, 4096, 4096, 10), batch=64) < 3.0


def test_bad_input():
    with pytest.raises(ValueError, match="engine must be one of 'ours', 'torch'; got 'jax'"):
        train_digits("jax")
    with pytest.raises(TypeError, match="config must be DigitsConfig; got dict"):
        train_digits("ours", {"steps": 3})
    with pytest.raises(ValueError, match=r"config.batch must be an int in \[1, inf\]; got 0"):
        train_digits("ours", DigitsConfig(batch=0))
    with pytest.raises(ValueError, match=r"width must be an int in \[1, inf\]; got 0"):
        gradient_cost(0)
    with pytest.raises(TypeError, match="repeats must be an int; got float"):
        gradient_cost(8, repeats=2.0)
    with pytest.raises(ValueError, match=r"sizes must list at least the input and output widths; got \(64,\)"):
        init_params((64,))
    with pytest.raises(ValueError, match=r"sizes\[1\] must be an int in \[1, inf\]; got 0"):
        init_params((64, 0, 10))
    logits = Tensor(np.zeros((3, 10)))
    with pytest.raises(TypeError, match="y must hold integer class labels; got dtype float64"):
        cross_entropy(logits, np.zeros(3))
    with pytest.raises(ValueError, match=r"logits must be \(B, C\) and y \(B,\); got logits \(3, 10\) and y \(4,\)"):
        cross_entropy(logits, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"test_fraction must be a number in \(0.0, 1.0\]; got 1.5"):
        load_digits_split(0, 1.5)
    with pytest.raises(ValueError, match="matmul: shapes"):
        mlp_forward({k: Tensor(v) for k, v in init_params((64, 8, 10)).items()}, Tensor(np.zeros((2, 63))))
