"""Tests for course_lib.speculative: the Medusa tree, heads, acceptance, decoding and viewer.

The tree is checked against a slow per-node reference built from the paths alone; tree
verification against running each candidate path as a plain sequence; greedy Medusa decoding
against plain greedy decoding (lossless) over many prompts, lengths and trees. Most tests use a
tiny random float64 model (float64 so that no argmax is decided by rounding).
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.lm import GPT, CheckpointError, GPTConfig, KVCache, encode, generate, token_label
from course_lib.speculative import (
    EXAMPLE_TREES,
    MedusaDrafter,
    MedusaHeads,
    MedusaTree,
    StepBreakdown,
    TypicalConfig,
    draft_tree_state,
    draft_tree_view,
    draft_tree_widget,
    expected_accept_length,
    greedy_acceptance,
    greedy_tree,
    head_accuracy,
    load_heads,
    medusa_generate,
    medusa_step,
    medusa_tree,
    rank_agreement,
    save_heads,
    speculative_accept,
    speculative_sample,
    train_heads,
    typical_acceptance,
)
from course_lib.speculative.exercises import expected_length, greedy_accept, retrieve_paths, tree_mask
from course_lib.speculative.experiment import compare_decoding, forward_time, step_breakdown
from course_lib.speculative.medusa_training import medusa_loss

TINY = GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=16)


def tiny(seed: int = 0, noise: float = 0.0, num_heads: int = 4) -> tuple[GPT, MedusaHeads]:
    """A random float64 model and heads; ``noise`` perturbs the heads away from the base head."""
    torch.manual_seed(seed)
    model = GPT(TINY).double().eval()
    heads = MedusaHeads(model, num_heads).double().eval()
    with torch.no_grad():
        for p in heads.parameters():
            p.add_(noise * torch.randn_like(p))
    return model, heads


# ---------------------------------------------------------------- the tree

paths_strategy = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=4), min_size=1, max_size=10).map(
    lambda raw: sorted({tuple(p[:d]) for p in raw for d in range(1, len(p) + 1)}, key=lambda p: (len(p), p))
)


def slow_tree(paths: list[tuple[int, ...]], top_k: int) -> dict:
    """Per-node reference transcribed from the definitions: node 0 = (), node i = paths[i - 1]."""
    nodes = [(), *paths]
    n = len(nodes)
    mask = [[nodes[i][: len(nodes[j])] == nodes[j] for j in range(n)] for i in range(n)]
    depth = [len(p) for p in nodes]
    flat = [0] + [1 + (len(p) - 1) * top_k + p[-1] for p in paths]
    leaves = [p for p in paths if not any(q[:-1] == p for q in paths)]
    D = max(depth)
    retrieve = [[nodes.index(leaf[:d]) for d in range(len(leaf) + 1)] + [-1] * (D - len(leaf)) for leaf in leaves]
    return {"mask": mask, "depth": depth, "flat": flat, "retrieve": retrieve}


@settings(max_examples=60, deadline=None)
@given(paths_strategy, st.booleans())
def test_tree_matches_the_per_node_reference(paths, shuffle):
    given_paths = list(paths)
    if shuffle:  # the input order does not matter
        random.Random(len(paths)).shuffle(given_paths)
    tree = MedusaTree.from_paths(given_paths)
    ref = slow_tree(paths, tree.top_k)
    assert tree.paths == tuple(paths) and tree.num_nodes == len(paths) + 1
    assert tree.mask.tolist() == ref["mask"]
    assert tree.depths.tolist() == ref["depth"]
    assert tree.tree_indices.tolist() == ref["flat"]
    assert tree.retrieve_indices.tolist() == ref["retrieve"]


@settings(max_examples=60, deadline=None)
@given(paths_strategy)
def test_mask_is_the_ancestor_relation(paths):
    tree = MedusaTree.from_paths(paths)
    n = tree.num_nodes
    ancestors = []
    for i in range(n):  # walk up the parent pointers
        chain, node = {i}, i
        while tree.parents[node] >= 0:
            node = tree.parents[node]
            chain.add(node)
        ancestors.append(chain)
    expected = torch.tensor([[j in ancestors[i] for j in range(n)] for i in range(n)])
    assert torch.equal(tree.mask, expected)
    # a reflexive, antisymmetric, lower-triangular relation whose column 0 is all True
    assert tree.mask.diagonal().all() and tree.mask[:, 0].all() and torch.equal(tree.mask, tree.mask.tril())
    assert tree.mask.sum(1).tolist() == [d + 1 for d in tree.depths.tolist()]


def test_truncated_tree_and_example_trees():
    tree = medusa_tree("large")
    cut = tree.truncated(2)
    assert cut.depth == 2 and cut.top_k == tree.top_k and set(cut.paths) <= set(tree.paths)
    assert torch.equal(cut.mask, tree.mask[: cut.num_nodes, : cut.num_nodes])
    assert tree.truncated(0).num_nodes == 1 and tree.truncated(0).retrieve_indices.tolist() == [[0]]
    for name, paths in EXAMPLE_TREES.items():
        assert medusa_tree(name).num_nodes == len(paths) + 1


@pytest.mark.parametrize(
    ("paths", "error", "match"),
    [
        ([(0,), (1, 0)], ValueError, r"path \(1, 0\) has no parent: its prefix \(1,\) is missing"),
        ([(0,), (0, 0, 1)], ValueError, r"prefix \(0, 0\) is missing"),
        ([(0,), (0,)], ValueError, "must not repeat"),
        ([()], ValueError, "non-empty tuple"),
        ([(0,), (-1,)], ValueError, r"entry must be an int in \[0, inf\]"),
        ("01", ValueError, "paths must be one of"),
        (7, TypeError, "paths must be a list of tuples"),
    ],
)
def test_bad_trees(paths, error, match):
    with pytest.raises(error, match=match):
        medusa_tree(paths)


def test_top_k_too_small_for_the_paths():
    with pytest.raises(ValueError, match="top_k must be at least 3"):
        MedusaTree.from_paths([(0,), (2,)], top_k=2)


# ---------------------------------------------------------------- heads


def test_heads_start_as_the_base_head_and_checkpoint_round_trip(tmp_path):
    model, heads = tiny()
    idx = torch.randint(0, 256, (2, 9))
    logits, hidden = model(idx)
    out = heads(hidden)
    assert out.shape == (4, 2, 9, 256)
    for k in range(4):
        torch.testing.assert_close(out[k], logits)
    path = save_heads(heads.float(), tmp_path / "h.pt", note="x")
    loaded, info = load_heads(model.float(), path)
    assert info["num_heads"] == 4 and info["note"] == "x"
    torch.testing.assert_close(loaded(hidden.float()), out.float(), rtol=1e-3, atol=1e-3)
    with pytest.raises(CheckpointError, match="no Medusa heads at .*course_lib.speculative.train"):
        load_heads(model, tmp_path / "none.pt")
    other = GPT(GPTConfig(block_size=64, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_heads(other, path)
    with pytest.raises(ValueError, match="hidden must have last dim n_embd=16"):
        heads(torch.zeros(3, 8, dtype=torch.float64))


def test_training_heads_lowers_their_loss_and_leaves_the_backbone_alone():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    heads = MedusaHeads(model, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    from course_lib.lm import load_corpus
    from course_lib.lm.corpus import random_batch

    batch = random_batch(load_corpus().val, 8, 33, gen)
    start = medusa_loss(model, heads, batch).item()
    losses = train_heads(model, heads, steps=25, batch_size=8, lr=1e-2, progress=False)
    assert len(losses) == 25 and medusa_loss(model, heads, batch).item() < start - 0.3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_head_accuracy_against_a_direct_count():
    model, heads = tiny(1, noise=0.2, num_heads=2)
    windows = torch.randint(0, 4, (3, 12))  # few distinct bytes, so some guesses are right
    acc = head_accuracy(model, heads, windows, k=3)
    _, hidden = model(windows[:, :-1])
    logits = heads(hidden)
    for i in range(2):
        hits1 = hitsk = total = 0
        for b in range(3):
            for t in range(11 - 1 - i):
                target = int(windows[b, t + 2 + i])
                ranked = logits[i, b, t].argsort(descending=True)[:3].tolist()
                hits1 += ranked[0] == target
                hitsk += target in ranked
                total += 1
        assert acc.top1[i] == pytest.approx(hits1 / total) and acc.topk[i] == pytest.approx(hitsk / total)
    assert "head 1 (offset 3)" in str(acc)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 256\]"):
        head_accuracy(model, heads, windows, k=257)


# ---------------------------------------------------------------- verification and acceptance


def test_tree_verification_equals_running_each_path_as_a_sequence():
    model, _ = tiny(2)
    tree = medusa_tree("medium")
    prefix = torch.randint(0, 256, (1, 11))
    tokens = torch.randint(0, 256, (1, tree.num_nodes))
    cache = KVCache(TINY, dtype=torch.float64)
    model(prefix, cache=cache)
    tree_logits, _ = model(tokens, cache=cache, attn_mask=tree.mask, positions=11 + tree.depths)
    for i in range(tree.num_nodes):
        chain = tree.mask[i].nonzero()[:, 0]  # node i and its ancestors, in order
        seq = torch.cat([prefix, tokens[:, chain]], dim=1)
        torch.testing.assert_close(tree_logits[0, i], model(seq)[0][0, -1])


def test_greedy_acceptance_examples_and_first_of_ties():
    eye = torch.eye(5, dtype=torch.float64)
    logits = eye[torch.tensor([[1, 2, 3], [1, 2, 4], [0, 0, 0]])]  # argmax per node
    assert greedy_acceptance(torch.tensor([[9, 1, 2], [9, 1, 2], [9, 0, 0]]), logits) == (0, 2)
    assert greedy_acceptance(torch.tensor([[9, 1, 0], [9, 1, 2], [9, 3, 3]]), logits) == (1, 2)
    assert greedy_acceptance(torch.tensor([[9, 4, 2], [9, 3, 2], [9, 1, -1]]), logits) == (0, 0)
    with pytest.raises(ValueError, match="logits has P=2"):
        greedy_acceptance(torch.zeros(3, 3, dtype=torch.long), logits[:2])


def test_typical_acceptance_thresholds():
    # two paths; node distributions: confident (p = 0.9 on token 1) then uniform over 5 tokens
    confident = torch.log(torch.tensor([0.025, 0.9, 0.025, 0.025, 0.025], dtype=torch.float64))
    uniform = torch.zeros(5, dtype=torch.float64)
    logits = torch.stack([torch.stack([confident, uniform, uniform])] * 2)  # (2, 3, 5)
    cands = torch.tensor([[9, 1, 3], [9, 1, 4]])
    # τ = 1: H(uniform) = log 5 → α·exp(−H) = 0.3 / 5 = 0.06 < ε: p = 0.2 > 0.06, accepted
    assert typical_acceptance(cands, logits, TypicalConfig(temperature=1.0))[1] == 2
    # skewed second node, H = 1.42: threshold min(0.5, exp(−H) = 0.242); p = 0.1 fails, p = 0.4 passes
    skew = torch.log(torch.tensor([0.1, 0.1, 0.1, 0.3, 0.4], dtype=torch.float64))
    logits2 = torch.stack([torch.stack([confident, skew, skew])] * 2)
    assert typical_acceptance(torch.tensor([[9, 1, 0], [9, 1, 0]]), logits2, TypicalConfig(1.0, epsilon=0.5, alpha=1.0)) == (0, 1)
    assert typical_acceptance(torch.tensor([[9, 1, 0], [9, 1, 4]]), logits2, TypicalConfig(1.0, epsilon=0.5, alpha=1.0)) == (1, 2)
    # an unlikely drafted token (p = 0.025) is rejected at once
    assert typical_acceptance(torch.tensor([[9, 0, 3], [9, 2, 3]]), logits, TypicalConfig(temperature=1.0)) == (0, 0)
    # among equally long paths, the most likely one wins
    assert typical_acceptance(torch.tensor([[9, 1, 3], [9, 1, 4]]), logits2, TypicalConfig(temperature=1.0)) == (1, 2)
    # the defaults are one dataclass shared by every signature that takes them
    assert typical_acceptance(cands, logits) == typical_acceptance(cands, logits, TypicalConfig())
    with pytest.raises(ValueError, match="temperature"):
        TypicalConfig(temperature=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        TypicalConfig(epsilon=1.5)
    with pytest.raises(TypeError, match="config must be TypicalConfig; got dict"):
        typical_acceptance(cands, logits, {"temperature": 1.0})


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("tree", ["chain-4", "small", "medium", "large"])
@pytest.mark.parametrize("seed", range(3))
def test_greedy_medusa_is_lossless(tree, seed):
    model, heads = tiny(seed)  # heads = base head: right where the model repeats itself, wrong elsewhere
    rng = random.Random(seed)
    accepted_some = rejected_some = False
    for _ in range(4):
        prompt = torch.randint(0, 256, (rng.randint(1, 12),))
        n = rng.randint(1, TINY.block_size - prompt.numel())
        result = medusa_generate(model, heads, prompt, n, tree=tree)
        assert torch.equal(result.tokens, generate(model, prompt, n)), (tree, seed, n)
        drafted = [len(s.accepted_nodes) - 1 for s in result.steps if s.forward_pass]
        accepted_some |= any(d > 0 for d in drafted)
        rejected_some |= any(d == 0 for d in drafted)
        assert result.new_tokens.numel() == n and sum(len(s.accepted_nodes) for s in result.steps) >= n
    assert accepted_some and rejected_some  # both branches of the acceptance were exercised


def test_greedy_medusa_with_the_committed_model_is_lossless_on_held_out_code():
    """The committed model and heads (in float64: no argmax decided by rounding), held-out prompts,
    lengths from 1 to 192 (up to the end of the context) and three trees — with trained heads, so
    many drafted tokens are accepted, often on nodes that are not contiguous in the tree (the cache
    compaction then has gaps to close)."""
    from course_lib.lm import code_prompts, load_checkpoint, load_corpus

    model, _ = load_checkpoint()
    heads, _ = load_heads(model)
    model, heads = model.double(), heads.double()
    prompts = code_prompts(load_corpus().val, 10, 64)
    runs = steps = drafted = gapped = 0
    for i, prompt in enumerate(prompts):
        for n in (1, 2, 7, 150) if i % 2 else (3, 41, 192):
            plain = generate(model, prompt, n)
            for tree in ("chain-4", "small", "large"):
                result = medusa_generate(model, heads, prompt, n, tree=tree)
                assert torch.equal(result.tokens, plain), (i, n, tree)
                runs += 1
                steps += len(result.steps)
                drafted += sum(len(s.accepted_nodes) - 1 for s in result.steps)
                gapped += sum(s.accepted_nodes != list(range(len(s.accepted_nodes))) for s in result.steps)
    assert runs == 105 and drafted > steps  # more than one drafted token accepted per step on average
    assert gapped > 0


def test_medusa_step_bad_input():
    model, heads = tiny()
    tree = medusa_tree("small")
    cache = KVCache(TINY, dtype=torch.float64)
    logits, hidden = model(encode("ab")[None], cache=cache)
    good = (logits[0, -1], heads(hidden[0, -1]))
    with pytest.raises(ValueError, match=r"logits must have shape \(V,\) = \(256,\).*got \(2, 256\)"):
        medusa_step(model, heads, cache, logits[0], good[1], tree)
    with pytest.raises(ValueError, match=r"head_logits must have shape \(K, V\) with V=256 and K >= the tree's "
                                         r"depth 3; got \(2, 256\)"):
        medusa_step(model, heads, cache, good[0], good[1][:2], tree)
    with pytest.raises(TypeError, match="logits must have a floating-point dtype"):
        medusa_step(model, heads, cache, good[0].long(), good[1], tree)
    with pytest.raises(TypeError, match="cache must be KVCache"):
        medusa_step(model, heads, None, *good, tree)
    with pytest.raises(ValueError, match="cache must hold one sequence"):
        medusa_step(model, heads, KVCache(TINY, batch_size=2, dtype=torch.float64), *good, tree)
    with pytest.raises(ValueError, match="acceptance must be one of"):
        medusa_step(model, heads, cache, *good, tree, acceptance="sampled")
    assert cache.length == 2  # nothing was appended by the refused calls
    step, next_logits, next_heads = medusa_step(model, heads, cache, *good, tree)
    assert cache.length == 2 + len(step.accepted_nodes) and next_logits.shape == (256,)
    assert next_heads.shape == (4, 256)


def test_heads_equal_to_the_base_head_accept_on_a_repeating_model():
    model, heads = tiny(0)
    result = medusa_generate(model, heads, encode("ab"), 40, tree="chain-4")
    assert torch.equal(result.tokens, generate(model, encode("ab"), 40))
    assert result.tokens_per_step > 1.0


def test_typical_medusa_runs_and_writes_plausible_tokens():
    model, heads = tiny(4, noise=0.1)
    result = medusa_generate(model, heads, encode("def "), 30, tree="medium", acceptance="typical",
                             typical=TypicalConfig(temperature=1.0))
    assert result.new_tokens.numel() == 30
    logits, _ = model(result.tokens[None, :-1])
    probs = torch.softmax(logits[0, 3:], dim=-1)
    p_written = probs[torch.arange(30), result.tokens[4:]]
    roots = {s.position for s in result.steps}  # roots are argmax tokens; drafted ones pass the threshold
    for i in range(30):
        if 4 + i in roots:
            assert int(result.tokens[4 + i]) == int(probs[i].argmax())
        else:
            assert p_written[i] > 0.0


def test_medusa_bad_input():
    model, heads = tiny()
    with pytest.raises(ValueError, match="batch size 1"):
        medusa_generate(model, heads, torch.zeros(2, 3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="prompt is longer than the context: 65 tokens"):
        medusa_generate(model, heads, torch.zeros(65, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="prompt length \\+ max_new_tokens"):
        medusa_generate(model, heads, torch.zeros(60, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="vocabulary has only 256 tokens"):
        medusa_generate(model, heads, encode("x"), 4, tree=MedusaTree.from_paths([(0,)], top_k=300))
    with pytest.raises(ValueError, match="depth 5 but there are only 4 Medusa heads"):
        medusa_generate(model, heads, encode("x"), 4, tree=[(0,), (0, 0), (0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0)])
    with pytest.raises(ValueError, match="prefix \\(1,\\) is missing"):
        medusa_generate(model, heads, encode("x"), 4, tree=[(0,), (1, 0)])
    with pytest.raises(ValueError, match="acceptance must be one of"):
        medusa_generate(model, heads, encode("x"), 4, acceptance="nucleus")


# ---------------------------------------------------------------- viewer and exercises


def test_draft_tree_view_and_widget():
    model, heads = tiny(0, noise=0.1)
    result = medusa_generate(model, heads, encode("def f(x):\n"), 20, tree="small")
    first, second = draft_tree_view(result, 0), draft_tree_view(result, 1)
    assert len(first.figure.axes) == 2 and first.caption != second.caption
    s = result.steps[0]
    assert f"accepted nodes {s.accepted_nodes}" in first.caption and "step 1 of" in first.caption
    assert " ".join(f"{i}:{token_label(t)}" for i, t in enumerate(s.node_tokens)) in first.caption
    with pytest.raises(ValueError, match="step must be an int in"):
        draft_tree_view(result, len(result.steps))
    w = draft_tree_widget(model, heads, "def f(x):\n", 20, tree="small")
    caption, image = w.caption.value, w.image.value
    w.controls["step"].value = 2
    assert w.caption.value != caption and w.image.value != image and "step 3 of" in w.caption.value
    assert token_label(32) == "␣" and token_label(10) == "↵" and token_label(200) == "\\xc8"


def test_exercises_accept_right_and_reject_wrong_answers():
    assert tree_mask.check(lambda paths: medusa_tree(paths).mask, quiet=True)
    assert retrieve_paths.check(lambda paths: medusa_tree(paths).retrieve_indices, quiet=True)
    assert greedy_accept.check(greedy_acceptance, quiet=True)
    assert expected_length.check(lambda paths, rank_probs: expected_accept_length(
        medusa_tree(paths, top_k=rank_probs.shape[1]), rank_probs) if paths else 0.0, quiet=True)
    wrong = [
        (expected_length, lambda paths, rank_probs: sum(float(rank_probs[len(p) - 1, p[-1]]) for p in paths)),
        (expected_length, lambda paths, rank_probs: 1.0 + sum(  # counts the root
            float(torch.tensor([rank_probs[d, i] for d, i in enumerate(p)]).prod()) for p in paths)),
        (tree_mask, lambda paths: medusa_tree(paths).mask.T),  # descendants instead of ancestors
        (tree_mask, lambda paths: medusa_tree(paths).mask & ~torch.eye(len(paths) + 1, dtype=torch.bool)),
        (retrieve_paths, lambda paths: medusa_tree(paths).retrieve_indices.clamp(min=0)),  # no -1 padding
        (retrieve_paths, lambda paths: medusa_tree(paths).retrieve_indices[:, 1:]),  # drops the root
        (greedy_accept, lambda candidates, logits: (0, int((candidates[0, 1:] == logits[0, :-1].argmax(-1)).sum()))),
        (greedy_accept, lambda candidates, logits: (
            int((candidates[:, 1:] == logits[:, :-1].argmax(-1)).sum(1).argmax()),
            int((candidates[:, 1:] == logits[:, :-1].argmax(-1)).sum(1).max()))),  # counts, not prefixes
    ]
    for exercise, fn in wrong:
        result = exercise.check(fn, quiet=True)
        assert not result and result.failing_case is not None, exercise.title
        assert "wrong on" in result.message
    assert not tree_mask.check(lambda paths: (_ for _ in ()).throw(NotImplementedError), quiet=True).attempted


def test_compare_decoding_forward_time_and_step_breakdown():
    model, heads = tiny(0)
    prompts = [encode("def f(x):"), encode("class A:\n")]
    rows = compare_decoding(model, heads, prompts, 12, trees=("chain-4", "small"))
    assert [r.method for r in rows] == ["plain", "medusa/chain-4/greedy", "medusa/chain-4/typical",
                                        "medusa/small/greedy", "medusa/small/typical"]
    assert rows[0].tokens_per_step == 1.0 and rows[0].speedup == 1.0 and rows[0].nodes == 1
    expected = 24 / sum(len(medusa_generate(model, heads, p, 12, tree="small").steps) for p in prompts)
    assert rows[3].tokens_per_step == pytest.approx(expected) and rows[3].nodes == 7
    assert all(len(r.timing.samples) == 5 and r.timing.median > 0 for r in rows)
    assert rows[1].speedup == pytest.approx(rows[0].timing.median / rows[1].timing.median)
    # greedy Medusa writes plain greedy's tokens: the same quality, to the last bit
    assert rows[1].nll == rows[0].nll and rows[1].repetition == rows[0].repetition
    cost = forward_time(model, (1, 4), cache_len=10, repeats=3)
    assert set(cost.timings) == {1, 4} and cost.ratio(1) == 1.0 and cost.ratio(4) > 0
    with pytest.raises(ValueError, match="cache_len \\+ n_tokens must be <= block_size=64"):
        forward_time(model, (1, 10), cache_len=60)
    with pytest.raises(ValueError, match="sizes must include 1"):
        forward_time(model, (2, 4))
    with pytest.raises(ValueError, match="at least one prompt"):
        compare_decoding(model, heads, [], 4)
    b = step_breakdown(model, heads, encode("def f(x):"), "small", repeats=3, decode_prompts=prompts[:2],
                       max_new_tokens=12)
    assert isinstance(b, StepBreakdown) and b.nodes == 7 and b.cache_len == 9 and b.num_prompts == 2
    runs = [medusa_generate(model, heads, p, 12, tree="small") for p in prompts[:2]]
    # per forward pass, pooled over the prompts: a last step that only emits the root costs no pass
    assert b.tokens_per_step == 24 / sum(s.forward_pass for r in runs for s in r.steps)
    assert b.measured_speedup == pytest.approx(b.decode_plain.median / b.decode.median) and b.max_new_tokens == 12
    # the prediction charges every prompt: k prefills, k * (n - 1) plain steps, k * n / tokens-per-step steps
    P, c1, step = b.prefill.median, b.plain.median, b.step.median
    assert b.predicted_speedup(2.0, 12) == pytest.approx((P + 2 * 11 * c1) / (P + 2 * 12 / 2.0 * step))
    assert list(b.phases) == ["candidates", "forward", "acceptance", "compaction", "heads"]
    assert b.forward_ratio == pytest.approx(b.phases["forward"].median / b.plain.median)
    assert b.predicted_speedup(2.0) == pytest.approx(2.0 / (b.forward_ratio + b.overhead))
    assert b.predicted_speedup(2.0) == pytest.approx(2.0 * b.plain.median / b.step.median)
    with pytest.raises(ValueError, match="prompt must hold 1 .. block_size - 7"):
        step_breakdown(model, heads, encode("x" * 60), "small")
    with pytest.raises(TypeError, match="decode_prompts must be a sequence"):
        step_breakdown(model, heads, encode("def f(x):"), "small", decode_prompts=prompts[1])
    no_decode = step_breakdown(model, heads, encode("def f(x):"), "small", repeats=1)
    assert no_decode.num_prompts == 1 and no_decode.tokens_per_step is None and math.isnan(no_decode.measured_speedup)


def test_cost_model_arithmetic():
    from course_lib.timing import Timing

    def t(ms: float) -> Timing:
        return Timing("x", (ms / 1e3,) * 5, 1)

    b = StepBreakdown("toy", 4, 10, {"forward": t(1.5), "heads": t(0.2)}, step=t(2.0), plain=t(1.0), prefill=t(5.0))
    assert b.forward_ratio == pytest.approx(1.5) and b.overhead == pytest.approx(0.5)
    assert b.other == pytest.approx(0.3e-3)
    assert b.forward_only_speedup(3.0) == pytest.approx(2.0)
    assert b.predicted_speedup(3.0) == pytest.approx(1.5)  # 3 / (1.5 + 0.5)
    # with the prefill: plain 5 + 99 * 1 ms, speculative 5 + 100 / 3 * 2 ms
    assert b.predicted_speedup(3.0, 100) == pytest.approx(104 / (5 + 200 / 3))
    with pytest.raises(ValueError, match="tokens_per_step"):
        b.predicted_speedup(0.0)
    # two prompts: 5 ms of prefills for both, 2 * 99 plain steps against 2 * 100 / 3 Medusa steps
    two = StepBreakdown("toy", 4, 10, {"forward": t(1.5)}, step=t(2.0), plain=t(1.0), prefill=t(5.0), num_prompts=2)
    assert two.predicted_speedup(3.0, 100) == pytest.approx(203 / (5 + 400 / 3))
    assert two.predicted_speedup(3.0) == b.predicted_speedup(3.0)  # per step, the prompt count cancels
    assert math.isnan(b.measured_speedup)  # no decode timed: 0/0, not a made-up 1.0


def test_committed_heads_belong_to_the_committed_model_and_beat_untrained_heads():
    from course_lib.lm import evaluate, load_checkpoint, load_corpus, validation_slice

    model, info = load_checkpoint()
    heads, heads_info = load_heads(model)
    # the heads were trained on this very model: the stored base loss matches
    assert heads_info["base_val_slice_loss"] == pytest.approx(evaluate(model, info["val_slice"].long()), abs=1e-4)
    assert heads_info["command"].startswith("python -m course_lib.speculative.train")
    windows = validation_slice(load_corpus().val, 8, model.config.block_size + 1)
    trained = head_accuracy(model, heads, windows)
    untrained = head_accuracy(model, MedusaHeads(model, heads.num_heads), windows)
    assert all(a > b for a, b in zip(trained.top1, untrained.top1))
    assert trained.top1[0] > 0.3 and all(b >= a for a, b in zip(trained.top1, trained.topk))


# ---------------------------------------------------------------- lossless speculative sampling


def chi2_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square goodness-of-fit p-value (df = cells - 1), from the regularised gamma."""
    expected = probs.double() * counts.sum()
    stat = ((counts.double() - expected) ** 2 / expected).sum()
    return float(torch.special.gammaincc(torch.tensor((counts.numel() - 1) / 2, dtype=torch.float64), stat / 2))


