"""Naive all-reduce: every rank sends its tensor to rank 0, which sums and sends the result back.

The baseline the ring is measured against. With ``N`` ranks and a tensor of ``B`` bytes:

* rank 0 receives ``(N - 1) B`` bytes and sends ``(N - 1) B`` bytes — all traffic funnels through
  one link, so the time grows linearly with ``N``;
* every other rank sends ``B`` and receives ``B``.

Compare the ring, where every rank sends ``2 (N - 1) / N * B < 2 B`` whatever ``N`` is
(:func:`~course_lib.distributed.ring_bytes_per_rank`). Rank 0 adds the others' tensors in rank
order, so the result is deterministic; it is what ``dist.reduce`` + ``dist.broadcast`` compute,
written with point-to-point messages so that every byte is counted.

Notebook: ``04_ddp`` ("Counting bytes", "Timing"). Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.traffic import Traffic, check_all_reduce_args, global_rank


@export("distributed.naive_bytes_per_rank")
def naive_bytes_per_rank(numel: int, world_size: int, element_size: int, rank: int = 0) -> int:
    """Bytes rank ``rank`` sends (and receives) in :func:`naive_all_reduce`: ``(N-1) B`` on rank 0, ``B`` elsewhere."""
    n = _checks.integer("world_size", world_size, minimum=1)
    _checks.integer("rank", rank, minimum=0, maximum=n - 1)
    nbytes = _checks.integer("numel", numel, minimum=0) * _checks.integer("element_size", element_size, minimum=1)
    if n == 1:
        return 0
    return (n - 1) * nbytes if rank == 0 else nbytes


@export("distributed.naive_all_reduce")
def naive_all_reduce(tensor: torch.Tensor, group: dist.ProcessGroup | None = None, *,
                     validate: bool = True) -> Traffic:
    """Sum ``tensor`` across ``group`` in place: reduce to rank 0, then send the sum to everyone.

    Same contract as :func:`~course_lib.distributed.ring_all_reduce` (arguments, errors, result).

    Returns:
        :class:`Traffic`: the bytes this rank sent and received.
    """
    rank, n = check_all_reduce_args("tensor", tensor, group, "naive_all_reduce", validate)
    traffic = Traffic()
    if n == 1 or tensor.numel() == 0:
        return traffic
    nbytes = tensor.numel() * tensor.element_size()
    root = global_rank(group, 0)
    if rank == 0:
        inbox = torch.empty_like(tensor)
        for src in range(1, n):  # in rank order: a deterministic sum
            dist.recv(inbox, global_rank(group, src), group=group)
            tensor.add_(inbox)
            traffic.add(0, nbytes)
        for dst in range(1, n):
            dist.send(tensor, global_rank(group, dst), group=group)
            traffic.add(nbytes, 0)
    else:
        dist.send(tensor, root, group=group)
        dist.recv(tensor, root, group=group)
        traffic.add(nbytes, nbytes)
    return traffic
