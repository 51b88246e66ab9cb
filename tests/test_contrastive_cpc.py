"""course_lib.contrastive.cpc: the data, the CPC scores and loss against F.cross_entropy and a
loop, causality of the context, and a short training run measured against chance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.contrastive import CPC, CPCConfig, linear_probe_r2, oscillator_batch, train_cpc

SMALL = CPCConfig(frames=7, frame_len=5, z_dim=3, c_dim=4, max_k=3, batch=5)


def test_oscillator_batch_shapes_range_and_seed():
    frames, omega = oscillator_batch(17, SMALL, torch.Generator().manual_seed(0))
    assert frames.shape == (17, 7, 5) and omega.shape == (17,)
    assert ((SMALL.omega_min <= omega) & (omega <= SMALL.omega_max)).all()
    again, _ = oscillator_batch(17, SMALL, torch.Generator().manual_seed(0))
    assert torch.equal(frames, again)
    # Without noise the signal is exactly sin(phase): amplitude 1.
    clean, _ = oscillator_batch(3, CPCConfig(obs_noise=0.0), torch.Generator().manual_seed(1))
    assert clean.abs().max() <= 1.0


def test_step_logits_match_a_loop():
    torch.manual_seed(0)
    model = CPC(SMALL).double()
    frames, _ = oscillator_batch(3, SMALL, torch.Generator().manual_seed(0))
    z, c = model(frames.double())
    for k in (1, 3):
        logits = model.step_logits(z, c, k)
        assert logits.shape == (7 - k, 3, 3)
        w = model.predictors[k - 1].weight  # (z_dim, c_dim)
        for t in range(7 - k):
            for i in range(3):
                for j in range(3):
                    expected = z[j, t + k] @ (w @ c[i, t])
                    torch.testing.assert_close(logits[t, i, j], expected)


def test_loss_matches_cross_entropy_forward_and_backward():
    torch.manual_seed(0)
    model = CPC(SMALL).double()
    frames, _ = oscillator_batch(5, SMALL, torch.Generator().manual_seed(2))
    frames = frames.double()
    loss, accuracy = model.loss_and_accuracy(frames)
    z, c = model(frames)
    expected, expected_acc = 0.0, []
    for k in range(1, 4):
        logits = model.step_logits(z, c, k)  # (T-k, B, B)
        target = torch.arange(5)
        expected = expected + torch.stack([F.cross_entropy(lt, target) for lt in logits]).mean()
        expected_acc.append((logits.argmax(-1) == target).double().mean())
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(accuracy, torch.stack(expected_acc).float())
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_context_only_sees_the_past():
    torch.manual_seed(0)
    model = CPC(SMALL)
    frames, _ = oscillator_batch(2, SMALL, torch.Generator().manual_seed(3))
    changed = frames.clone()
    changed[:, 4:] += 1.0  # alter frames 4..6
    _, c = model(frames)
    _, c_changed = model(changed)
    torch.testing.assert_close(c[:, :4], c_changed[:, :4])
    assert not torch.allclose(c[:, 4:], c_changed[:, 4:])


def test_training_beats_chance_and_accuracy_falls_with_k():
    config = CPCConfig(steps=100, batch=32, frames=16, max_k=4)
    result = train_cpc(config, seed=0)
    acc = result.accuracy
    # Measured (seed 0): accuracy 0.22, 0.12, 0.08, 0.08 for k = 1..4; chance 1/32 = 0.031.
    assert result.losses[-1] < result.losses[0]
    assert acc[0] > 4 * result.chance and acc[-1] > result.chance
    assert acc[0] > acc[1] > acc[-1]
    # Measured: R² = 0.97 trained vs 0.45 for the same architecture untrained.
    trained = linear_probe_r2(result.model, n_train=512, n_test=256)
    torch.manual_seed(0)
    untrained = linear_probe_r2(CPC(config), n_train=512, n_test=256)
    assert trained > 0.8 and trained > untrained + 0.2


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"n must be an int in \[1, inf\]; got 0"):
        oscillator_batch(0)
    with pytest.raises(TypeError, match="config must be CPCConfig; got dict"):
        train_cpc({"steps": 1})
    with pytest.raises(TypeError, match="model must be CPC; got NoneType"):
        linear_probe_r2(None)