P_TARGET = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)
Q_DRAFT = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.5], dtype=torch.float64)


def _wrong_accept(p, q, draft, generator=None):
    """A plausible mistake: on rejection, resample from p instead of the residual max(0, p - q)."""
    if float(torch.rand((), generator=generator, dtype=torch.float64)) * float(q[draft]) < float(p[draft]):
        return True, draft
    return False, int(torch.multinomial(p, 1, generator=generator))


@pytest.mark.parametrize("accept, lossless", [(speculative_accept, True), (_wrong_accept, False)])
def test_speculative_accept_outputs_exactly_the_target_distribution(accept, lossless):
    """Leviathan et al. 2023, Theorem 3.5: draft x ~ q, then accept/resample gives x ~ p."""
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(5)
    for draft in torch.multinomial(Q_DRAFT, 20000, replacement=True, generator=gen).tolist():
        counts[accept(P_TARGET, Q_DRAFT, draft, gen)[1]] += 1
    pvalue = chi2_pvalue(counts, P_TARGET)
    # the correct rule passes at a 1e-3 level; resampling from p is off by ~0.17 on token 0 and fails
    assert pvalue > 1e-3 if lossless else pvalue < 1e-12


def test_speculative_accept_edges_and_bad_input():
    p = torch.tensor([0.0, 1.0])
    assert speculative_accept(p, p.clone(), 1) == (True, 1)  # p == q: every draft is accepted
    # p(draft) = 0: always rejected, and the residual puts everything on the other token
    assert speculative_accept(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), 1) == (False, 0)
    with pytest.raises(ValueError, match="q\\[draft\\] must be > 0"):
        speculative_accept(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]), 1)
    with pytest.raises(ValueError, match="draft must be an int in \\[0, 1\\]"):
        speculative_accept(p, p, 2)
    with pytest.raises(ValueError, match="q has V=3"):
        speculative_accept(p, torch.ones(3) / 3, 0)
    with pytest.raises(TypeError, match="p must have a floating-point dtype"):
        speculative_accept(torch.tensor([0, 1]), p, 0)


