"""The Medusa draft tree: from a list of paths to the tensors that verify it in one pass.

Paper: Cai et al., "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding
Heads" (2024), §2.1.2 "Tree attention"; the reference code is ``generate_medusa_buffers`` in
FasterDecoding/Medusa ``medusa/model/utils.py``.

A tree is given by its *paths* ("medusa choices"): a path ``(i₀, i₁, …, i_{d-1})`` is the node
reached by taking the ``i₀``-th most likely token of head 0, then the ``i₁``-th of head 1, and so
on. Node 0 is the *root*: the base model's own next token. With the nodes sorted by depth, then
lexicographically, the tree is described by

* ``mask`` (Tensor[N, N] bool): ``mask[i, j]`` is True iff node j is node i or an ancestor of
  it — the attention pattern that lets every candidate continuation see only its own prefix;
* ``depths`` (Tensor[N]): 0 for the root; the *position id* of node i is ``cache_len + depth``,
  so siblings share a position, as they would in a plain sequence;
* ``tree_indices`` (Tensor[N]): where node i's token is found in the flat candidate vector
  ``[root, head₀ top-k, head₁ top-k, …]``: ``1 + (d - 1)·top_k + i_{d-1}`` for depth d ≥ 1;
* ``retrieve_indices`` (Tensor[P, D + 1]): for each of the P leaves, the node indices from the
  root to the leaf, padded with −1 — each row is one candidate continuation.

**Building a tree** (Medusa §2.3.3): with ``a[d][i]`` the measured probability that head d's
i-th guess is the token greedy decoding writes, and guesses treated as independent, a node's
chance to be accepted is the product of ``a`` along its path, and a tree's expected number of
accepted drafted tokens is the sum of that over its nodes (:func:`expected_accept_length`).
Since a child's product never exceeds its parent's, adding the most likely missing node one at
a time keeps the tree prefix-closed and maximises the expectation for every size
(:func:`greedy_tree`).

Differences from the reference: the tree is a frozen dataclass rather than a dict of buffers,
and bad paths raise a ``ValueError`` (the reference would silently build a wrong mask).
:func:`MedusaTree.truncated` prunes the tree near the end of generation.

Notebook: ``10_medusa`` ("The draft tree"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from course_lib import _checks
from course_lib._export import export

Path = tuple[int, ...]

# Small trees for a byte-level model with 4 heads; "chain" is classic speculative decoding.
EXAMPLE_TREES: dict[str, list[Path]] = {
    "chain-4": [(0,), (0, 0), (0, 0, 0), (0, 0, 0, 0)],
    "small": [(0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)],
    "medium": [(0,), (1,), (2,), (0, 0), (0, 1), (1, 0), (2, 0), (0, 0, 0), (0, 0, 1), (0, 1, 0),
               (1, 0, 0), (0, 0, 0, 0)],
    "large": [(0,), (1,), (2,), (3,), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (3, 0),
              (0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 2, 0), (2, 0, 0), (0, 0, 0, 0),
              (0, 0, 1, 0), (0, 1, 0, 0), (1, 0, 0, 0), (0, 0, 0, 1)],
}


def _check_paths(paths: Sequence[Sequence[int]]) -> list[Path]:
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
        raise TypeError(f"paths must be a list of tuples of ints like [(0,), (0, 1)]; got {type(paths).__name__}")
    clean: list[Path] = []
    for p in paths:
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) == 0:
            raise ValueError(f"each path must be a non-empty tuple of ints like (0, 1); got {p!r}")
        for i in p:
            _checks.integer(f"path {tuple(p)!r} entry", i, minimum=0)
        clean.append(tuple(int(i) for i in p))
    if len(set(clean)) != len(clean):
        dup = next(p for p in clean if clean.count(p) > 1)
        raise ValueError(f"paths must not repeat; got {dup} twice")
    present = set(clean)
    for p in clean:
        if len(p) > 1 and p[:-1] not in present:
            raise ValueError(f"path {p} has no parent: its prefix {p[:-1]} is missing from paths "
                             "(a tree needs every prefix of every path)")
    return sorted(clean, key=lambda p: (len(p), p))


@export("speculative.MedusaTree")
@dataclass(frozen=True)
class MedusaTree:
    """A draft tree (see the module docstring). Build it with :meth:`from_paths`."""

    paths: tuple[Path, ...]  # sorted by (depth, path); node i + 1 is paths[i], node 0 is the root
    top_k: int  # candidates taken from each head: 1 + the largest index in any path

    @classmethod
    def from_paths(cls, paths: Sequence[Sequence[int]], top_k: int | None = None) -> MedusaTree:
        """Validate ``paths`` and build the tree.

        Args:
            paths: e.g. ``[(0,), (1,), (0, 0)]``; every prefix of a path must be a path too.
            top_k: candidates per head; default 1 + the largest index used.

        Raises:
            TypeError: ``paths`` is not a list of tuples of ints.
            ValueError: an empty path, a negative index, a repeated path, a path whose prefix
                is missing, or ``top_k`` smaller than an index needs.
        """
        clean = _check_paths(paths)
        need = 1 + max((i for p in clean for i in p), default=0)
        top_k = need if top_k is None else _checks.integer("top_k", top_k, minimum=1)
        if top_k < need:
            raise ValueError(f"top_k must be at least {need} for these paths (largest index {need - 1}); got {top_k}")
        return cls(tuple(clean), top_k)

    @property
    def num_nodes(self) -> int:
        """N: the root plus one node per path."""
        return 1 + len(self.paths)

    @cached_property
    def depth(self) -> int:
        """D: the longest path, i.e. how many heads the tree uses."""
        return max((len(p) for p in self.paths), default=0)

    @cached_property
    def parents(self) -> tuple[int, ...]:
        """``parents[i]``: node i's parent (−1 for the root)."""
        index = {p: i + 1 for i, p in enumerate(self.paths)}
        return (-1, *(index[p[:-1]] if len(p) > 1 else 0 for p in self.paths))

    @cached_property
    def depths(self) -> torch.Tensor:
        """Tensor[N] long: each node's depth (0 for the root)."""
        return torch.tensor([0, *(len(p) for p in self.paths)], dtype=torch.long)

    @cached_property
    def mask(self) -> torch.Tensor:
        """Tensor[N, N] bool: ``mask[i, j]`` iff node j is node i or one of its ancestors."""
        n = self.num_nodes
        mask = torch.eye(n, dtype=torch.bool)
        for i in range(1, n):  # parents come before children, so the parent's row is complete
            mask[i] |= mask[self.parents[i]]
        return mask

    @cached_property
    def tree_indices(self) -> torch.Tensor:
        """Tensor[N] long: node i's token in the flat ``[root, head₀ top-k, head₁ top-k, …]``."""
        return torch.tensor([0, *(1 + (len(p) - 1) * self.top_k + p[-1] for p in self.paths)], dtype=torch.long)

    @cached_property
    def retrieve_indices(self) -> torch.Tensor:
        """Tensor[P, D + 1] long: root-to-leaf node indices of each leaf, padded with −1."""
        prefixes = {p[:-1] for p in self.paths}
        leaves = [i + 1 for i, p in enumerate(self.paths) if p not in prefixes] or [0]
        rows = []
        for leaf in leaves:
            chain = [leaf]
            while chain[-1] != 0:
                chain.append(self.parents[chain[-1]])
            chain.reverse()
            rows.append(chain + [-1] * (self.depth + 1 - len(chain)))
        return torch.tensor(rows, dtype=torch.long)

    def truncated(self, max_depth: int) -> MedusaTree:
        """The same tree without nodes deeper than ``max_depth`` (still prefix-closed)."""
        _checks.integer("max_depth", max_depth, minimum=0)
        return MedusaTree(tuple(p for p in self.paths if len(p) <= max_depth), self.top_k)


