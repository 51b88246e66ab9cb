"""course_lib.mtp's ablation variants: what each module sees, trained and measured alike.

Each variant's claim is checked by perturbation (what moves an output, what does not), against
the full module with its embedding input set to what the variant removes, and through the
machinery that uses it: cached decoding, lossless MTP decoding, checkpoints, the ablation
harness and the training command.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.lm import GPT, GPTConfig, KVCache, generate, load_checkpoint, save_checkpoint
from course_lib.mtp import MultiTokenPredictor, load_mtp, mtp_generate, save_mtp, train_mtp
from course_lib.mtp.experiment import ablation_rows, draft_agreement
from course_lib.mtp.mtp_module import MTP_VARIANTS
from course_lib.mtp.train import main as train_main

TINY = GPTConfig(block_size=48, n_layer=2, n_head=2, n_embd=16)
C = TINY.n_embd


def tiny(variant: str, seed: int = 0) -> tuple[GPT, MultiTokenPredictor]:
    torch.manual_seed(seed)
    model = GPT(TINY).double().eval()
    return model, MultiTokenPredictor(model, 1, variant).double().eval()


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def tokens(seed: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed))


def test_parameter_counts_differ_only_by_the_embedding_input():
    counts = {v: sum(p.numel() for p in tiny(v)[1].layers[0].parameters()) for v in MTP_VARIANTS}
    assert counts["mtp"] - counts["hidden_only"] == C * C + C  # half of M_k and RMSNorm(Emb)
    assert counts["hidden_only"] == counts["medusa_block"]


@pytest.mark.parametrize("variant", ["hidden_only", "medusa_block"])
def test_variants_without_token_input_ignore_the_embedding(variant):
    _, mtp = tiny(variant)
    h = randn(0, 2, 9, C)
    torch.testing.assert_close(mtp.layers[0](h, randn(1, 2, 9, C)), mtp.layers[0](h, randn(2, 2, 9, C)),
                               rtol=0, atol=0)


@pytest.mark.parametrize("variant, sees_earlier", [("mtp", True), ("hidden_only", True), ("medusa_block", False)])
def test_position_i_sees_earlier_positions_only_in_the_causal_variants(variant, sees_earlier):
    _, mtp = tiny(variant)
    h, e = randn(3, 1, 11, C), randn(4, 1, 11, C)
    before = mtp.layers[0](h, e)
    changed = h.clone()
    changed[0, 4] += 1.0
    moved = (mtp.layers[0](changed, e) - before).abs().amax(-1)[0] > 1e-12  # (11,)
    expected = torch.arange(11) >= 4 if sees_earlier else torch.arange(11) == 4
    assert torch.equal(moved, expected), moved.tolist()


def test_hidden_only_is_the_block_on_the_projected_hidden_state():
    _, mtp = tiny("hidden_only")
    layer = mtp.layers[0]
    with torch.no_grad():
        layer.norm_hidden.weight.uniform_(0.5, 1.5)
    h = randn(5, 2, 7, C)
    x = torch.nn.functional.rms_norm(h, (C,), layer.norm_hidden.weight, torch.finfo(torch.float64).eps)
    torch.testing.assert_close(layer(h, None), layer.block(x @ layer.proj.weight.T, None, None, 0),
                               rtol=1e-12, atol=1e-12)


def test_medusa_block_is_the_block_run_on_each_position_alone():
    _, mtp = tiny("medusa_block")
    layer = mtp.layers[0]
    h = randn(6, 2, 5, C)
    x = layer.proj(layer.norm_hidden(h))  # (2, 5, C)
    alone = torch.stack([torch.cat([layer.block(x[b, i][None, None], None, None, 0)[0] for i in range(5)])
                         for b in range(2)])
    torch.testing.assert_close(layer(h, None), alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", MTP_VARIANTS)
def test_cached_forward_equals_the_whole_sequence(variant):
    _, mtp = tiny(variant)
    h, e = randn(7, 1, 13, C), randn(8, 1, 13, C)
    cache = KVCache(mtp.config, dtype=torch.float64)
    parts = [mtp.layers[0](h[:, a:b], e[:, a:b], cache) for a, b in ((0, 4), (4, 5), (5, 13))]
    assert cache.length == 13
    torch.testing.assert_close(torch.cat(parts, 1), mtp.layers[0](h, e), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", MTP_VARIANTS)
def test_decoding_with_every_variant_is_plain_greedy_decoding(variant):
    model, mtp = tiny(variant, seed=1)
    prompt = tokens(1, 5)
    result = mtp_generate(model, mtp, prompt, 40)
    assert torch.equal(result.tokens, generate(model, prompt, 40))


def test_unknown_variant_is_refused():
    model, _ = tiny("mtp")
    with pytest.raises(ValueError, match="variant must be one of 'mtp', 'hidden_only', 'medusa_block'; got 'eagle'"):
        MultiTokenPredictor(model, 1, "eagle")


def test_checkpoint_keeps_the_variant_and_old_checkpoints_load_as_mtp(tmp_path):
    model, mtp = tiny("medusa_block")
    loaded, info = load_mtp(model, save_mtp(mtp, tmp_path / "m.pt"))
    assert loaded.variant == "medusa_block" and info["variant"] == "medusa_block"
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    _, full = tiny("mtp")
    torch.save({"depth": 1, "state_dict": {k: v.half() for k, v in full.state_dict().items()}}, tmp_path / "old.pt")
    assert load_mtp(model, tmp_path / "old.pt")[0].variant == "mtp"
    assert blob["depth"] == 1


def test_before_step_sees_every_step_count_once():
    model, mtp = tiny("hidden_only")
    seen: list[int] = []
    losses = train_mtp(model.float(), mtp.float(), steps=3, batch_size=2, progress=False, before_step=seen.append)
    assert seen == [0, 1, 2] and len(losses) == 3


def test_ablation_command_writes_snapshots_that_the_harness_measures(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(GPT(TINY), tmp_path / "lm.pt")
    train_main(["--ablation", "--steps", "2", "--snapshots", "1", "--variants", "hidden_only,medusa_block",
                "--checkpoint", str(tmp_path / "lm.pt"), "--out", str(tmp_path / "abl")])
    names = sorted(p.name for p in (tmp_path / "abl").iterdir())
    assert names == ["hidden_only_1.pt", "hidden_only_2.pt", "medusa_block_1.pt", "medusa_block_2.pt"]
    model, _ = load_checkpoint(tmp_path / "lm.pt")
    windows, prompts = tokens(9, 3, 20), [tokens(10, 4), tokens(11, 6)]
    rows = ablation_rows(model, windows, prompts, 8, tmp_path / "abl")
    assert [(r.variant, r.steps, r.run_steps) for r in rows] == [
        ("hidden_only", 1, 2), ("hidden_only", 2, 2), ("medusa_block", 1, 2), ("medusa_block", 2, 2)]
    info = torch.load(tmp_path / "abl" / "medusa_block_2.pt", weights_only=True)
    assert info["command"].startswith("python -m course_lib.mtp.train --ablation") and info["seconds"] > 0
    drafter = load_mtp(model, tmp_path / "abl" / "medusa_block_2.pt")[0]
    agree = draft_agreement(model, drafter, windows)
    assert rows[-1].accuracy == agree.accuracy and rows[-1].agreement == agree.agreement
    assert all(0 <= r.acceptance <= 1 for r in rows)


def test_ablation_rows_bad_input(tmp_path):
    model, _ = tiny("mtp")
    with pytest.raises(ValueError, match="prompts must hold at least one prompt"):
        ablation_rows(model, tokens(0, 2, 9), [], 4, tmp_path)
    with pytest.raises(ValueError, match="directory must hold <variant>_<steps>.pt checkpoints"):
        ablation_rows(model, tokens(0, 2, 9), [tokens(0, 3)], 4, tmp_path)
