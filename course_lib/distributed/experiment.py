"""The chapter's worker functions: what each process runs in the notebook's experiments.

They live here, not in the notebook, because :func:`~course_lib.distributed.launch` starts
processes that import the worker by name. Each runs inside an initialised process group on
every rank and returns plain data (lists, dicts, floats) that the notebook plots and asserts on.

* :func:`hello` — who am I, and a first all-reduce.
* :func:`compare_all_reduces` — ring and naive against ``dist.all_reduce`` on many sizes, with
  the bytes each rank sent (the reference check and the byte accounting).
* :func:`time_all_reduces` — the three algorithms across message sizes and process counts, timed
  with :func:`course_lib.timing.compare` (the timings :func:`~course_lib.distributed.fit_alpha_beta` fits).
* :func:`compare_ddp` — :class:`~course_lib.distributed.SimpleDDP` against PyTorch's DDP and
  single-process full-batch training.
* :func:`ddp_default_bucket_bytes` — the bucket size PyTorch's DDP uses when not told one.
* :func:`broadcast_state` — SimpleDDP's start: rank 0's parameters and buffers everywhere.
* :func:`average_order` — divide before or after the sum: FP16 overflow, SimpleDDP and DDP.
* :func:`buffers_each_forward` — buffers re-broadcast from rank 0 at every forward (DDP's default).
* :func:`accumulation` — ``no_sync`` gradient accumulation: SimpleDDP against DDP, bytes sent.
* :func:`check_ring_step` — a learner's ring step, given as source code, plugged into
  :func:`~course_lib.distributed.ring_all_reduce` and compared with ``dist.all_reduce``.
* :func:`unused_parameters` — a forward that skips a parameter on some steps: DDP's error, and
  ``find_unused_parameters=True`` (SimpleDDP and DDP) against one process.
* :func:`sampler_shards` — ``DistributedSampler``'s shards per epoch, with and without ``set_epoch``.
* :func:`checkpoint_on_rank0` — save on rank 0, barrier, load everywhere with ``map_location``.
* :func:`fail_on_rank`, :func:`bad_input_errors` — faults and bad input, on purpose.

All are exported as ``course_lib.distributed.experiment.<name>`` (not re-exported by the package).

Notebook: ``04_ddp``. Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import math
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
from course_lib.timing import Timing, compare

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


@export("distributed.experiment.ddp_default_bucket_bytes")
def ddp_default_bucket_bytes() -> int:
    """``bucket_bytes_cap`` of a ``torch.nn.parallel.DistributedDataParallel`` built with default arguments."""
    ddp = nn.parallel.DistributedDataParallel(nn.Linear(2, 2).to(worker_device()))
    return int(ddp.bucket_bytes_cap)


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


def _agreed_number(fns: dict[str, Any], min_sample_s: float, group: dist.ProcessGroup | None) -> int:
    """Calls per sample, the same on every rank: one call of each alternative, the slowest rank's clock.

    ``compare`` would calibrate ``number`` on each rank's own clock; ranks that chose different
    counts would issue different numbers of collectives and hang. One all-reduce (MAX) of a
    single call's time makes every rank choose the same count.
    """
    slowest = 0.0
    for fn in fns.values():
        dist.barrier(group=group)
        start = time.perf_counter()
        fn()
        slowest = max(slowest, time.perf_counter() - start)
    elapsed = torch.tensor([slowest], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX, group=group)
    return max(1, min(64, math.ceil(min_sample_s / max(elapsed.item(), 1e-9))))


@export("distributed.experiment.time_all_reduces")
def time_all_reduces(sizes_bytes: Sequence[int], repeats: int = 5, algorithms: Sequence[str] = ALGORITHMS,
                     group_sizes: Sequence[int] | None = None,
                     min_sample_s: float = 0.005) -> dict[int, dict[str, list[Timing]]]:
    """Time the all-reduces of float32 tensors of each size with :func:`course_lib.timing.compare`.

    For each group size ``k`` (ranks ``0..k-1``; default: the whole world, so one launch times
    several process counts) and each size, ``compare`` runs the algorithms with the course's
    discipline — warm-up, interleaved alternatives, ``repeats`` samples, median and IQR — with
    two settings that make it work across processes:

    * ``sync=barrier``: every sample starts when all ranks are ready and ends when the slowest
      rank has its result (the time of a collective); the closing barrier is part of the sample,
      shared by its ``number`` calls;
    * ``number`` fixed by :func:`_agreed_number`, the same on every rank (see there).

    ``validate=False``: the shape check would add a small collective to our algorithms only.

    Returns:
        ``{k: {algorithm: [Timing per size]}}`` on the ranks of each group (every rank measures
        the same samples, up to its own clock).
    """
    world = dist.get_world_size()
    ks = list(group_sizes) if group_sizes else [world]
    groups: dict[int, dist.ProcessGroup | None] = {  # new_group is collective: every rank, same order
        k: (None if k == world else cast(dist.ProcessGroup, dist.new_group(list(range(k))))) for k in ks}
    out: dict[int, dict[str, list[Timing]]] = {}
    for k in ks:
        if dist.get_rank() >= k:
            continue
        group = groups[k]
        out[k] = {a: [] for a in algorithms}

        def sync(group: dist.ProcessGroup | None = group) -> None:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()  # NCCL calls return before the GPU has finished
            dist.barrier(group=group)

        for nbytes in sizes_bytes:
            x = torch.ones(max(1, nbytes // 4), device=worker_device())
            fns = {a: (lambda a=a, x=x, g=group: _run(a, x, g, validate=False)) for a in algorithms}
            number = _agreed_number(fns, min_sample_s, group)
            for name, timing in compare(fns, repeats=repeats, warmup=1, number=number, sync=sync).items():
                out[k][name].append(timing)
    return out


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


class _TwoExperts(nn.Module):
    """``head(tanh(body(x))) + experts[e](x)``: each forward uses one of two experts, the other is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(5, 8), nn.Linear(8, 2)
        self.experts = nn.ModuleList([nn.Linear(5, 2), nn.Linear(5, 2)])

    def forward(self, x: torch.Tensor, expert: int) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x))) + self.experts[expert](x)  # (b, 2)