@export("speculative.medusa_tree")
def medusa_tree(paths: Sequence[Sequence[int]] | str, top_k: int | None = None) -> MedusaTree:
    """Build a :class:`MedusaTree` from paths or from a name in :data:`EXAMPLE_TREES`.

    Example:
        >>> tree = medusa_tree([(0,), (1,), (0, 0)])
        >>> tree.mask.int().tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1]]
        >>> tree.retrieve_indices.tolist()
        [[0, 2, -1], [0, 1, 3]]
    """
    if isinstance(paths, str):
        _checks.one_of("paths", paths, EXAMPLE_TREES)
        paths = EXAMPLE_TREES[paths]
    return MedusaTree.from_paths(paths, top_k)


def _check_rank_probs(rank_probs: torch.Tensor) -> torch.Tensor:
    _checks.tensor("rank_probs", rank_probs, ndim=2, floating=True)
    if rank_probs.numel() and (bool((rank_probs < 0).any()) or bool((rank_probs.sum(-1) > 1 + 1e-6).any())):
        raise ValueError("rank_probs must be probabilities: non-negative, each row (one head's ranks) summing to "
                         f"at most 1; got rows summing to {rank_probs.sum(-1).tolist()}")
    return rank_probs.double()


@export("speculative.expected_accept_length")
def expected_accept_length(tree: MedusaTree, rank_probs: torch.Tensor) -> float:
    """Expected accepted drafted tokens per step: Σ over nodes of Π ``rank_probs[d, i]`` along the path.

    Args:
        tree: the draft tree.
        rank_probs: Tensor[K, k], ``rank_probs[d, i]`` = P(head d's i-th guess is accepted),
            with K >= the tree's depth and k >= its top_k.

    Returns:
        The expectation (add 1 for the root: tokens per step).

    Example:
        >>> probs = torch.tensor([[0.6, 0.2], [0.5, 0.1]])
        >>> round(expected_accept_length(medusa_tree([(0,), (1,), (0, 0)]), probs), 4)  # .6 + .2 + .6 * .5
        1.1
    """
    _checks.instance("tree", tree, MedusaTree)
    probs = _check_rank_probs(rank_probs)
    if probs.shape[0] < tree.depth or probs.shape[1] < tree.top_k:
        raise ValueError(f"rank_probs must cover depth {tree.depth} and top-{tree.top_k}; got shape "
                         f"{tuple(probs.shape)}")
    total = 0.0
    for path in tree.paths:
        p = 1.0
        for d, i in enumerate(path):
            p *= float(probs[d, i])
        total += p
    return total


