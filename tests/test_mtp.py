"""course_lib.mtp: DeepSeek-V3-style multi-token prediction on the tiny code model.

There is no production MTP in torch to compare with, so each claim is checked against an
independent formulation: the causal chain by perturbing tokens, the loss against the per-depth
logits, incremental (cached) decoding against full recomputation, and MTP decoding against
plain greedy decoding (``course_lib.lm.generate``, itself checked against full recomputation).
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from course_lib.lm import (
    GPT,
    CheckpointError,
    GPTConfig,
    KVCache,
    code_prompts,
    encode,
    generate,
    load_checkpoint,
    load_corpus,
    validation_slice,
)
from course_lib.mtp import (
    MTPDrafter,
    MultiTokenPredictor,
    committed_kinds,
    depth_accuracy,
    load_mtp,
    mtp_decoding_state,
    mtp_decoding_view,
    mtp_decoding_widget,
    mtp_generate,
    mtp_loss,
    save_mtp,
    train_mtp,
)
from course_lib.mtp.exercises import depth_targets, module_input, verify_draft
from course_lib.mtp.experiment import compare_mtp_decoding, draft_agreement, pass_breakdown

TINY = GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=16)


def tiny(seed: int = 0, depth: int = 2) -> tuple[GPT, MultiTokenPredictor]:
    torch.manual_seed(seed)
    model = GPT(TINY).double().eval()
    return model, MultiTokenPredictor(model, depth).double().eval()


def tokens(seed: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def committed() -> tuple[GPT, MultiTokenPredictor, dict]:
    model, _ = load_checkpoint()
    mtp, info = load_mtp(model)
    return model, mtp, info


# --- the chain ------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1, 2, 3, 17])
def test_all_logits_shapes(T):
    model, mtp = tiny(depth=3)
    out = mtp.all_logits(model, tokens(0, 2, T))
    assert [tuple(x.shape) for x in out] == [(2, T - k, 256) for k in range(min(4, T))]
    assert torch.equal(out[0], model(tokens(0, 2, T))[0])  # depth 0 is the main model itself


def test_depth_k_at_position_i_sees_exactly_tokens_up_to_i_plus_k():
    """The causal chain: changing t_j moves depth k's logits at i iff j <= i + k."""
    model, mtp = tiny(depth=3)
    idx = tokens(1, 1, 12)
    before = mtp.all_logits(model, idx)
    for j in (0, 4, 11):
        changed = idx.clone()
        changed[0, j] = (changed[0, j] + 1) % 256
        after = mtp.all_logits(model, changed)
        for k, (b, a) in enumerate(zip(before, after)):
            moved = (b - a).abs().amax(-1)[0] > 1e-12  # (T - k,)
            expected = torch.arange(moved.numel()) + k >= j
            assert torch.equal(moved, expected), (j, k, moved.tolist())


def test_module_with_a_cache_equals_the_whole_sequence_at_once():
    model, mtp = tiny()
    layer = mtp.layers[0]
    h, e = torch.randn(1, 17, 16, dtype=torch.float64), torch.randn(1, 17, 16, dtype=torch.float64)
    full = layer(h, e)
    cache = KVCache(mtp.config, dtype=torch.float64)
    parts = [layer(h[:, a:b], e[:, a:b], cache) for a, b in ((0, 5), (5, 6), (6, 13), (13, 17))]
    assert cache.length == 17
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="the MTP cache holds 48 positions; 17 are used and 40 more came"):
        layer(torch.zeros(1, 40, 16, dtype=torch.float64), torch.zeros(1, 40, 16, dtype=torch.float64), cache)


