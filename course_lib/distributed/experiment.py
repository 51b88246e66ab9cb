"""The chapter's worker functions: what each process runs in the notebook's experiments.

They live here, not in the notebook, because :func:`~course_lib.distributed.launch` starts
processes that import the worker by name. Each runs inside an initialised process group on
every rank and returns plain data (lists, dicts, floats) that the notebook plots and asserts on.

* :func:`hello` — who am I, and a first all-reduce.
* :func:`compare_all_reduces` — ring and naive against ``dist.all_reduce`` on many sizes, with
  the bytes each rank sent (the reference check and the byte accounting).
* :func:`time_all_reduces` — seconds per call of the three algorithms across message sizes.
* :func:`compare_ddp` — :class:`~course_lib.distributed.SimpleDDP` against PyTorch's DDP and
  single-process full-batch training.
* :func:`broadcast_state` — SimpleDDP's start: rank 0's parameters and buffers everywhere.
* :func:`average_order` — divide before or after the sum: FP16 overflow, SimpleDDP and DDP.
* :func:`buffers_each_forward` — buffers re-broadcast from rank 0 at every forward (DDP's default).
* :func:`accumulation` — ``no_sync`` gradient accumulation: SimpleDDP against DDP, bytes sent.
* :func:`check_ring_step` — a learner's ring step, given as source code, plugged into
  :func:`~course_lib.distributed.ring_all_reduce` and compared with ``dist.all_reduce``.
* :func:`fail_on_rank`, :func:`bad_input_errors` — faults and bad input, on purpose.

All are exported as ``course_lib.distributed.experiment.<name>`` (not re-exported by the package).

Notebook: ``04_ddp``. Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from course_lib._export import export
from course_lib.distributed.ddp import SimpleDDP
from course_lib.distributed.launcher import worker_device
from course_lib.distributed.naive import naive_all_reduce
from course_lib.distributed.ring import ring_all_reduce
from course_lib.distributed.traffic import SUPPORTED_DTYPES

ALGORITHMS = ("ring", "naive", "torch")  # torch: dist.all_reduce(SUM), the production reference


def _run(algorithm: str, tensor: torch.Tensor, group: dist.ProcessGroup | None = None,
         validate: bool = True) -> None:
    if algorithm == "ring":
        ring_all_reduce(tensor, group, validate=validate)
    elif algorithm == "naive":
        naive_all_reduce(tensor, group, validate=validate)
    else:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)


@export("distributed.experiment.hello")
def hello() -> tuple[int, int, float]:
    """Print this rank's identity; return ``(rank, world_size, sum of all ranks)``."""
    rank, world = dist.get_rank(), dist.get_world_size()
    print(f"I am rank {rank} of {world}, process {os.getpid()}, backend {dist.get_backend()}")
    t = torch.tensor([float(rank)], device=worker_device())
    dist.all_reduce(t)
    return rank, world, t.item()