@export("speculative.greedy_tree")
def greedy_tree(rank_probs: torch.Tensor, num_nodes: int) -> MedusaTree:
    """The ``num_nodes``-node tree that maximises :func:`expected_accept_length` (Medusa §2.3.3).

    Adds, one at a time, the missing node with the largest path probability; its parent is
    always already in the tree (a child's probability is at most its parent's).

    Args:
        rank_probs: Tensor[K, k] as for :func:`expected_accept_length`.
        num_nodes: N >= 1, the root included.

    Raises:
        ValueError: not probabilities, or more nodes than K heads × k ranks can make.
    """
    probs = _check_rank_probs(rank_probs)
    n = _checks.integer("num_nodes", num_nodes, minimum=1)
    K, k = probs.shape
    frontier: dict[tuple[int, ...], float] = {(i,): float(probs[0, i]) for i in range(k)} if K else {}
    paths: list[Path] = []
    while len(paths) < n - 1:
        if not frontier:
            raise ValueError(f"num_nodes must be at most the nodes {K} heads x top-{k} can make; got {n}")
        best = max(frontier, key=lambda p: (frontier[p], -len(p), [-i for i in p]))  # ties: shallow, low rank
        p_best = frontier.pop(best)
        paths.append(best)
        if len(best) < K:
            for i in range(k):
                frontier[best + (i,)] = p_best * float(probs[len(best), i])
    return MedusaTree.from_paths(paths) if paths else MedusaTree((), 1)
