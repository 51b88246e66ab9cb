"""Ring all-reduce: reduce-scatter then all-gather, over point-to-point send/recv.

Paper: Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
workstations" (JPDC 2009); popularised for deep learning by Baidu's ``ring-allreduce`` (2017)
and Horovod (Sergeev & Del Balso, 2018).

Every rank ``r`` of ``N`` holds a tensor ``x_r`` and must end with ``sum_r x_r``. Split the
flat tensor into ``N`` chunks (sizes differ by at most one element, like ``torch.tensor_split``).
Rank ``r`` only ever sends to ``r + 1`` and receives from ``r - 1`` (mod ``N``):

* **reduce-scatter**, steps ``s = 0 .. N-2``: send chunk ``(r - s) mod N``, receive chunk
  ``(r - s - 1) mod N`` and *add* it to the local copy. After ``N - 1`` steps rank ``r`` holds
  the full sum of chunk ``(r + 1) mod N``.
* **all-gather**, steps ``s = 0 .. N-2``: send chunk ``(r + 1 - s) mod N``, receive chunk
  ``(r - s) mod N`` and *overwrite* the local copy with it.

Each rank sends ``2 (N - 1)`` chunks, i.e. ``2 (N - 1) / N`` of the tensor, independent of
``N`` for large ``N`` — the reason the ring is bandwidth-optimal. With uneven chunks rank ``r``
sends everything except chunks ``(r + 1)`` and ``(r + 2) mod N`` twice:
``2 * numel - size[(r+1) % N] - size[(r+2) % N]`` elements (:func:`ring_bytes_per_rank`).

:func:`ring_schedule` is the single source of the chunk schedule: :func:`ring_all_reduce` runs
it over real processes, :func:`simulate_ring` runs it on a list of tensors in one process (the
property tests and the widget use it).

Differences from NCCL / gloo: one ring and one chunk per step (NCCL pipelines many small slices
over several rings and uses trees for small messages); each step waits for its send and receive
to finish before the next one starts; the reduction order differs from ``dist.all_reduce``, so
floating-point results agree to rounding, integer results exactly.

Notebook: ``04_ddp`` ("Ring all-reduce"). Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.traffic import Traffic, check_all_reduce_args, global_rank

Phase = Literal["reduce-scatter", "all-gather"]
# exchange(send, recv_numel): send `send` to the right neighbour, return what the left one sent
Exchange = Callable[[torch.Tensor, int], torch.Tensor]
StepFn = Callable[[list[torch.Tensor], int, int, int, Exchange], None]


@dataclass(frozen=True)
class Transfer:
    """One message of the schedule: ``src`` sends its chunk ``chunk`` to ``dst``."""

    phase: Phase  # reduce-scatter: the receiver adds; all-gather: the receiver overwrites
    src: int  # sending rank
    dst: int  # receiving rank, (src + 1) mod N
    chunk: int  # which of the N chunks


@export("distributed.chunk_bounds")
def chunk_bounds(numel: int, world_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each of the ``world_size`` chunks of a flat tensor of ``numel`` elements.

    The first ``numel % world_size`` chunks get one extra element (``torch.tensor_split``'s rule).
    """
    numel = _checks.integer("numel", numel, minimum=0)
    world_size = _checks.integer("world_size", world_size, minimum=1)
    base, extra = divmod(numel, world_size)
    bounds, start = [], 0
    for i in range(world_size):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


@export("distributed.ring_schedule")
def ring_schedule(world_size: int) -> list[list[Transfer]]:
    """The ring's ``2 (N - 1)`` steps; step ``t`` lists one :class:`Transfer` per source rank.

    ``ring_schedule(N)[t][r]`` is what rank ``r`` sends at step ``t``; it receives
    ``ring_schedule(N)[t][(r - 1) % N]``.
    """
    n = _checks.integer("world_size", world_size, minimum=1)
    reduce_scatter = [[Transfer("reduce-scatter", r, (r + 1) % n, (r - s) % n) for r in range(n)]
                      for s in range(n - 1)]
    all_gather = [[Transfer("all-gather", r, (r + 1) % n, (r + 1 - s) % n) for r in range(n)]
                  for s in range(n - 1)]
    return reduce_scatter + all_gather


@export("distributed.ring_bytes_per_rank")
def ring_bytes_per_rank(numel: int, world_size: int, element_size: int, rank: int = 0) -> int:
    """Exact bytes rank ``rank`` sends in :func:`ring_all_reduce`.

    ``2 * numel - size[(rank+1) % N] - size[(rank+2) % N]`` elements; ``2 (N-1)/N * numel`` when
    ``N`` divides ``numel``. A rank receives what its left neighbour sends:
    ``ring_bytes_per_rank(numel, N, element_size, (rank - 1) % N)`` — the same amount when the
    chunks are even.
    """
    n = _checks.integer("world_size", world_size, minimum=1)
    _checks.integer("rank", rank, minimum=0, maximum=n - 1)
    _checks.integer("element_size", element_size, minimum=1)
    if n == 1:
        return 0
    sizes = [b - a for a, b in chunk_bounds(numel, n)]
    return (2 * numel - sizes[(rank + 1) % n] - sizes[(rank + 2) % n]) * element_size