def _grads(model: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def _grad_diff(a: list[torch.Tensor | None], b: list[torch.Tensor | None]) -> float:
    """Max |difference|; ``inf`` when one has a gradient where the other has ``None``."""
    if any((x is None) != (y is None) for x, y in zip(a, b)):
        return math.inf
    return max([(x - y).abs().max().item() for x, y in zip(a, b) if x is not None and y is not None] or [0.0])


@export("distributed.experiment.unused_parameters")
def unused_parameters(per_rank_batch: int = 3, seed: int = 0) -> dict[str, Any]:
    """A model whose forward uses one of two experts per step, so it skips parameters; wrapped three ways.

    Which expert each rank uses: step 0 — rank ``r`` expert ``r % 2`` (both used, each rank skips
    one); step 1 — every rank expert 0 (no rank uses expert 1); step 2 — rank 0 expert 1, the
    others expert 0 (expert 1 used by rank 0 only). Every rank skips a parameter at every step.

    * ``torch DDP`` (default ``find_unused_parameters=False``): step 0's backward returns
      quietly, with gradients that were never all-reduced; step 1's forward raises. Returned:
      ``torch_error`` (``type: first sentence``), ``torch_error_message``, ``torch_error_at``,
      ``torch_step0_grads_synchronised`` (whether the ranks' gradients agreed after step 0);
    * SimpleDDP (default): ``simple_error``, ``simple_error_at`` — step 0's backward raises;
    * with ``find_unused_parameters=True``, SimpleDDP and DDP against one process that computes
      the mean of the ranks' losses: ``simple_vs_single``, ``torch_vs_single`` (max |gradient
      difference| over the three steps; ``inf`` if a gradient is ``None`` in one and not the
      other) and ``expert1_grad_is_none_after_step1`` (no rank used it: ``.grad`` stays ``None``).
    """
    rank, world, device = dist.get_rank(), dist.get_world_size(), worker_device()
    schedule = [[r % 2 for r in range(world)], [0] * world, [int(r == 0) for r in range(world)]]  # [step][rank]
    gen = torch.Generator().manual_seed(seed)
    data = [(torch.randn(world, per_rank_batch, 5, generator=gen), torch.randn(world, per_rank_batch, 2, generator=gen))
            for _ in schedule]  # per step: (N, b, 5), (N, b, 2), the same on every rank

    def fresh() -> nn.Module:
        torch.manual_seed(seed)
        return _TwoExperts().to(device)

    def step(model: nn.Module, k: int) -> None:
        x, y = data[k]
        model.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x[rank].to(device), schedule[k][rank]), y[rank].to(device)).backward()

    out: dict[str, Any] = {}
    ddp = nn.parallel.DistributedDataParallel(fresh())
    for k in range(2):
        try:
            step(ddp, k)
        except RuntimeError as err:
            message = str(err)
            out["torch_error"] = f"{type(err).__name__}: {message.split(' This error')[0]}"
            out["torch_error_message"], out["torch_error_at"] = message, f"forward of step {k}"
            break
        flat = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten()
                          for p in ddp.module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        out[f"torch_step{k}_grads_synchronised"] = all(torch.equal(g, gathered[0]) for g in gathered)
    del ddp
    simple = SimpleDDP(fresh())
    try:
        step(simple, 0)
    except RuntimeError as err:
        out["simple_error"], out["simple_error_at"] = f"{type(err).__name__}: {err}", "backward of step 0"
    del simple
    single = fresh()
    models = {"simple": SimpleDDP(fresh(), find_unused_parameters=True),
              "torch": nn.parallel.DistributedDataParallel(fresh(), find_unused_parameters=True)}
    diffs = {name: 0.0 for name in models}
    for k in range(3):
        x, y = data[k]
        single.zero_grad(set_to_none=True)
        losses = [nn.functional.mse_loss(single(x[r].to(device), schedule[k][r]), y[r].to(device))
                  for r in range(world)]
        torch.stack(losses).mean().backward()  # the mean of the ranks' mean losses: DDP's average
        for name, model in models.items():
            step(model, k)
            diffs[name] = max(diffs[name], _grad_diff(_grads(model), _grads(single)))
        if k == 1:
            replicas = [cast(_TwoExperts, m.module) for m in models.values()] + [cast(_TwoExperts, single)]
            out["expert1_grad_is_none_after_step1"] = all(m.experts[1].weight.grad is None for m in replicas)
    out["simple_vs_single"], out["torch_vs_single"] = diffs["simple"], diffs["torch"]
    return out


