"""Tests for course_lib.lm: tokenizer, corpus, GPT with KV cache and mask, generation, checkpoints.

The model is checked against a slow reference forward pass written out here (explicit masked
softmax attention per head), cached decoding against full recomputation, and the committed
checkpoint against the validation loss stored with it.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.lm import (
    DEFAULT_CHECKPOINT,
    GPT,
    AddonConfig,
    CheckpointError,
    GPTConfig,
    KVCache,
    TrainConfig,
    code_prompts,
    continuation_nll,
    decode,
    encode,
    evaluate,
    generate,
    load_checkpoint,
    load_corpus,
    repetition_rate,
    save_checkpoint,
    train_model,
    validation_slice,
)
from course_lib.lm.training import learning_rate

TINY = GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=16)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float64) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY).to(dtype).eval()


# ---------------------------------------------------------------- tokenizer and corpus


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40))
def test_encode_decode_round_trip(text):
    tokens = encode(text)
    assert tokens.dtype == torch.long and tokens.numel() == len(text.encode("utf-8"))
    assert decode(tokens) == text and decode(tokens.tolist()) == text


def test_tokenizer_bad_input():
    with pytest.raises(TypeError, match="text must be str"):
        encode(b"bytes")
    with pytest.raises(ValueError, match=r"byte values in \[0, 256\); got 300"):
        decode([65, 300])
    with pytest.raises(ValueError, match="tokens must have 1 dims"):
        decode(torch.zeros(2, 2, dtype=torch.long))


def test_corpus_split_is_by_file_deterministic_and_disjoint():
    corpus = load_corpus()
    assert set(corpus.train_files).isdisjoint(corpus.val_files)
    assert len(corpus.val_files) >= 5 and corpus.val.numel() > 100_000
    assert 0.01 < corpus.val.numel() / (corpus.train.numel() + corpus.val.numel()) < 0.2
    assert not any(part in ("test", "tests") for f in corpus.train_files for part in f.split("/"))
    assert load_corpus() is corpus  # cached
    # the split depends only on the file's path: recompute it from the names
    from course_lib.lm.corpus import _is_val

    assert all(_is_val(f, 0.05) for f in corpus.val_files)
    assert not any(_is_val(f, 0.05) for f in corpus.train_files)
    assert corpus.train_files == tuple(sorted(corpus.train_files))


def test_validation_slice_is_evenly_spaced_and_checked():
    data = torch.arange(100, dtype=torch.uint8)
    windows = validation_slice(data, 3, 10)
    assert windows.tolist() == [list(range(0, 10)), list(range(45, 55)), list(range(90, 100))]
    with pytest.raises(ValueError, match="at least length=200"):
        validation_slice(data, 2, 200)
    with pytest.raises(ValueError, match="val_fraction"):
        load_corpus(val_fraction=0.9)


# ---------------------------------------------------------------- the model


def reference_forward(model: GPT, idx: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The GPT written out per head with an explicit masked softmax (the spec): logits [B, T, V]."""
    cfg = model.config
    H, C = cfg.n_head, cfg.n_embd
    x = model.wte.weight[idx] + model.wpe.weight[positions]
    for block in model.blocks:
        h = F.layer_norm(x, (C,), block.ln_1.weight, block.ln_1.bias)
        q, k, v = (h @ block.attn.c_attn.weight.T + block.attn.c_attn.bias).split(C, dim=-1)
        heads = []
        for head in range(H):
            sl = slice(head * C // H, (head + 1) * C // H)
            scores = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(C // H)
            scores = scores.masked_fill(~mask, float("-inf"))
            heads.append(torch.softmax(scores, dim=-1) @ v[..., sl])
        x = x + torch.cat(heads, dim=-1) @ block.attn.c_proj.weight.T + block.attn.c_proj.bias
        h = F.layer_norm(x, (C,), block.ln_2.weight, block.ln_2.bias)
        hidden = F.gelu(h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias)
        x = x + hidden @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    x = F.layer_norm(x, (C,), model.ln_f.weight, model.ln_f.bias)
    return x @ model.wte.weight.T


@pytest.mark.parametrize("T", [1, 17, 48])
def test_forward_matches_reference_and_is_causal(T):
    model = tiny_model()
    idx = torch.randint(0, 256, (2, T))
    logits, hidden = model(idx)
    assert logits.shape == (2, T, 256) and hidden.shape == (2, T, TINY.n_embd)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    torch.testing.assert_close(logits, reference_forward(model, idx, causal, torch.arange(T)))
    # changing the last token changes nothing before it
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 256
    torch.testing.assert_close(model(changed)[0][:, :-1], logits[:, :-1])
    # an explicit causal mask is the default
    torch.testing.assert_close(model(idx, attn_mask=causal)[0], logits)


def test_tied_embeddings_and_parameter_count():
    model = GPT(TINY)
    assert model.lm_head.weight is model.wte.weight
    C, L = TINY.n_embd, TINY.n_layer
    per_block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert model.num_params() == 256 * C + L * per_block + 2 * C


@pytest.mark.parametrize("chunks", [[48], [1] * 10, [5, 1, 11, 2], [17, 13, 1, 1, 16]])
def test_kv_cache_in_chunks_equals_full_forward(chunks):
    model = tiny_model(1)
    T = sum(chunks)
    idx = torch.randint(0, 256, (3, T))
    full, _ = model(idx)
    cache = KVCache(TINY, batch_size=3, dtype=torch.float64)
    parts, start = [], 0
    for n in chunks:
        parts.append(model(idx[:, start : start + n], cache=cache)[0])
        start += n
    assert cache.length == T
    torch.testing.assert_close(torch.cat(parts, dim=1), full)


def test_cache_compact_keeps_selected_positions():
    model = tiny_model(2)
    cache = KVCache(TINY, dtype=torch.float64)
    idx = torch.randint(0, 256, (1, 12))
    model(idx[:, :4], cache=cache)
    # append 8 tokens as siblings (each sees only the prefix), keep positions 2 and 5 of them
    k_before = cache.k.clone()
    model(idx[:, 4:], cache=cache, attn_mask=torch.eye(8, dtype=torch.bool), positions=torch.full((8,), 4))
    appended = cache.k[:, :, :, 4:12].clone()
    cache.compact(4, torch.tensor([2, 5]))
    assert cache.length == 6
    torch.testing.assert_close(cache.k[:, :, :, :4], k_before[:, :, :, :4])
    torch.testing.assert_close(cache.k[:, :, :, 4:6], appended[:, :, :, [2, 5]])
    with pytest.raises(ValueError, match="keep must index positions"):
        cache.compact(4, torch.tensor([3]))


def test_model_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="positions must lie in"):
        model(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"positions must lie in \[0, block_size=48\); got T=2 new tokens at "
                                         r"positions -1\.\.0"):
        model(torch.zeros(1, 2, dtype=torch.long), positions=torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="positions must have dtype"):
        model(torch.zeros(1, 2, dtype=torch.long), positions=torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="keep must have dtype"):
        KVCache(TINY).compact(0, torch.tensor([True]))
    with pytest.raises(TypeError, match="idx must have dtype"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="attn_mask must have size|attn_mask has T"):
        model(torch.zeros(1, 3, dtype=torch.long), attn_mask=torch.ones(4, 4, dtype=torch.bool))
    cache = KVCache(TINY, batch_size=2, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch size 1 but the cache was made for 2"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="n_embd must be divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("seed", range(4))
def test_greedy_with_cache_equals_full_recomputation(seed):
    model = tiny_model(seed)
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, 256, (int(torch.randint(1, 20, (1,), generator=gen)),), generator=gen)
    n = TINY.block_size - prompt.numel()
    cached, full = generate(model, prompt, n), generate(model, prompt, n, use_cache=False)
    assert cached.shape == (TINY.block_size,) and torch.equal(cached[: prompt.numel()], prompt)
    assert torch.equal(cached, full)
    # and greedy means: each token is the argmax of the full forward pass over what precedes it
    logits, _ = model(cached[None, :-1])
    assert torch.equal(logits[0, prompt.numel() - 1 :].argmax(-1), cached[prompt.numel() :])


def test_sampling_with_cache_equals_full_recomputation_and_respects_top_k():
    model = tiny_model(3)
    prompt = torch.randint(0, 256, (2, 5))
    runs = [generate(model, prompt, 30, temperature=1.3, top_k=7, generator=torch.Generator().manual_seed(0),
                     use_cache=c) for c in (True, False)]
    assert runs[0].shape == (2, 35) and torch.equal(runs[0], runs[1])
    logits, _ = model(runs[0][:, :-1])
    top7 = logits[:, 4:].topk(7, dim=-1).indices  # (2, 30, 7)
    assert (top7 == runs[0][:, 5:, None]).any(-1).all()
    other = generate(model, prompt, 30, temperature=1.3, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other, runs[0])


def test_generate_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="prompt is longer than the context: 49 tokens > block_size=48"):
        generate(model, torch.zeros(49, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="prompt length \\+ max_new_tokens must be <= block_size=48"):
        generate(model, torch.zeros(40, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="empty prompt"):
        generate(model, torch.zeros(0, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="prompt must have dtype"):
        generate(model, torch.zeros(3), 3)
    with pytest.raises(ValueError, match="top_k must be an int in \\[1, 256\\]"):
        generate(model, torch.zeros(3, dtype=torch.long), 3, temperature=1.0, top_k=300)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, torch.zeros(3, dtype=torch.long), 3, temperature=-1.0)


# ---------------------------------------------------------------- checkpoints and training


def test_missing_and_corrupted_checkpoints_say_how_to_retrain(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*python -m course_lib.lm.train"):
        load_checkpoint(tmp_path / "nothing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted or unreadable.*python -m course_lib.lm.train"):
        load_checkpoint(bad)
    torch.save({"something": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a tiny-code-LM checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    good = save_checkpoint(GPT(TINY), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="Retrain it with"):
        load_checkpoint(truncated)


def test_save_load_round_trip_is_fp16_exact(tmp_path):
    model = GPT(TINY)
    path = save_checkpoint(model, tmp_path / "m.pt", val_loss=1.5, note="hello")
    loaded, info = load_checkpoint(path)
    assert info["val_loss"] == 1.5 and info["note"] == "hello" and info["config"]["n_embd"] == TINY.n_embd
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=name)
    assert loaded.lm_head.weight is loaded.wte.weight


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert learning_rate(0, cfg) == pytest.approx(1e-4) and learning_rate(9, cfg) == pytest.approx(1e-3)
    lrs = [learning_rate(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and learning_rate(100, cfg) == pytest.approx(1e-4)


def test_train_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path):
    cfg = TrainConfig(steps=30, batch_size=4, lr=1e-2, warmup=3, eval_interval=15, eval_windows=4, threads=1)
    model, info = train_model(GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16), cfg, out=tmp_path / "t.pt",
                        command="test", progress=False)
    history = info["history"]
    assert history["step"] == [15, 30] and history["val_loss"][-1] < math.log(256) - 1.0
    loaded, stored = load_checkpoint(tmp_path / "t.pt")
    assert stored["train"]["finished"] and stored["train"]["command"] == "test"
    assert evaluate(loaded, stored["val_slice"].long()) == pytest.approx(stored["val_slice_loss"], abs=1e-5)


def test_committed_checkpoint_loads_safely_and_reaches_its_stored_loss():
    blob = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)  # no arbitrary code
    assert DEFAULT_CHECKPOINT.stat().st_size < 5_000_000
    model, info = load_checkpoint()
    assert info["config"] == blob["config"] and info["train"]["finished"]
    assert info["train"]["command"].startswith("python -m course_lib.lm.train")
    # re-evaluate on the slice stored in the checkpoint (8 windows: fast), same weights, same loss
    loss = evaluate(model, info["val_slice"].long())
    assert loss == pytest.approx(info["val_slice_loss"], abs=1e-4)
    assert info["val_loss"] < 1.1  # far better than a uniform guess, log(256) = 5.55 nats/byte
    if sys.version.split()[0] == info["train"]["python"]:  # same stdlib: the slice is today's corpus
        corpus = load_corpus()
        expected = validation_slice(corpus.val, info["val_slice"].shape[0], info["val_slice"].shape[1])
        assert torch.equal(info["val_slice"].long(), expected)


def test_code_prompts_start_lines_and_are_deterministic():
    data = encode("x = 1\n" * 40 + "def f():\n    return 2\n" * 30)
    prompts = code_prompts(data, 5, 16)
    assert len(prompts) == 5 and all(p.shape == (16,) and p.dtype == torch.long for p in prompts)
    text = decode(data)
    for p in prompts:
        start = text.index(decode(p))
        assert start == 0 or text[start - 1] == "\n"
    assert all(torch.equal(a, b) for a, b in zip(prompts, code_prompts(data, 5, 16)))
    with pytest.raises(ValueError, match="more than 2 \\* length"):
        code_prompts(data[:20], 2, 16)


# ---------------------------------------------------------------- judging a continuation


def test_continuation_nll_is_the_cross_entropy_of_the_new_tokens():
    model = tiny_model(0)
    tokens = encode("def f(x): return x")
    T = 5
    with torch.no_grad():
        logits, _ = model(tokens[None])
    logp = torch.log_softmax(logits[0].double(), dim=-1)  # position t predicts t + 1
    by_hand = -sum(float(logp[t - 1, tokens[t]]) for t in range(T, tokens.numel())) / (tokens.numel() - T)
    assert continuation_nll(model, tokens, T) == pytest.approx(by_hand, rel=1e-10)
    assert math.isnan(continuation_nll(model, tokens, tokens.numel()))  # no continuation: 0/0
    with pytest.raises(ValueError, match="prompt_length must be an int in \\[1, "):
        continuation_nll(model, tokens, 0)
    with pytest.raises(ValueError, match="tokens must fit the context"):
        continuation_nll(model, torch.zeros(TINY.block_size + 1, dtype=torch.long), 1)


def test_repetition_rate():
    assert repetition_rate([1, 2, 1, 2, 1, 2], n=2) == pytest.approx(0.6)
    assert repetition_rate(list(range(20)), n=3) == 0.0
    assert repetition_rate([7] * 10, n=1) == pytest.approx(0.9)
    assert repetition_rate(torch.tensor([1, 2, 3]), n=3) == 0.0
    assert math.isnan(repetition_rate([1, 2], n=3))  # no n-gram at all: 0/0
    with pytest.raises(ValueError, match="n must be an int"):
        repetition_rate([1, 2], n=0)


def test_addon_config_is_checked():
    assert AddonConfig().steps == 600 and AddonConfig(steps=5).desc == "add-on"
    with pytest.raises(ValueError, match="steps must be an int"):
        AddonConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be"):
        AddonConfig(lr=0.0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        AddonConfig(batch_size=2.5)


def test_forward_on_empty_inputs_is_empty_as_torch_modules_are():
    """T = 0 new tokens and a batch of 0 give empty logits (nn.TransformerEncoder does the same)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32))
    logits, hidden = model(torch.zeros(2, 0, dtype=torch.long))
    assert logits.shape == (2, 0, 256) and hidden.shape == (2, 0, 16)
    assert model(torch.zeros(0, 5, dtype=torch.long))[0].shape == (0, 5, 256)