def test_module_follows_the_deepseek_formula():
    """h'ᵏ = M_k [RMSNorm(h); RMSNorm(e)] written out with torch's own rms_norm, then the block."""
    model, mtp = tiny()
    layer = mtp.layers[0]
    with torch.no_grad():
        for norm in (layer.norm_hidden, layer.norm_embed):
            norm.weight.uniform_(0.5, 1.5)
    h, e = torch.randn(2, 9, 16, dtype=torch.float64), torch.randn(2, 9, 16, dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    x = torch.cat([F.rms_norm(h, (16,), layer.norm_hidden.weight, eps),
                   F.rms_norm(e, (16,), layer.norm_embed.weight, eps)], -1) @ layer.proj.weight.T
    torch.testing.assert_close(layer(h, e), layer.block(x, None, None, 0), rtol=1e-12, atol=1e-12)


# --- training -------------------------------------------------------------------------------

def test_loss_is_the_mean_cross_entropy_of_every_depth_against_its_shifted_targets():
    model, mtp = tiny(depth=3)
    windows = tokens(2, 3, 20)
    logits = mtp.all_logits(model, windows[:, :-1])
    expected = sum(F.cross_entropy(logits[k].reshape(-1, 256), windows[:, k + 1 :].reshape(-1))
                   for k in range(1, 4)) / 3
    torch.testing.assert_close(mtp_loss(model, mtp, windows), expected, rtol=1e-12, atol=1e-12)


def test_loss_gradient_reaches_only_the_modules():
    model, mtp = tiny()
    mtp_loss(model, mtp, tokens(3, 2, 10)).backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mtp.parameters())


def test_training_lowers_the_loss_and_leaves_the_main_model_alone():
    torch.manual_seed(0)
    model, _ = load_checkpoint()
    mtp = MultiTokenPredictor(model, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    windows = validation_slice(load_corpus().val, 4, 65)
    start = mtp_loss(model, mtp, windows).item()
    losses = train_mtp(model, mtp, steps=8, batch_size=1, lr=3e-3, progress=False)
    assert len(losses) == 8 and mtp_loss(model, mtp, windows).item() < start - 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in model.parameters()) and not mtp.training


# --- decoding -------------------------------------------------------------------------------

def _oracle(monkeypatch, mtp: MultiTokenPredictor, plain: torch.Tensor, right) -> None:
    """Make depth 1's draft the true next-next token of ``plain`` when ``right()``, else a wrong one.

    After the module has been fed positions 0 … L-1 (its cache length is L), its draft is for
    the token at index L + 1; the patched forward records L, the patched logits answer."""
    layer, real_forward = mtp.layers[0], mtp.layers[0].forward
    fed = [0]

    def forward(hidden, embedded, cache=None):
        out = real_forward(hidden, embedded, cache)
        fed[0] = cache.length
        return out

    def logits(model, k, hidden):
        truth = int(plain[fed[0] + 1])
        return F.one_hot(torch.tensor(truth if right() else (truth + 1) % 256), 256).double()

    monkeypatch.setattr(layer, "forward", forward)
    monkeypatch.setattr(mtp, "logits", logits)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("pattern", ["real", "always", "alternate", "random"])
def test_mtp_decoding_is_plain_greedy_decoding(monkeypatch, seed, pattern):
    """Lossless, whatever the drafts: untrained (mostly rejected), perfect, alternating, random."""
    model, mtp = tiny(seed, depth=1)
    prompt = tokens(seed, 1 + seed * 3)
    n = TINY.block_size - prompt.numel()
    plain = generate(model, prompt, n)
    rng, calls = random.Random(seed), iter(range(10**6))
    right = {"always": lambda: True, "alternate": lambda: next(calls) % 2 == 0,
             "random": lambda: rng.random() < 0.6}.get(pattern)
    if right is not None:
        _oracle(monkeypatch, mtp, plain, right)
    result = mtp_generate(model, mtp, prompt, n)
    assert torch.equal(result.tokens, plain)
    assert len(result.steps) < n
    if pattern == "real":
        assert result.acceptance_rate < 0.2  # an untrained module guesses badly
    if pattern == "always":
        assert all(s.accepted for s in result.steps) and result.tokens_per_pass == 2.0
    if pattern in ("alternate", "random"):
        assert any(s.accepted for s in result.steps) and not all(s.accepted for s in result.steps)


def test_every_draft_is_the_whole_sequence_depth_1_prediction():
    """Incremental drafting (two KV caches, rollbacks) equals depth 1 run over the final text."""
    model, mtp = tiny(1, depth=1)
    prompt = tokens(5, 6)
    result = mtp_generate(model, mtp, prompt, 30)
    full = mtp.all_logits(model, result.tokens[None])[1][0].argmax(-1)  # position i drafts t_{i+2}
    fed_at = prompt.numel()  # index of the token fed by the first step
    for s in result.steps:
        assert int(result.tokens[fed_at]) == s.fed and s.draft == int(full[fed_at - 1])
        fed_at += len(s.committed)