def _rank_input(numel: int, dtype: torch.dtype, seed: int, rank: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    if dtype.is_floating_point:
        return torch.randn(numel, generator=gen).to(dtype)
    return torch.randint(-1000, 1000, (numel,), generator=gen, dtype=dtype)


@export("distributed.experiment.compare_all_reduces")
def compare_all_reduces(sizes: Sequence[int], dtypes: Sequence[str] = ("float32",), seed: int = 0,
                        group_sizes: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Run ring, naive and ``dist.all_reduce`` on the same inputs; report errors and bytes.

    Args:
        sizes: element counts to try (awkward ones: 0, 1, 97, 257...).
        dtypes: names of torch dtypes (``"float32"``, ``"int64"``...).
        seed: inputs differ per rank and per case, reproducibly.
        group_sizes: also run every case in sub-groups of ranks ``0..k-1`` for each ``k``
            (world sizes ``1..N`` in one launch); default: the whole world only.

    Returns:
        On every rank, one dict per (group size, dtype, size) *that this rank took part in*:
        ``world_size``, ``dtype``, ``numel``, ``ring_error`` and ``naive_error`` (max abs
        difference from ``dist.all_reduce``), and this rank's ``ring_sent``/``ring_received``/
        ``naive_sent``/``naive_received`` bytes.
    """
    world = dist.get_world_size()
    ks = list(group_sizes) if group_sizes else [world]
    # new_group is itself collective: every rank creates every group, in the same order.
    groups: dict[int, dist.ProcessGroup | None] = {
        k: (None if k == world else cast(dist.ProcessGroup, dist.new_group(list(range(k))))) for k in ks}
    rows = []
    for k in ks:
        if dist.get_rank() >= k:
            continue
        rank = dist.get_rank(groups[k])
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            assert dtype in SUPPORTED_DTYPES, dtype_name
            for case, numel in enumerate(sizes):
                x = _rank_input(numel, dtype, seed + case, rank).to(worker_device())
                expected, ring, naive = x.clone(), x.clone(), x.clone()
                dist.all_reduce(expected, group=groups[k])
                ring_traffic = ring_all_reduce(ring, groups[k])
                naive_traffic = naive_all_reduce(naive, groups[k])
                rows.append({
                    "world_size": k, "rank": rank, "dtype": dtype_name, "numel": numel,
                    "ring_error": (ring.double() - expected.double()).abs().max().item() if numel else 0.0,
                    "naive_error": (naive.double() - expected.double()).abs().max().item() if numel else 0.0,
                    "scale": expected.double().abs().max().item() if numel else 0.0,
                    "ring_sent": ring_traffic.sent_bytes, "ring_received": ring_traffic.received_bytes,
                    "naive_sent": naive_traffic.sent_bytes, "naive_received": naive_traffic.received_bytes,
                })
    return rows


@export("distributed.experiment.time_all_reduces")
def time_all_reduces(sizes_bytes: Sequence[int], repeats: int = 3,
                     algorithms: Sequence[str] = ALGORITHMS) -> dict[str, list[float]]:
    """Median seconds per all-reduce of float32 tensors of each size, slowest rank's clock.

    Every call starts after a barrier; the time of a call is the maximum over ranks (an
    all-reduce is done when the last rank has its result). ``validate=False``: the shape check
    would add a small collective to our algorithms only.
    """
    times: dict[str, list[float]] = {a: [] for a in algorithms}
    for nbytes in sizes_bytes:
        x = torch.ones(max(1, nbytes // 4), device=worker_device())
        for algorithm in algorithms:
            samples = []
            for _ in range(repeats + 1):  # +1: the first call warms up connections and buffers
                dist.barrier()
                start = time.perf_counter()
                _run(algorithm, x, validate=False)
                if x.is_cuda:
                    torch.cuda.synchronize()  # NCCL calls return before the GPU has finished
                elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=x.device)
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
                samples.append(elapsed.item())
            times[algorithm].append(sorted(samples[1:])[len(samples[1:]) // 2])
    return times


def _mlp(seed: int, width: int = 13) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 3))


@export("distributed.experiment.compare_ddp")
def compare_ddp(steps: int = 5, bucket_cap_mb: float = 0.0005, per_rank_batch: int = 4,
                lr: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Train one small MLP three ways for ``steps`` SGD steps; return the largest differences.

    * SimpleDDP, each rank on its shard of the global batch, starting from *different* random
      weights per rank (the broadcast from rank 0 must fix that);
    * ``torch.nn.parallel.DistributedDataParallel`` from rank 0's weights;
    * one process on the full global batch, from rank 0's weights.

    Returns:
        ``simple_vs_torch`` and ``simple_vs_single``: max abs parameter difference after
        ``steps`` steps; ``losses``: SimpleDDP's global mean loss per step; ``buckets``: the
        number of buckets; ``launched_during_backward``: whether a bucket's all-reduce started
        before the last gradient of the step was ready (the overlap).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    device = worker_device()
    simple = SimpleDDP(_mlp(seed + rank).to(device), bucket_cap_mb=bucket_cap_mb)
    start_state = copy.deepcopy(simple.module.state_dict())
    reference = nn.parallel.DistributedDataParallel(_mlp(seed + 1000).to(device))
    reference.module.load_state_dict(start_state)
    single = _mlp(seed + 2000).to(device)
    single.load_state_dict(start_state)
    models = {"simple": simple, "torch": reference, "single": single}
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=lr) for name, m in models.items()}
    losses, overlapped = [], True
    for step in range(steps):
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        x = torch.randn(per_rank_batch * world, 7, generator=gen)  # (B_global, 7), same on every rank
        y = torch.randn(per_rank_batch * world, 3, generator=gen)
        x, y = x.to(device), y.to(device)
        shard = slice(rank * per_rank_batch, (rank + 1) * per_rank_batch)
        for name, model in models.items():
            xs, ys = (x, y) if name == "single" else (x[shard], y[shard])
            optimizers[name].zero_grad()
            loss = nn.functional.mse_loss(model(xs), ys)
            loss.backward()
            optimizers[name].step()
            if name == "simple":
                losses.append(loss.detach().clone())
                overlapped = overlapped and simple.launched_during_backward()
    mean_losses = torch.stack(losses)
    dist.all_reduce(mean_losses)
    mean_losses /= world

    def max_diff(a: nn.Module, b: nn.Module) -> float:
        return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))

    return {"simple_vs_torch": max_diff(simple.module, reference.module),
            "simple_vs_single": max_diff(simple.module, single),
            "losses": mean_losses.tolist(), "buckets": len(simple.buckets),
            "launched_during_backward": overlapped}


@export("distributed.experiment.broadcast_state")
def broadcast_state() -> dict[str, list[float]]:
    """Wrap a model whose parameters *and buffers* differ per rank; return what SimpleDDP left.

    Returns:
        ``weight`` and ``running_mean`` (a BatchNorm buffer) on this rank after construction:
        rank 0's values on every rank.
    """
    rank = dist.get_rank()
    linear, norm = nn.Linear(3, 5), nn.BatchNorm1d(5)
    module = nn.Sequential(linear, norm).to(worker_device())
    with torch.no_grad():
        linear.weight.fill_(float(rank))
        running_mean = norm.running_mean
        assert running_mean is not None  # BatchNorm1d tracks running stats by default
        running_mean.fill_(10.0 + rank)
    SimpleDDP(module)
    return {"weight": linear.weight.flatten().tolist(), "running_mean": running_mean.tolist()}


@export("distributed.experiment.fail_on_rank")
def fail_on_rank(rank_to_fail: int, how: str = "raise") -> list[float]:
    """All ranks all-reduce, except ``rank_to_fail``, which raises, exits or hangs (``how``)."""
    rank = dist.get_rank()
    print(f"rank {rank}: about to all-reduce", flush=True)
    dist.barrier()  # every rank has printed before one fails, so the test can read every rank's output
    if rank == rank_to_fail:
        if how == "raise":
            raise ValueError(f"rank {rank} failed on purpose, before the all-reduce")
        if how == "exit":
            os._exit(3)  # no exception, no cleanup: like a segfault or the OOM killer
        time.sleep(3600)  # "hang": the others wait in the all-reduce until the launch times out
    t = torch.ones(4, device=worker_device())
    dist.all_reduce(t)
    return t.tolist()


@export("distributed.experiment.bad_input_errors")
def bad_input_errors() -> dict[str, str]:
    """Misuse on purpose; return each error's message ('' if none was raised).

    * ``ring`` / ``naive``: every rank passes a tensor of a different length;
    * ``unused_parameter``: SimpleDDP around a model with a parameter the loss does not use.
    """
    messages = {}
    for algorithm in ("ring", "naive"):
        try:
            _run(algorithm, torch.ones(5 + dist.get_rank(), device=worker_device()))
            messages[algorithm] = ""
        except ValueError as err:
            messages[algorithm] = str(err)
    device = worker_device()
    used = nn.Linear(3, 1)
    model = SimpleDDP(nn.ModuleDict({"used": used, "unused": nn.Linear(3, 1)}).to(device))
    try:
        used(torch.ones(2, 3, device=device)).sum().backward()  # through the wrapped module's hooks
        messages["unused_parameter"] = ""
    except RuntimeError as err:
        messages["unused_parameter"] = str(err)
    del model  # the wrapper, and the hooks it registered, lived through the backward
    return messages


@export("distributed.experiment.average_order")
def average_order(value: float = 40000.0) -> dict[str, float]:
    """Every rank holds the FP16 gradient ``value``; average it four ways and return the results.

    * ``sum_then_divide``: all-reduce, then divide by N — the sum can overflow FP16 (max 65504);
    * ``divide_then_sum``: divide by N, then all-reduce — what PyTorch's DDP does;
    * ``simple_ddp`` / ``torch_ddp``: the gradient of ``w · value`` for an FP16 weight ``w``
      wrapped in :class:`SimpleDDP` / ``DistributedDataParallel``.
    """
    world, device = dist.get_world_size(), worker_device()
    out = {}
    t = torch.full((1,), value, dtype=torch.float16, device=device)
    dist.all_reduce(t)
    out["sum_then_divide"] = (t / world).item()
    t = torch.full((1,), value, dtype=torch.float16, device=device) / world
    dist.all_reduce(t)
    out["divide_then_sum"] = t.item()
    for name, wrap in (("simple_ddp", SimpleDDP), ("torch_ddp", nn.parallel.DistributedDataParallel)):
        layer = nn.Linear(1, 1, bias=False).to(device=device, dtype=torch.float16)
        model = wrap(layer)
        model(torch.full((1, 1), value, dtype=torch.float16, device=device)).sum().backward()
        grad = layer.weight.grad
        out[name] = grad.item() if grad is not None else float("nan")
    return out


@export("distributed.experiment.buffers_each_forward")
def buffers_each_forward(broadcast_buffers: bool = True) -> dict[str, float]:
    """Give each rank a different BatchNorm running mean *after* wrapping, run one eval forward.

    Returns:
        ``simple_ddp`` and ``torch_ddp``: this rank's running mean after the forward — rank 0's
        value (0.0) on every rank when buffers are broadcast, this rank's own (its rank) when not.
    """
    rank, device = dist.get_rank(), worker_device()
    out = {}
    for name, wrap in (("simple_ddp", SimpleDDP), ("torch_ddp", nn.parallel.DistributedDataParallel)):
        norm = nn.BatchNorm1d(2)
        module = nn.Sequential(nn.Linear(2, 2), norm).to(device)
        model = wrap(module, broadcast_buffers=broadcast_buffers)
        running_mean = cast(torch.Tensor, norm.running_mean)  # (2,)
        with torch.no_grad():
            running_mean.fill_(float(rank))
        module.eval()
        model(torch.ones(3, 2, device=device))
        out[name] = running_mean[0].item()
    return out


@export("distributed.experiment.check_ring_step")
def check_ring_step(source: str, name: str, sizes: Sequence[int] = (1, 7, 97), seed: int = 0) -> list[dict[str, Any]]:
    """Run ``ring_all_reduce`` with the step function ``name`` defined by ``source``; compare with ``dist.all_reduce``.

    The function comes as source text because a function defined in a notebook cannot be imported
    by a new process; it is executed here with ``torch`` and ``math`` in scope.

    Returns:
        One row per size: ``numel``, ``rank``, ``max_error`` (against ``dist.all_reduce`` on the
        same float64 data; ``inf`` when the result has the wrong shape or NaNs).
    """
    import math

    namespace: dict[str, Any] = {"torch": torch, "math": math}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # the learner's own code, on their machine
    step_fn = namespace[name]
    rank, device = dist.get_rank(), worker_device()
    rows = []
    for numel in sizes:
        gen = torch.Generator().manual_seed(seed * 1000 + rank * 31 + numel)
        x = torch.randn(numel, generator=gen, dtype=torch.float64).to(device)
        expected = x.clone()
        dist.all_reduce(expected)
        ring_all_reduce(x, step_fn=step_fn, validate=False)
        error = (x - expected).abs().max().item() if numel else 0.0
        rows.append({"numel": numel, "rank": rank, "max_error": error if math.isfinite(error) else math.inf})
    return rows


@export("distributed.experiment.accumulation")
def accumulation(micro_batches: int = 4, per_rank_batch: int = 3, seed: int = 0) -> dict[str, Any]:
    """One optimizer step's gradients from ``micro_batches`` backward passes, with and without ``no_sync``.

    Returns:
        ``simple_vs_torch``: max |difference| of the accumulated gradients (SimpleDDP vs DDP, both
        with ``no_sync`` on all but the last micro-batch); ``synced_vs_no_sync``: the same gradients
        when every micro-batch communicates; ``bytes_no_sync`` / ``bytes_every_step``: what
        SimpleDDP all-reduced in each case; ``gradient_bytes``: the model's gradient size.
    """
    rank, device = dist.get_rank(), worker_device()
    gen = torch.Generator().manual_seed(seed * 7919 + rank)
    batches = [(torch.randn(per_rank_batch, 7, generator=gen).to(device),
                torch.randn(per_rank_batch, 3, generator=gen).to(device)) for _ in range(micro_batches)]
    grads, sent = {}, {}
    for name in ("simple", "torch", "simple_every_step"):
        module = _mlp(seed).to(device)
        model = nn.parallel.DistributedDataParallel(module) if name == "torch" else SimpleDDP(module)
        for i, (x, y) in enumerate(batches):
            last = i == micro_batches - 1
            context = model.no_sync() if (name != "simple_every_step" and not last) else contextlib.nullcontext()
            with context:
                (nn.functional.mse_loss(model(x), y) / micro_batches).backward()
        grads[name] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]
        if name != "torch":
            sent[name] = model.bytes_sent

    def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max((p - q).abs().max().item() for p, q in zip(a, b))

    return {"simple_vs_torch": max_diff(grads["simple"], grads["torch"]),
            "synced_vs_no_sync": max_diff(grads["simple"], grads["simple_every_step"]),
            "bytes_no_sync": sent["simple"], "bytes_every_step": sent["simple_every_step"],
            "gradient_bytes": sum(p.numel() * p.element_size() for p in _mlp(seed).parameters())}
