"""Exercises for chapter 10: the three pieces of Medusa that are easiest to get subtly wrong.

* :data:`tree_mask` — the tree attention mask from a sorted list of paths.
* :data:`retrieve_paths` — the root-to-leaf node indices of every leaf (padded with −1).
* :data:`greedy_accept` — the greedy acceptance rule: best path and accepted length.
* :data:`expected_length` — a tree's expected accepted length from per-rank acceptance (§2.3.3).

References are small, loop-based transcriptions of the definitions (the library's
:class:`~course_lib.speculative.MedusaTree` and :func:`~course_lib.speculative.greedy_acceptance`
compute the same). Notebook: ``10_medusa`` ("Exercises"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

import random

import torch

from course_lib.exercises import Exercise, randn


def _random_paths(rng: random.Random) -> list[tuple[int, ...]]:
    """A random prefix-closed set of paths, sorted by (depth, path)."""
    paths: set[tuple[int, ...]] = set()
    for _ in range(rng.randint(1, 8)):
        path: tuple[int, ...] = ()
        for _ in range(rng.randint(1, 4)):
            path = (*path, rng.randint(0, 2))
            paths.add(path)
    return sorted(paths, key=lambda p: (len(p), p))


def _tree_mask_solution(paths: list[tuple[int, ...]]) -> torch.Tensor:
    nodes = [(), *paths]  # node 0 is the root, the empty path
    n = len(nodes)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i, p in enumerate(nodes):
        for j, q in enumerate(nodes):
            mask[i, j] = p[: len(q)] == q  # q is a prefix of p: j is i or an ancestor of i
    return mask


tree_mask = Exercise(
    title="tree attention mask",
    task="""
        A Medusa tree is given by its paths, sorted by (length, path): node 0 is the root and
        node i (i >= 1) is paths[i - 1]. Write `tree_mask(paths)` returning a bool tensor of
        shape (N, N), N = len(paths) + 1, with mask[i, j] True iff node j is node i itself or
        one of its ancestors (the root is everyone's ancestor).
            tree_mask([(0,), (1,), (0, 0)]).int()
            -> [[1,0,0,0], [1,1,0,0], [1,0,1,0], [1,1,0,1]]
    """,
    reference=_tree_mask_solution,
    edge_cases=[{"paths": [(0,)]}, {"paths": [(0,), (1,), (0, 0)]},
                {"paths": [(0,), (0, 0), (0, 0, 0), (0, 0, 0, 0)]}, {"paths": [(0,), (1,), (2,), (3,)]}],
    random_case=lambda rng: {"paths": _random_paths(rng)},
    hints=["Node j is an ancestor of node i exactly when path j is a prefix of path i.",
           "Treat the root as the empty path (); `p[:len(q)] == q` tests 'q is a prefix of p'."],
)


def _retrieve_solution(paths: list[tuple[int, ...]]) -> torch.Tensor:
    nodes = [(), *paths]
    index = {p: i for i, p in enumerate(nodes)}
    depth = max(len(p) for p in paths)
    leaves = [p for p in paths if not any(len(q) == len(p) + 1 and q[: len(p)] == p for q in paths)]
    rows = [[index[leaf[:d]] for d in range(len(leaf) + 1)] + [-1] * (depth - len(leaf)) for leaf in leaves]
    return torch.tensor(rows, dtype=torch.long)


retrieve_paths = Exercise(
    title="retrieve indices",
    task="""
        Same numbering as `tree_mask` (node 0 = root, node i = paths[i - 1]). Write
        `retrieve_paths(paths)` returning a long tensor of shape (P, D + 1): one row per leaf
        (a path that is no other path's parent), in the order the leaves appear in `paths`,
        holding the node indices from the root to that leaf, padded with -1 to D + 1 entries
        (D = the longest path's length).
            retrieve_paths([(0,), (1,), (0, 0)]) -> [[0, 2, -1], [0, 1, 3]]
    """,
    reference=_retrieve_solution,
    edge_cases=[{"paths": [(0,)]}, {"paths": [(0,), (1,), (0, 0)]},
                {"paths": [(0,), (0, 0), (0, 0, 0)]}, {"paths": [(0,), (1,), (0, 0), (1, 0), (1, 1)]}],
    random_case=lambda rng: {"paths": _random_paths(rng)},
    hints=["A leaf is a path that is not the prefix of a path one longer than it.",
           "The nodes on the way to leaf p are the prefixes p[:0], p[:1], …, p[:len(p)]; "
           "look their indices up in a dict."],
)


def _greedy_solution(candidates: torch.Tensor, logits: torch.Tensor) -> tuple[int, int]:
    best, best_len = 0, -1
    for p in range(candidates.shape[0]):
        n = 0
        while n + 1 < candidates.shape[1] and int(candidates[p, n + 1]) == int(logits[p, n].argmax()):
            n += 1
        if n > best_len:
            best, best_len = p, n
    return best, best_len


def _random_greedy_case(rng: random.Random) -> dict:
    P, L, V = rng.randint(1, 5), rng.randint(2, 5), rng.randint(2, 6)
    logits = randn(rng, P, L, V)
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    candidates = torch.randint(0, V, (P, L), generator=gen)
    agree = torch.rand(P, L, generator=gen) < 0.7  # plant matches so long runs happen
    candidates[:, 1:] = torch.where(agree[:, 1:], logits[:, :-1].argmax(-1), candidates[:, 1:])
    return {"candidates": candidates, "logits": logits}


greedy_accept = Exercise(
    title="greedy acceptance",
    task="""
        `candidates` (long, shape (P, L)) holds P candidate paths, root first; `logits`
        (shape (P, L, V)) holds the base model's logits at each node: logits[p, i] predicts the
        token after candidates[p, i]. Drafted token candidates[p, i + 1] is accepted iff it
        equals logits[p, i].argmax() and all drafted tokens before it on that path were.
        Write `greedy_accept(candidates, logits)` returning (best, length) as Python ints: the
        path with the most accepted drafted tokens (the first such path on ties) and that count.
    """,
    reference=_greedy_solution,
    edge_cases=[
        {"candidates": torch.tensor([[0, 1, 2], [0, 1, 0]]),
         "logits": torch.eye(4)[torch.tensor([[1, 2, 0], [1, 3, 3]])]},
        {"candidates": torch.tensor([[0, 3, 3]]), "logits": torch.eye(4)[torch.tensor([[1, 3, 0]])]},
        {"candidates": torch.tensor([[0, 1, 1], [0, 1, 1]]),
         "logits": torch.eye(2)[torch.tensor([[1, 1, 1], [1, 1, 1]])]},
    ],
    random_case=_random_greedy_case,
    hints=["Compare candidates[:, 1:] with logits[:, :-1].argmax(-1): a (P, L - 1) table of matches.",
           "Only the unbroken run of matches from the start counts: a cumulative product of the "
           "matches (as ints) along each row, then a sum, gives each path's length."],
)

EXERCISES = (tree_mask, retrieve_paths, greedy_accept)


def _expected_length_solution(paths: list[tuple[int, ...]], rank_probs: torch.Tensor) -> float:
    total = 0.0
    for path in paths:  # every node but the root: accepted iff every guess on its path is
        p = 1.0
        for depth, rank in enumerate(path):
            p *= float(rank_probs[depth, rank])
        total += p
    return total


def _random_expected_case(rng: random.Random) -> dict:
    probs = randn(rng, 4, 3).abs()
    return {"paths": _random_paths(rng), "rank_probs": probs / probs.sum(-1, keepdim=True) * rng.random()}


expected_length = Exercise(
    title="a tree's expected accepted length",
    task="""
        rank_probs[d, i] (a (K, k) float tensor) is the probability that head d's i-th guess is
        accepted. Treat guesses as independent: a node (a path (i0, i1, ...)) is accepted iff
        every guess on its path is. Write `expected_length(paths, rank_probs)`: the expected
        number of accepted drafted tokens in one step of the tree given by `paths` (the root
        not counted).
            expected_length([(0,), (1,), (0, 0)], torch.tensor([[0.6, 0.2], [0.5, 0.1]])) -> 1.1
    """,
    reference=_expected_length_solution,
    edge_cases=[
        {"paths": [(0,), (1,), (0, 0)], "rank_probs": torch.tensor([[0.6, 0.2], [0.5, 0.1]], dtype=torch.float64)},
        {"paths": [], "rank_probs": torch.tensor([[0.5]], dtype=torch.float64)},
        {"paths": [(0,), (0, 0), (0, 0, 0)], "rank_probs": torch.ones(3, 1, dtype=torch.float64)},
        {"paths": [(0,), (0, 1)], "rank_probs": torch.tensor([[0.0, 0.0], [0.9, 0.1]], dtype=torch.float64)},
    ],
    random_case=_random_expected_case,
    hints=["Linearity of expectation: the expected count is the sum of each node's acceptance probability.",
           "A node's probability is the product of rank_probs[depth, rank] along its path."],
)