def exact_continuations(model: GPT, prompt: torch.Tensor, n: int, temperature: float) -> torch.Tensor:
    """P(x_1 … x_n | prompt) for every continuation, by enumeration (row-major over V**n)."""
    V = model.config.vocab_size
    conts = torch.cartesian_prod(*[torch.arange(V)] * n).reshape(-1, n)  # (V**n, n)
    seqs = torch.cat([prompt.expand(len(conts), -1), conts], dim=1)
    with torch.no_grad():
        logits, _ = model(seqs[:, :-1])
    logp = torch.log_softmax(logits[:, prompt.numel() - 1 :].double() / temperature, dim=-1)  # (V**n, n, V)
    return logp.gather(-1, conts[..., None])[..., 0].sum(-1).exp()


def test_speculative_sampling_with_a_medusa_head_samples_the_model_exactly():
    """Chi-square over 2 sampled tokens of a 3-token vocabulary (9 cells), against enumeration."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=8)).double().eval()
    heads = MedusaHeads(model, 1).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)  # context-dependent distributions, every cell still above 1 %
        heads.head_weight.mul_(3).add_(3 * torch.randn_like(heads.head_weight))  # q differs from p
    prompt, n, tau = torch.tensor([1, 2]), 2, 0.8
    exact = exact_continuations(model, prompt[None], n, tau)
    assert float(exact.min()) > 0.01 and float(exact.max()) < 0.3
    gen = torch.Generator().manual_seed(1)
    counts, accepted = torch.zeros(3**n), []
    for _ in range(800):
        result = speculative_sample(model, MedusaDrafter(heads), prompt, n, tau, gen)
        a, b = result.tokens[2:].tolist()
        counts[3 * a + b] += 1
        accepted += result.accepted
    assert 0.1 < sum(accepted) / len(accepted) < 0.9  # both branches ran many times
    assert chi2_pvalue(counts, exact) > 1e-3


def test_speculative_sample_bad_input_and_zero_tokens():
    model, heads = tiny(0)
    r = speculative_sample(model, MedusaDrafter(heads), encode("ab"), 0)
    assert r.tokens.tolist() == encode("ab").tolist() and r.accepted == [] and r.acceptance_rate != r.acceptance_rate
    with pytest.raises(ValueError, match="temperature"):
        speculative_sample(model, MedusaDrafter(heads), encode("ab"), 3, temperature=0.0)
    with pytest.raises(TypeError, match="drafter must be callable"):
        speculative_sample(model, heads.num_heads, encode("ab"), 3)
    with pytest.raises(ValueError, match="prompt must have 1 dim"):
        speculative_sample(model, MedusaDrafter(heads), encode("ab")[None], 3)
    with pytest.raises(TypeError, match="heads must be MedusaHeads"):
        MedusaDrafter(model)


# ---------------------------------------------------------------- viewer state (no matplotlib)


def test_draft_tree_state_shows_argmax_and_position_ids():
    model, heads = tiny(0, noise=0.1)
    prompt = encode("def f(x):\n")
    result = medusa_generate(model, heads, prompt, 20, tree="small")
    st = draft_tree_state(result, 1)
    s = result.steps[1]
    assert st.position == s.position and st.position_ids == tuple(s.position + d for d in s.tree.depths.tolist())
    # the argmax at each node is the base model's next token after that node's path
    cache = KVCache(model.config)
    with torch.no_grad():
        for i in range(s.tree.num_nodes):
            path = s.tree.mask[i].nonzero()[:, 0].tolist()
            ctx = torch.cat([result.tokens[: s.position], torch.tensor([s.node_tokens[j] for j in path])])
            assert st.argmax[i] == token_label(int(model(ctx[None])[0][0, -1].argmax()))
    # a child is accepted iff it equals its parent's argmax, along the accepted path
    for parent, child in zip(st.accepted, st.accepted[1:]):
        assert st.tokens[child] == st.argmax[parent]
    assert "position ids" in st.caption and cache.length == 0
    with pytest.raises(ValueError, match="step must be an int in"):
        draft_tree_state(result, len(result.steps))


# ---------------------------------------------------------------- building a tree (Medusa §2.3.3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6), st.integers(1, 7))
def test_greedy_tree_maximises_expected_accept_length_among_all_trees_of_its_size(raw, n):
    """Brute force over every prefix-closed set of paths of 2 heads x top-3 (12 candidate nodes)."""
    import itertools

    probs = torch.tensor(raw, dtype=torch.float64).reshape(2, 3)
    probs = probs / probs.sum(-1, keepdim=True).clamp_min(1.0)  # rows: probabilities summing to <= 1
    tree = greedy_tree(probs, n)
    assert tree.num_nodes == n
    nodes = [(i,) for i in range(3)] + [(i, j) for i in range(3) for j in range(3)]
    best = max(sum(float(probs[0, p[0]]) * (float(probs[1, p[1]]) if len(p) == 2 else 1.0) for p in subset)
               for subset in itertools.combinations(nodes, n - 1)
               if all(len(p) == 1 or (p[0],) in subset for p in subset))
    assert expected_accept_length(tree, probs) == pytest.approx(best, abs=1e-12)


def test_expected_accept_length_and_rank_agreement():
    probs = torch.tensor([[0.6, 0.2], [0.5, 0.1]], dtype=torch.float64)
    assert expected_accept_length(medusa_tree([(0,), (1,), (0, 0), (1, 1)]), probs) == pytest.approx(
        0.6 + 0.2 + 0.6 * 0.5 + 0.2 * 0.1)
    assert greedy_tree(probs, 1).num_nodes == 1 and greedy_tree(probs, 3).paths == ((0,), (0, 0))  # .6 * .5 > .2
    with pytest.raises(ValueError, match="rank_probs must be probabilities"):
        greedy_tree(torch.tensor([[0.9, 0.3]]), 2)
    with pytest.raises(ValueError, match="num_nodes must be at most"):
        greedy_tree(probs, 8)
    with pytest.raises(ValueError, match="rank_probs must cover depth 3"):
        expected_accept_length(medusa_tree("chain-4").truncated(3), probs)
    model, heads = tiny(0, noise=0.3)
    windows = torch.randint(0, 256, (3, 20), generator=torch.Generator().manual_seed(0))
    agree = rank_agreement(model, heads, windows, k=3)
    with torch.no_grad():
        logits, hidden = model(windows[:, :-1])
        head_logits = heads(hidden)
    hits, total = torch.zeros(3), 0
    for b in range(3):  # a per-position loop: head 1 at position t guesses x_(t+3), greedy's token at t + 2
        for t in range(19 - 2):
            ranks = head_logits[1, b, t].topk(3).indices.tolist()
            greedy_next = int(logits[b, t + 2].argmax())
            hits += torch.tensor([float(r == greedy_next) for r in ranks])
            total += 1
    assert agree.shape == (4, 3) and torch.allclose(agree[1], (hits / total).double())