def test_mtp_generate_bad_input():
    model, mtp = tiny()
    with pytest.raises(ValueError, match="prompt must be one sequence, Tensor\\[T\\]; got shape \\(2, 3\\)"):
        mtp_generate(model, mtp, tokens(0, 2, 3), 5)
    with pytest.raises(ValueError, match="prompt length \\+ max_new_tokens must be <= block_size=48"):
        mtp_generate(model, mtp, tokens(0, 3), 46)
    with pytest.raises(TypeError, match="prompt must have dtype"):
        mtp_generate(model, mtp, torch.zeros(3), 5)
    other = GPT(GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="model must have the shape the MTP modules were built for"):
        mtp_generate(other, mtp, tokens(0, 3), 5)
    with pytest.raises(TypeError, match="model must be GPT; got str"):
        MultiTokenPredictor("gpt")
    with pytest.raises(ValueError, match="depth must be an int in \\[1, inf\\]; got 0"):
        MultiTokenPredictor(model, 0)
    with pytest.raises(ValueError, match="windows must have at least depth \\+ 2 = 4 tokens"):
        mtp_loss(model, mtp, tokens(0, 2, 3))
    with pytest.raises(TypeError, match="windows must have dtype"):
        depth_accuracy(model, mtp, torch.zeros(2, 9))
    assert torch.equal(mtp_generate(model, mtp, tokens(0, 3), 0).tokens, tokens(0, 3))
    assert mtp_generate(model, mtp, tokens(0, 3), 1).steps == []


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model, mtp = tiny()
    path = save_mtp(mtp, tmp_path / "m.pt", note="x")
    loaded, info = load_mtp(model, path)
    assert info["note"] == "x" and info["depth"] == 2
    for (name, a), (_, b) in zip(mtp.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(b.double(), a.half().double(), msg=name)
    with pytest.raises(CheckpointError, match="no MTP modules at .*Train them with: python -m course_lib.mtp.train"):
        load_mtp(model, tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted or do not fit this model. Retrain them with"):
        load_mtp(model, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_mtp(GPT(GPTConfig(block_size=48, n_layer=1, n_head=2, n_embd=32)), path)


# --- the committed modules -------------------------------------------------------------------

def test_committed_modules_reach_their_recorded_accuracy_and_beat_medusa(committed):
    """Depth 1 predicts the same offset as Medusa's first head, but is told the token in between."""
    from course_lib.speculative import head_accuracy, load_heads

    model, mtp, info = committed
    windows = validation_slice(load_corpus().val, 32, model.config.block_size + 1)
    acc = depth_accuracy(model, mtp, windows)
    assert acc.depths == pytest.approx(info["depth_top1"], abs=0.01)
    assert acc.main == pytest.approx(info["main_top1"], abs=1e-6)
    medusa = head_accuracy(model, load_heads(model)[0], windows)
    assert acc.depths[0] > medusa.top1[0] + 0.05 and acc.depths[1] > medusa.top1[1] + 0.1
    assert acc.main > max(acc.depths)  # four layers fold in the newest token better than one or two blocks
    untrained = depth_accuracy(model, MultiTokenPredictor(model, 1), windows)
    assert untrained.depths[0] < 0.2


def test_committed_modules_decode_losslessly_on_held_out_code(committed):
    model, mtp, _ = committed
    model, mtp = model.double(), mtp.double()
    try:
        accepted = steps = 0
        for i, prompt in enumerate(code_prompts(load_corpus().val, 6, 64)):
            for n in (1, 2, 9, 192) if i % 2 else (3, 64):
                result = mtp_generate(model, mtp, prompt, n)
                assert torch.equal(result.tokens, generate(model, prompt, n)), (i, n)
                accepted += sum(s.accepted for s in result.steps)
                steps += len(result.steps)
        assert accepted > steps / 2  # the trained draft is right most of the time
    finally:
        model.float(), mtp.float()


# --- the viewer -----------------------------------------------------------------------------

def test_decoding_view_and_widget(committed):
    model, mtp, _ = committed
    w = mtp_decoding_widget(model, mtp, "def __init__(self", 40)
    first, image = w.caption.value, bytes(w.image.value)
    assert first.startswith("<pre>pass 1 of ") and "tokens per pass" in first
    w.controls["step"].value = w.controls["step"].max
    assert w.caption.value != first and bytes(w.image.value) != image
    result = mtp_generate(model, mtp, encode("def __init__(self"), 40)
    kinds = committed_kinds(result)
    assert len(kinds) == 40 and kinds[0] == "first"
    assert kinds.count("accepted") == kinds.count("bonus") == sum(s.accepted for s in result.steps)
    last = mtp_decoding_view(result, len(result.steps) - 1)
    rate = sum(len(s.committed) for s in result.steps) / len(result.steps)
    assert f"{rate:.2f} tokens per pass" in last.caption and last.figure.axes
    with pytest.raises(ValueError, match="step must be an int in \\[0, "):
        mtp_decoding_view(result, len(result.steps))
    with pytest.raises(ValueError, match="max_new_tokens must be >= 2"):
        mtp_decoding_widget(model, mtp, "x", 1)


# --- exercises ------------------------------------------------------------------------------

def _targets_right(window, k):
    fed = torch.stack([window[i + k] for i in range(window.numel() - 1 - k)]) if window.numel() - 1 - k else window[:0]
    return fed, window[k + 1 :].clone()


@pytest.mark.parametrize("exercise, right, wrongs", [
    (depth_targets, _targets_right, [lambda window, k: (window[k - 1 : -2], window[k:-1]),
                                     lambda window, k: (window[k:], window[k + 1 :])]),
    (verify_draft, lambda draft, main_at_fed, main_at_draft: [main_at_fed] + ([main_at_draft] if draft == main_at_fed else []),
     [lambda draft, main_at_fed, main_at_draft: [draft, main_at_draft],
      lambda draft, main_at_fed, main_at_draft: [main_at_fed]]),
    (module_input, lambda hidden, embedded, w_hidden, w_embed, proj: F.linear(
        torch.cat([F.rms_norm(hidden, hidden.shape[-1:], w_hidden), F.rms_norm(embedded, embedded.shape[-1:], w_embed)],
                  -1), proj),
     [lambda hidden, embedded, w_hidden, w_embed, proj: F.linear(torch.cat([  # LayerNorm: subtracts the mean
         F.layer_norm(hidden, hidden.shape[-1:], w_hidden), F.layer_norm(embedded, embedded.shape[-1:], w_embed)], -1),
         proj),
      lambda hidden, embedded, w_hidden, w_embed, proj: F.linear(torch.cat([  # the halves swapped
          F.rms_norm(embedded, embedded.shape[-1:], w_embed), F.rms_norm(hidden, hidden.shape[-1:], w_hidden)], -1),
          proj)]),
])
def test_exercises_accept_right_and_name_wrong_answers(exercise, right, wrongs):
    assert exercise.check(right, quiet=True).passed
    for wrong in wrongs:
        result = exercise.check(wrong, quiet=True)
        assert not result.passed and result.failing_case is not None
    stub = exercise.check(lambda **kw: (_ for _ in ()).throw(NotImplementedError()), quiet=True)
    assert not stub.attempted and exercise.hints and "def " in exercise.solution()


# --- sampling, measurements, viewer state -----------------------------------------------------


def test_speculative_sampling_with_the_mtp_drafter_samples_the_model_exactly():
    """Chi-square over 2 sampled tokens of a 3-token vocabulary (9 cells), against enumeration."""
    from course_lib.speculative import speculative_sample

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=8)).double().eval()
    mtp = MultiTokenPredictor(model, 1).double().eval()
    with torch.no_grad():
        for p in [*model.parameters(), *mtp.parameters()]:
            p.mul_(3)  # context-dependent distributions, every cell still above 1 %
    prompt, tau = torch.tensor([1, 2, 0]), 0.8
    conts = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # (9, 2)
    with torch.no_grad():
        logits, _ = model(torch.cat([prompt.expand(9, -1), conts], dim=1)[:, :-1])
    logp = torch.log_softmax(logits[:, 2:].double() / tau, dim=-1)  # (9, 2, 3)
    exact = logp.gather(-1, conts[..., None])[..., 0].sum(-1).exp()
    assert float(exact.min()) > 0.01
    gen, counts, accepted = torch.Generator().manual_seed(0), torch.zeros(9), []
    drafter = MTPDrafter(model, mtp)  # one drafter, many generations: its state lives per generation
    for _ in range(500):
        r = speculative_sample(model, drafter, prompt, 2, tau, gen)
        counts[3 * int(r.tokens[3]) + int(r.tokens[4])] += 1
        accepted += r.accepted
    assert 0.05 < sum(accepted) / len(accepted) < 0.95
    expected = exact * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert float(torch.special.gammaincc(torch.tensor(4.0, dtype=torch.float64), torch.tensor(stat / 2))) > 1e-3


def test_draft_agreement_counts_against_truth_and_main_model():
    model, mtp = tiny(0, depth=1)
    windows = tokens(3, 4, 12)
    a = draft_agreement(model, mtp, windows)
    logits = mtp.all_logits(model, windows[:, :-1])
    draft, main, truth = logits[1].argmax(-1), logits[0][:, 1:].argmax(-1), windows[:, 2:]
    assert a.accuracy == pytest.approx((draft == truth).float().mean().item())
    assert a.accuracy == pytest.approx(depth_accuracy(model, mtp, windows).depths[0])
    assert a.agreement == pytest.approx((draft == main).float().mean().item())
    assert a.both_wrong_but_agree <= a.agreement
    with pytest.raises(ValueError, match="at least 3 tokens"):
        draft_agreement(model, mtp, windows[:, :2])


def test_pass_breakdown_and_compare_mtp_decoding():
    model, mtp = tiny(0, depth=1)
    b = pass_breakdown(model, mtp, tokens(1, 6), repeats=3)
    assert b.nodes == 2 and b.cache_len == 6 and list(b.phases) == ["forward", "verify", "draft module"]
    assert b.predicted_speedup(1.5) == pytest.approx(1.5 * b.plain.median / b.step.median)
    stats = compare_mtp_decoding(model, mtp, [tokens(2, 5), tokens(3, 7)], 10, repeats=5)
    assert len(stats.plain.samples) == 5 and stats.speedup == pytest.approx(stats.plain.median / stats.mtp.median)
    assert stats.tokens_per_pass == pytest.approx(1 + stats.acceptance)
    with pytest.raises(ValueError, match="prompt must hold 2 .. block_size - 2"):
        pass_breakdown(model, mtp, tokens(1, 47))


def test_decoding_state_records_draft_main_and_module_inputs():
    model, mtp = tiny(2, depth=1)
    prompt = tokens(4, 5)
    result = mtp_generate(model, mtp, prompt, 20)
    for k, s in enumerate(result.steps):
        st = mtp_decoding_state(result, k)
        assert (st.draft == st.main) == s.accepted == st.accepted
        # the fed token sits at index fed_at of the new tokens; h0 comes from the position before it
        assert int(result.tokens[prompt.numel() + st.fed_at]) == s.fed
        assert st.hidden_position == prompt.numel() + st.fed_at - 1
        assert st.per_pass[-1] == pytest.approx(sum(len(x.committed) for x in result.steps[: k + 1]) / (k + 1))
    assert f"drafted {st.draft!r}" in st.caption
    with pytest.raises(ValueError, match="no decoding steps"):
        mtp_decoding_state(mtp_generate(model, mtp, prompt, 1), 0)


def test_module_input_exercise_is_the_first_half_of_mtp_module_forward():
    model, mtp = tiny(0, depth=1)
    layer = mtp.layers[0]
    with torch.no_grad():
        layer.norm_hidden.weight.normal_()
        layer.norm_embed.weight.normal_()
    h, e = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        expected = layer.proj(torch.cat([layer.norm_hidden(h), layer.norm_embed(e)], dim=-1))
        got = module_input.reference(hidden=h, embedded=e, w_hidden=layer.norm_hidden.weight,
                                     w_embed=layer.norm_embed.weight, proj=layer.proj.weight)
    torch.testing.assert_close(got, expected)