@export("distributed.experiment.sampler_shards")
def sampler_shards(dataset_size: int, world_size: int, epochs: int = 2, set_epoch: bool = True,
                   seed: int = 0) -> list[list[list[int]]]:
    """The indices ``DistributedSampler(shuffle=True)`` gives each rank, per epoch (one process).

    ``DistributedSampler`` takes ``num_replicas`` and ``rank`` as arguments, so every rank's
    sampler can be built here without a process group.

    Returns:
        ``shards[epoch][rank]``: the indices rank ``rank`` visits in that epoch, in order.
    """
    from torch.utils.data import DistributedSampler

    dataset = range(dataset_size)
    samplers: list[DistributedSampler[int]] = [
        DistributedSampler(dataset, num_replicas=world_size, rank=r, shuffle=True, seed=seed)  # type: ignore[arg-type]
        for r in range(world_size)]
    shards = []
    for epoch in range(epochs):
        if set_epoch:
            for sampler in samplers:
                sampler.set_epoch(epoch)  # the shuffle's seed is seed + epoch
        shards.append([list(sampler) for sampler in samplers])
    return shards


@export("distributed.experiment.checkpoint_on_rank0")
def checkpoint_on_rank0(directory: str, steps: int = 3, seed: int = 0) -> dict[str, Any]:
    """Train a DDP model a few steps, save on rank 0 only, barrier, load on every rank.

    Every rank then builds a *fresh* model (different random weights per rank) and loads the
    file with ``map_location`` set to its own device, so a checkpoint written from ``cuda:0``
    does not land on GPU 0 in every process.

    Returns:
        ``wrote``: whether this rank wrote; ``files``: the directory's content after the barrier;
        ``differed_before_load``: whether the fresh replicas differed across ranks;
        ``max_diff_across_ranks``: max |parameter difference| from rank 0 after loading (0.0:
        identical); ``max_diff_vs_trained``: from the model that was saved; ``step``: the saved step.
    """
    rank, world, device = dist.get_rank(), dist.get_world_size(), worker_device()
    model = nn.parallel.DistributedDataParallel(_mlp(seed).to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(seed * 7919 + rank)  # each rank its own data
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(torch.randn(4, 7, generator=gen).to(device)),
                               torch.randn(4, 3, generator=gen).to(device)).backward()
        optimizer.step()
    path = os.path.join(directory, "checkpoint.pt")
    if rank == 0:  # the replicas are identical: one writer, one file
        state = {"model": model.module.state_dict(), "optimizer": optimizer.state_dict(), "step": steps}
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # atomic: a reader never sees half a file
    dist.barrier()  # nobody reads before rank 0 has finished writing
    files = sorted(os.listdir(directory))
    fresh = _mlp(seed + 1 + rank).to(device)

    def flat(m: nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    def max_from_rank0(vector: torch.Tensor) -> float:
        gathered = [torch.empty_like(vector) for _ in range(world)]
        dist.all_gather(gathered, vector)
        return max((g - gathered[0]).abs().max().item() for g in gathered)

    differed = max_from_rank0(flat(fresh)) > 0
    state = torch.load(path, map_location=device, weights_only=True)
    fresh.load_state_dict(state["model"])
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    fresh_optimizer.load_state_dict(state["optimizer"])
    return {"wrote": rank == 0, "files": files, "differed_before_load": differed,
            "max_diff_across_ranks": max_from_rank0(flat(fresh)),
            "max_diff_vs_trained": (flat(fresh) - flat(model.module)).abs().max().item(), "step": state["step"]}
