"""Medusa-2's combined loss and learning-rate recipe (course_lib.speculative.medusa_training).

The loss is checked against the paper's formula (Cai et al. 2024, §2.2.2 and eq. 1) written out
with explicit per-position loops over the logits — L_LM + λ₀ Σ_k 0.8^k L_k — and against the
Medusa-1 loss it extends; the gradient against what each term should reach.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.lm import GPT, GPTConfig
from course_lib.speculative import Medusa2Recipe, MedusaHeads, medusa2_loss
from course_lib.speculative.medusa_training import medusa_loss

TINY = GPTConfig(block_size=32, n_layer=2, n_head=2, n_embd=16)


def tiny(seed: int = 0, num_heads: int = 3) -> tuple[GPT, MedusaHeads]:
    torch.manual_seed(seed)
    model = GPT(TINY).double()
    heads = MedusaHeads(model, num_heads).double()
    with torch.no_grad():
        for p in heads.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model, heads


def batch(seed: int, B: int, T: int) -> torch.Tensor:
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def nll(logits: torch.Tensor, target: int) -> float:
    return -float(torch.log_softmax(logits.detach(), -1)[target])


@pytest.mark.parametrize("T, lambda0", [(3, 0.2), (5, 1.0), (13, 0.0), (13, 0.37)])
def test_combined_loss_is_the_paper_formula_written_out(T, lambda0):
    model, heads = tiny(T)
    x = batch(T, 2, T)
    logits, hidden = model(x[:, :-1])
    head_logits = heads(hidden)  # (K, B, T - 1, V)
    lm = sum(nll(logits[b, t], int(x[b, t + 1])) for b in range(2) for t in range(T - 1)) / (2 * (T - 1))
    per_head = []
    for k in range(heads.num_heads):
        terms = [nll(head_logits[k, b, t], int(x[b, t + 2 + k])) for b in range(2) for t in range(T - 2 - k)]
        if terms:
            per_head.append(sum(terms) / len(terms))
    out = medusa2_loss(model, heads, x, lambda0)
    assert out.total.item() == pytest.approx(lm + lambda0 * sum(0.8**k * v for k, v in enumerate(per_head)), rel=1e-12)
    assert out.lm.item() == pytest.approx(lm, rel=1e-12)
    assert [v.item() for v in out.heads] == pytest.approx(per_head, rel=1e-12)
    assert (out.lambda0, out.decay) == (lambda0, 0.8)


def test_heads_term_is_the_medusa1_loss():
    model, heads = tiny(1)
    x = batch(1, 3, 17)
    out = medusa2_loss(model, heads, x, lambda0=0.5)
    torch.testing.assert_close(out.total - out.lm, 0.5 * medusa_loss(model, heads, x), rtol=1e-12, atol=1e-12)


def test_gradient_reaches_the_backbone_unlike_medusa1():
    model, heads = tiny(2)
    x = batch(2, 2, 12)
    medusa2_loss(model, heads, x).total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())
    model.zero_grad(set_to_none=True)
    medusa_loss(model, heads, x).backward()
    assert all(p.grad is None for p in model.parameters())


def test_lambda0_zero_leaves_the_heads_without_gradient():
    model, heads = tiny(3)
    medusa2_loss(model, heads, batch(3, 2, 9), lambda0=0.0).total.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in heads.parameters())


def test_bad_input():
    model, heads = tiny()
    with pytest.raises(ValueError, match="batch must have at least 3 tokens per window"):
        medusa2_loss(model, heads, batch(0, 2, 2))
    with pytest.raises(TypeError, match="batch must have dtype"):
        medusa2_loss(model, heads, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="lambda0"):
        medusa2_loss(model, heads, batch(0, 2, 5), lambda0=-0.1)
    with pytest.raises(ValueError, match="decay"):
        medusa2_loss(model, heads, batch(0, 2, 5), decay=1.5)
    with pytest.raises(TypeError, match="heads must be MedusaHeads"):
        medusa2_loss(model, "heads", batch(0, 2, 5))


def test_recipe_warms_the_heads_up_then_trains_the_backbone_slower():
    r = Medusa2Recipe(lr=2e-3, warmup_steps=10)
    assert [r.learning_rates(s) for s in (0, 9)] == [(2e-3, 0.0)] * 2
    assert r.learning_rates(10) == (2e-3, pytest.approx(5e-4)) and r.learning_rates(10**6)[1] == pytest.approx(5e-4)
    assert Medusa2Recipe(lr=1.0, warmup_steps=0).learning_rates(0) == (1.0, 0.25)
    with pytest.raises(ValueError, match="warmup_steps"):
        Medusa2Recipe(lr=1.0, warmup_steps=-1)
    with pytest.raises(ValueError, match="lr"):
        Medusa2Recipe(lr=0.0, warmup_steps=1)
    with pytest.raises(ValueError, match="backbone_lr_ratio"):
        Medusa2Recipe(lr=1.0, warmup_steps=1, backbone_lr_ratio=2.0)
    with pytest.raises(ValueError, match="step"):
        r.learning_rates(-1)
    assert math.isclose(Medusa2Recipe(lr=1.0, warmup_steps=1).lambda0, 0.2)