@export("distributed.simulate_ring")
def simulate_ring(tensors: list[torch.Tensor], stop_after: int | None = None) -> list[torch.Tensor]:
    """Run the ring schedule on one tensor per rank, in one process; return each rank's result.

    Args:
        tensors: rank ``r``'s input is ``tensors[r]``; same shape and dtype for all.
        stop_after: run only the first ``stop_after`` steps (the widget shows partial states).

    Returns:
        Each rank's tensor after the (partial) ring; after all ``2 (N-1)`` steps every entry
        equals ``sum(tensors)`` up to rounding.
    """
    if not isinstance(tensors, list | tuple) or not tensors:
        raise ValueError(f"tensors must be a non-empty list with one tensor per rank; got {tensors!r}")
    for r, t in enumerate(tensors):
        _checks.tensor(f"tensors[{r}]", t)
        if t.shape != tensors[0].shape or t.dtype != tensors[0].dtype:
            raise ValueError(f"tensors must share one shape and dtype; got tensors[0] {tuple(tensors[0].shape)} "
                             f"{tensors[0].dtype} but tensors[{r}] {tuple(t.shape)} {t.dtype}")
    n = len(tensors)
    flats = [t.detach().clone().reshape(-1) for t in tensors]  # (numel,) per rank
    chunks = [[f[a:b] for a, b in chunk_bounds(f.numel(), n)] for f in flats]
    steps = ring_schedule(n)
    for step in steps[:len(steps) if stop_after is None else stop_after]:
        # Every rank sends before anyone receives: snapshot the outgoing chunks first.
        outgoing = [chunks[m.src][m.chunk].clone() for m in step]
        for m, data in zip(step, outgoing):
            target = chunks[m.dst][m.chunk]
            if m.phase == "reduce-scatter":
                target.add_(data)
            else:
                target.copy_(data)
    return [f.view_as(t) for f, t in zip(flats, tensors)]


def _exchange(send: torch.Tensor, dst: int, recv: torch.Tensor, src: int,
              group: dist.ProcessGroup | None) -> None:
    """Send to ``dst`` and receive from ``src`` at the same time (blocking sends would deadlock)."""
    ops = []
    if send.numel():
        ops.append(dist.P2POp(dist.isend, send, dst, group))
    if recv.numel():
        ops.append(dist.P2POp(dist.irecv, recv, src, group))
    if ops:
        for work in dist.batch_isend_irecv(ops):
            work.wait()


@export("distributed.ring_step")
def ring_step(chunks: list[torch.Tensor], rank: int, world_size: int, step: int, exchange: Exchange) -> None:
    """Run step ``step`` of the ring on this rank, in place on its ``chunks``.

    Args:
        chunks: this rank's ``N`` chunks (views into its flat tensor, sizes as :func:`chunk_bounds`).
        rank: this rank's index in the ring, ``0 .. N-1``.
        world_size: ``N``.
        step: ``0 .. 2 (N - 1) - 1``; the first ``N - 1`` steps reduce-scatter, the rest all-gather.
        exchange: ``exchange(send, recv_numel)`` sends ``send`` to rank ``r + 1`` and returns the
            ``recv_numel`` elements rank ``r - 1`` sent in the same step.

    Reduce-scatter adds the received chunk to the local one; all-gather overwrites it
    (:func:`ring_schedule` says which chunk goes where). :func:`ring_all_reduce` calls this once
    per step; its ``step_fn`` argument takes another function with the same signature.
    """
    schedule = ring_schedule(world_size)[step]
    outgoing, incoming = schedule[rank], schedule[(rank - 1) % world_size]
    received = exchange(chunks[outgoing.chunk], chunks[incoming.chunk].numel())
    if incoming.phase == "reduce-scatter":
        chunks[incoming.chunk].add_(received)
    else:
        chunks[incoming.chunk].copy_(received)


@export("distributed.ring_all_reduce")
def ring_all_reduce(tensor: torch.Tensor, group: dist.ProcessGroup | None = None, *,
                    validate: bool = True, step_fn: StepFn | None = None) -> Traffic:
    """Sum ``tensor`` across the ranks of ``group`` in place, with the ring algorithm.

    Call it on every rank of ``group`` with tensors of the same shape and dtype (as
    ``dist.all_reduce(tensor, op=SUM)``).

    Args:
        tensor: a contiguous tensor of any shape, dtype in ``SUPPORTED_DTYPES``; overwritten
            with the sum.
        group: the process group (default: the whole world).
        validate: first check, with one tiny ``all_gather``, that every rank passed the same
            shape and dtype; ``False`` skips it (timing runs).
        step_fn: what runs each step (default :func:`ring_step`); the chapter's exercise plugs
            the learner's step in here.

    Returns:
        :class:`Traffic`: the bytes this rank sent and received.

    Raises:
        TypeError: not a tensor, or an unsupported dtype.
        ValueError: non-contiguous, shapes or dtypes that differ across ranks, a group without
            this process.
        RuntimeError: no initialised process group.

    Example:
        >>> t = torch.full((5,), float(dist.get_rank()))  # doctest: +SKIP
        >>> ring_all_reduce(t); t                            # doctest: +SKIP
        tensor([6., 6., 6., 6., 6.])  # on 4 ranks: 0 + 1 + 2 + 3
    """
    rank, n = check_all_reduce_args("tensor", tensor, group, "ring_all_reduce", validate)
    traffic = Traffic()
    if n == 1:
        return traffic
    flat = tensor.view(-1)  # (numel,), shares storage: the result lands in `tensor`
    chunks = [flat[a:b] for a, b in chunk_bounds(flat.numel(), n)]
    inbox = torch.empty_like(chunks[0])  # chunk 0 is the largest
    right, left = global_rank(group, (rank + 1) % n), global_rank(group, (rank - 1) % n)

    def exchange(send: torch.Tensor, recv_numel: int) -> torch.Tensor:
        recv = inbox[:recv_numel]
        _exchange(send.contiguous(), right, recv, left, group)
        traffic.add(send.numel() * send.element_size(), recv.numel() * recv.element_size())
        return recv

    for step in range(2 * (n - 1)):
        (step_fn or ring_step)(chunks, rank, n, step, exchange)
    return traffic
