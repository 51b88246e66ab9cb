"""What a collective sent and received — and the contract every all-reduce in this chapter checks.

An all-reduce's cost on a network is its *traffic*: how many bytes each rank pushes onto its
link. :class:`Traffic` is what :func:`~course_lib.distributed.ring_all_reduce` and
:func:`~course_lib.distributed.naive_all_reduce` return for the calling rank, counting the
payload only (the small shape check before the algorithm is not counted).

:func:`check_all_reduce_args` is the boundary check both algorithms share: a contiguous tensor
of a supported dtype, a process group this process belongs to, and — with one small
``all_gather`` of shapes — the same shape and dtype on every rank, so a mismatch is a clear
``ValueError`` on every rank instead of garbage or a hang.

Notebook: ``04_ddp`` ("Counting bytes"). Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.launcher import require_process_group

# Dtypes the algorithms reduce with a local ``add_`` after a byte-exact send/recv.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64)
_MAX_CHECKED_DIMS = 8  # shape entries compared across ranks (plus ndim and numel)


@export("distributed.Traffic")
@dataclass
class Traffic:
    """Bytes one rank sent and received during one collective (payload only)."""

    sent_bytes: int = 0  # bytes this rank sent
    received_bytes: int = 0  # bytes this rank received
    messages: int = 0  # point-to-point sends this rank issued

    def add(self, sent: int, received: int) -> None:
        """Account for one exchange: ``sent`` and ``received`` bytes (a zero send is no message)."""
        self.sent_bytes += sent
        self.received_bytes += received
        self.messages += 1 if sent else 0


def group_ranks(group: dist.ProcessGroup | None, caller: str) -> tuple[int, int]:
    """``(rank, world_size)`` of this process inside ``group``, after checking it can take part."""
    require_process_group(caller)
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError(f"group must contain this process (global rank {dist.get_rank()}); it does not")
    return rank, dist.get_world_size(group)


def global_rank(group: dist.ProcessGroup | None, rank: int) -> int:
    """The global rank of ``group``'s rank ``rank`` (send/recv address peers globally)."""
    return rank if group is None else dist.get_global_rank(group, rank)


def check_all_reduce_args(name: str, tensor: torch.Tensor, group: dist.ProcessGroup | None,
                          caller: str, validate: bool = True) -> tuple[int, int]:
    """Check an all-reduce's arguments on this rank and (``validate``) across ranks.

    Returns:
        ``(rank, world_size)`` in ``group``.

    Raises:
        TypeError: not a tensor, or a dtype outside :data:`SUPPORTED_DTYPES`.
        ValueError: a non-contiguous tensor (the algorithms work on flat views of its
            storage), a group without this process, or shapes/dtypes that differ across ranks.
        RuntimeError: no initialised process group.
    """
    _checks.tensor(name, tensor, dtypes=SUPPORTED_DTYPES)
    if not tensor.is_contiguous():
        raise ValueError(f"{name} must be contiguous (the all-reduce works in place on a flat view); "
                         f"got strides {tensor.stride()} for shape {tuple(tensor.shape)}: pass "
                         f"{name}.contiguous() and read the result from that tensor")
    rank, world_size = group_ranks(group, caller)
    if validate and world_size > 1:
        _check_same_shape(name, tensor, group, world_size)
    return rank, world_size


def _check_same_shape(name: str, tensor: torch.Tensor, group: dist.ProcessGroup | None,
                      world_size: int) -> None:
    """One tiny all_gather of (ndim, dtype, numel, shape): every rank raises the same error."""
    dims = list(tensor.shape[:_MAX_CHECKED_DIMS]) + [-1] * (_MAX_CHECKED_DIMS - min(tensor.dim(), _MAX_CHECKED_DIMS))
    meta = torch.tensor([tensor.dim(), SUPPORTED_DTYPES.index(tensor.dtype), tensor.numel(), *dims],
                        dtype=torch.int64, device=tensor.device)
    gathered = [torch.empty_like(meta) for _ in range(world_size)]
    dist.all_gather(gathered, meta, group=group)
    rows = [g.tolist() for g in gathered]
    if any(row != rows[0] for row in rows):
        listing = ", ".join(
            f"rank {r}: shape {tuple(row[3:3 + row[0]]) if row[0] <= _MAX_CHECKED_DIMS else f'<{row[0]} dims>'} "
            f"{SUPPORTED_DTYPES[row[1]]}" for r, row in enumerate(rows))
        raise ValueError(f"{name} must have the same shape and dtype on every rank; got {listing}")
