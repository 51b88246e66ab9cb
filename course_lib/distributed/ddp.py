"""SimpleDDP: distributed data parallel in ~150 lines — broadcast, bucket, all-reduce, average.

Paper: Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training"
(VLDB 2020) — the design of ``torch.nn.parallel.DistributedDataParallel``.

Data parallelism: every rank holds a full replica of the model and a different shard of the
global batch ``B = N * b``. If every rank computes the gradient of its mean loss on ``b``
examples, the average over ranks is the gradient of the mean loss on all ``B``:

    g = (1/N) sum_r g_r,    g_r = grad (1/b) sum_{i in shard r} loss_i

so after an all-reduce and a division by ``N`` every replica takes the same optimizer step and
the replicas stay identical. What makes it fast is *when* the all-reduce happens:

1. at construction, broadcast parameters and buffers from rank 0 (replicas start equal);
2. group parameters into **buckets** of about ``bucket_cap_mb``, in *reverse* parameter order —
   backward produces the last layer's gradients first;
3. a hook on each parameter fires when its gradient is accumulated; when every gradient of a
   bucket is in, copy them into the bucket's flat buffer and launch an **asynchronous**
   ``all_reduce`` — it runs while backward keeps computing the earlier layers' gradients;
   Each gradient is multiplied by ``1/N`` *while* it is copied into the bucket, so the
   all-reduce sums ``g_r / N`` — PyTorch's reducer does the same (``mul_out(bucket_view, grad,
   1/N)`` in ``reducer.cpp``): dividing first keeps an FP16 sum of large gradients from
   overflowing (two ranks' 40000 sum to 80000 > 65504 = inf; halves sum to 40000);
4. at the end of backward (a callback queued on the autograd engine), wait for every bucket
   and copy the averages back into ``.grad`` — so the optimizer step, which comes after
   ``loss.backward()`` returns, always sees synchronised gradients;
5. before every forward, broadcast the module's buffers (BatchNorm's running statistics) from
   rank 0, as DDP does by default (``broadcast_buffers=True``), so every replica normalises
   with the same statistics.

Small buckets start communicating earlier but pay a per-message latency many times; one huge
bucket waits for the whole backward pass and overlaps nothing.

Gradient accumulation: inside ``with model.no_sync():`` backward passes only accumulate ``.grad``
locally; the first backward after the block all-reduces the accumulated sum — one communication
per optimizer step instead of one per micro-batch, as DDP's ``no_sync``.

Unused parameters: a forward that skips a parameter (a branch taken on some steps only) leaves
its hook silent, so its bucket never fills. Without ``find_unused_parameters`` SimpleDDP raises a
``RuntimeError`` naming the parameters at the end of *that* backward, before the optimizer can
step; PyTorch's DDP notices only at the *next* forward ("Expected to have finished reduction in
the prior iteration ...") — after ``optimizer.step()`` has already used the unreduced bucket's
local gradients. With ``find_unused_parameters=True`` both walk the autograd graph from the
forward's outputs; parameters it does not reach are marked ready (their current ``.grad``, zeros
when ``None``) when backward's first gradient arrives, so every bucket still launches, and a small
all-reduce of a "used" flag per parameter tells every rank which parameters no rank used: their
``.grad`` is left as it was (``None`` stays ``None``), as in DDP. A parameter used on some ranks
only gets the average with zeros from the others. Limits (as DDP's): a rank whose loss reaches
*no* parameter launches nothing, and when only some ranks skip a parameter without
``find_unused_parameters`` the others wait in the all-reduce until the launch's timeout.

Differences from PyTorch's DDP: no ``gradient_as_bucket_view`` (gradients are copied into and
out of the buckets), no first small bucket (DDP caps bucket 0 at 1 MB), no ``static_graph``,
no comm hooks, dense gradients only, one dtype per bucket.

Notebook: ``04_ddp`` ("SimpleDDP", "Parameters a forward skips"). Tests: ``tests/test_distributed.py``,
``tests/test_distributed_practice.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.traffic import global_rank, group_ranks

MB = 2**20


@dataclass
class Bucket:
    """Parameters whose gradients travel in one all-reduce."""

    params: list[nn.Parameter]  # in the order their gradients are expected (reverse model order)
    indices: list[int]  # their positions in module.parameters()
    buffer: torch.Tensor  # flat, sum of the params' numels; the all-reduce works on it
    ready: int = 0  # gradients that arrived during this backward
    work: Any = None  # the async all-reduce's handle, once launched


@export("distributed.assign_buckets")
def assign_buckets(sizes_bytes: list[int], cap_bytes: int) -> list[list[int]]:
    """Group parameters into buckets, last parameter first; close a bucket once it holds ``cap_bytes``.

    Args:
        sizes_bytes: each parameter's size in bytes, in ``module.parameters()`` order.
        cap_bytes: a bucket is closed as soon as its size reaches this.

    Returns:
        Buckets of parameter indices, e.g. ``assign_buckets([40, 4, 400, 12], 50) == [[3, 2], [1, 0]]``.
    """
    _checks.integer("cap_bytes", cap_bytes, minimum=1)
    buckets: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for i in reversed(range(len(sizes_bytes))):
        current.append(i)
        filled += sizes_bytes[i]
        if filled >= cap_bytes:
            buckets.append(current)
            current, filled = [], 0
    if current:
        buckets.append(current)
    return buckets


@export("distributed.overlaps_backward")
def overlaps_backward(events: list[tuple[str, int]]) -> bool:
    """Whether an all-reduce was launched before the last gradient of a backward pass arrived.

    Args:
        events: :attr:`SimpleDDP.events` — ``("grad", i)``, ``("launch", b)``, ``("wait", b)`` in order.
    """
    kinds = [kind for kind, _ in events]
    if "launch" not in kinds or "grad" not in kinds:
        return False
    return kinds.index("launch") < len(kinds) - 1 - kinds[::-1].index("grad")


def _reachable_parameters(output: Any) -> set[int]:
    """``id`` of every tensor that backward from ``output`` would accumulate a gradient into.

    Walks ``grad_fn.next_functions`` from every tensor in ``output`` (a tensor, or lists, tuples
    and dicts of them) to the ``AccumulateGrad`` leaves — what DDP's reducer does in
    ``prepare_for_backward`` when ``find_unused_parameters=True``.
    """
    stack: list[Any] = []
    pending = [output]
    while pending:
        item = pending.pop()
        if isinstance(item, torch.Tensor):
            if item.grad_fn is not None:
                stack.append(item.grad_fn)
            elif item.requires_grad:  # a leaf returned as is
                stack.append(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    reached: set[int] = set()
    # Visited nodes are kept alive here, not only their ids: torch may hand out a fresh Python
    # wrapper for a graph node on each `next_functions` call (2.11 does), and a freed wrapper's id
    # can be reused by the next one, which would then be skipped as "seen".
    seen: dict[int, Any] = {}
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        if isinstance(node, torch.Tensor):
            reached.add(id(node))
            continue
        variable = getattr(node, "variable", None)  # AccumulateGrad holds its leaf tensor
        if isinstance(variable, torch.Tensor):
            reached.add(id(variable))
        stack.extend(next_fn for next_fn, _ in node.next_functions if next_fn is not None)
    return reached


@export("distributed.SimpleDDP")
class SimpleDDP(nn.Module):
    """Wrap ``module`` so that ``loss.backward()`` leaves gradients averaged over all ranks.

    Args:
        module: the model replica on this rank (its parameters are overwritten by rank 0's).
        bucket_cap_mb: target bucket size in MiB (PyTorch's DDP default is 25).
        group: the process group (default: the whole world).
        broadcast_buffers: broadcast the buffers from rank 0 before every forward (DDP's default).
        find_unused_parameters: walk the autograd graph after every forward and treat the
            parameters it does not reach as ready (DDP's argument of the same name); without it
            a parameter that gets no gradient is a ``RuntimeError`` at the end of backward.

    Attributes:
        buckets: the :class:`Bucket` list, in launch order.
        bytes_sent: bytes of gradient buckets all-reduced so far (each bucket's size per launch).
        events: this step's ``("grad", param index)``, ``("launch", bucket)`` and
            ``("wait", bucket)`` in the order they happened (the overlap made visible).

    Raises:
        TypeError: ``module`` is not an ``nn.Module``; ``broadcast_buffers`` or
            ``find_unused_parameters`` is not a ``bool``.
        ValueError: ``bucket_cap_mb`` is not positive.
        RuntimeError: no initialised process group.

    Example:
        >>> model = SimpleDDP(nn.Linear(4, 2), bucket_cap_mb=1)   # doctest: +SKIP
        >>> model(x).pow(2).mean().backward()                     # doctest: +SKIP
        >>> optimizer.step()  # gradients are already averaged     # doctest: +SKIP
    """

    def __init__(self, module: nn.Module, bucket_cap_mb: float = 25.0,
                 group: dist.ProcessGroup | None = None, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False) -> None:
        super().__init__()
        _checks.instance("module", module, nn.Module)
        cap = _checks.real("bucket_cap_mb", bucket_cap_mb, minimum=0, open_min=True)
        self.broadcast_buffers = _checks.instance("broadcast_buffers", broadcast_buffers, bool)
        self.find_unused_parameters = _checks.instance("find_unused_parameters", find_unused_parameters, bool)
        _, self.world_size = group_ranks(group, "SimpleDDP")
        self.module, self.group = module, group
        self._broadcast_from_rank0([*module.parameters(), *module.buffers()])
        params = list(module.parameters())
        trainable = [i for i, p in enumerate(params) if p.requires_grad]
        sizes = [params[i].numel() * params[i].element_size() for i in trainable]
        self.buckets: list[Bucket] = []
        for members in assign_buckets(sizes, max(1, int(cap * MB))):
            chosen = [params[trainable[j]] for j in members]
            _checks.same_dtype(**{f"parameter {trainable[j]}": params[trainable[j]] for j in members})
            buffer = torch.zeros(sum(p.numel() for p in chosen), dtype=chosen[0].dtype, device=chosen[0].device)
            self.buckets.append(Bucket(chosen, [trainable[j] for j in members], buffer))
        self._bucket_of: dict[int, int] = {}  # parameter index -> its bucket
        for b, bucket in enumerate(self.buckets):
            for p, index in zip(bucket.params, bucket.indices):
                p.register_post_accumulate_grad_hook(self._hook(index))
                self._bucket_of[index] = b
        self.events: list[tuple[str, int]] = []
        self.bytes_sent = 0
        self._sync = True  # False inside no_sync(): backward only accumulates .grad locally
        self._next_bucket = 0  # buckets launch in order, so every rank issues the same sequence
        self._finish_queued = False
        self._arrived: set[int] = set()  # parameter indices whose gradient arrived this backward
        self._unused: list[int] = []  # find_unused_parameters: not reached from the last forward's outputs
        self._used_locally: set[int] = set()  # gradients that arrived since the last synchronisation
        self._params = params

    @torch.no_grad()
    def _broadcast_from_rank0(self, tensors: list[torch.Tensor]) -> None:
        src = global_rank(self.group, 0)
        for tensor in tensors:
            dist.broadcast(tensor.data, src=src, group=self.group)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside only accumulate gradients locally (DDP's ``no_sync``).

        The first backward after the block all-reduces the accumulated gradients, so ``k``
        micro-batches cost one communication instead of ``k``.
        """
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.broadcast_buffers:
            self._broadcast_from_rank0(list(self.module.buffers()))
        output = self.module(*args, **kwargs)
        if self.find_unused_parameters and self._sync and torch.is_grad_enabled():
            reached = _reachable_parameters(output)
            self._unused = [i for bucket in self.buckets for i in bucket.indices if id(self._params[i]) not in reached]
        return output

    def _hook(self, index: int):
        def on_grad_ready(_param: nn.Parameter) -> None:
            self._used_locally.add(index)
            if not self._sync:  # inside no_sync(): the gradient just accumulates in .grad
                return
            if not self._finish_queued:  # first gradient of this backward
                self.events = []
                torch.autograd.Variable._execution_engine.queue_callback(self.finish_gradient_synchronization)
                self._finish_queued = True
                for unused in self._unused:  # find_unused_parameters: ready now, as DDP's reducer does
                    self._mark_ready(unused)
            self._mark_ready(index)
            self._launch_ready_buckets()
        return on_grad_ready

    def _mark_ready(self, index: int) -> None:
        if index in self._arrived:
            self._reset()
            raise RuntimeError(f"SimpleDDP: parameter {index} got a gradient although the forward's outputs do not "
                               "reach it (find_unused_parameters=True marked it unused); compute the loss from "
                               "the wrapped model's outputs")
        self.events.append(("grad", index))
        self._arrived.add(index)
        self.buckets[self._bucket_of[index]].ready += 1

    @torch.no_grad()
    def _launch_ready_buckets(self) -> None:
        while self._next_bucket < len(self.buckets):
            bucket = self.buckets[self._next_bucket]
            if bucket.ready < len(bucket.params):
                return
            offset = 0
            for p in bucket.params:  # divide while copying, before the sum (as PyTorch's reducer)
                view = bucket.buffer[offset:offset + p.numel()]
                if p.grad is None:  # an unused parameter (find_unused_parameters) contributes zeros
                    view.zero_()
                else:
                    torch.mul(p.grad.reshape(-1), 1.0 / self.world_size, out=view)
                offset += p.numel()
            bucket.work = dist.all_reduce(bucket.buffer, group=self.group, async_op=True)
            self.bytes_sent += bucket.buffer.numel() * bucket.buffer.element_size()
            self.events.append(("launch", self._next_bucket))
            self._next_bucket += 1

    @torch.no_grad()
    def finish_gradient_synchronization(self) -> None:
        """Wait for every bucket's all-reduce and write the averages (sums of ``g_r / N``) back to ``.grad``.

        Runs by itself at the end of ``backward()``; idempotent.

        Raises:
            RuntimeError: a parameter got no gradient in this backward and
                ``find_unused_parameters`` is off (or, with it on, the loss did not use every
                output of the forward).
        """
        if not self._finish_queued:
            return
        if self._next_bucket < len(self.buckets):
            missing = sorted(i for bucket in self.buckets for i in bucket.indices if i not in self._arrived)
            self._reset()
            raise RuntimeError(f"SimpleDDP: parameters {missing} (indices in module.parameters()) received no gradient "
                               "in this backward; " + ("the loss must use every output of the forward" if
                               self.find_unused_parameters else "if the forward skips them on purpose, wrap the "
                               "model with SimpleDDP(..., find_unused_parameters=True), as PyTorch's DDP"))
        used: list[float] | None = None
        if self.find_unused_parameters:  # which parameters did *any* rank use since the last sync?
            flags = torch.zeros(len(self._params), device=self.buckets[0].buffer.device)
            flags[sorted(self._used_locally)] = 1.0
            dist.all_reduce(flags, group=self.group)
            used = flags.tolist()
        for b, bucket in enumerate(self.buckets):
            bucket.work.wait()
            self.events.append(("wait", b))
            offset = 0
            for p, index in zip(bucket.params, bucket.indices):
                average = bucket.buffer[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
                if used is not None and used[index] == 0:
                    continue  # no rank used it: leave .grad as it was (None stays None), as DDP
                if p.grad is None:
                    p.grad = average.clone()
                else:
                    p.grad.copy_(average)
        self._reset()

    def _reset(self) -> None:
        for bucket in self.buckets:
            bucket.ready, bucket.work = 0, None
        self._next_bucket, self._finish_queued = 0, False
        self._arrived, self._used_locally, self._unused = set(), set(), []

    def launched_during_backward(self) -> bool:
        """Whether, in the last backward, an all-reduce started before the last gradient arrived."""
        return overlaps_backward(self.events)
