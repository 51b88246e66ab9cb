"""Data-parallel training that runs the same way from a notebook and under torchrun.

Each rank trains a replica of a small MLP on its shard of every global batch (a synthetic
regression task: fit a fixed random "teacher" network), wrapped in
:class:`~course_lib.distributed.SimpleDDP` or PyTorch's ``DistributedDataParallel``. The loss
each step is averaged over ranks, so both wrappers print the same curve.

Three ways to run it::

    python -m course_lib.distributed.train --nproc 2              # starts 2 local processes (launch)
    torchrun --nproc-per-node 2 -m course_lib.distributed.train   # the same, started by torchrun
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 \\
        --nproc-per-node 4 -m course_lib.distributed.train        # across machines (run on each)

and from a notebook: ``launch(run_training, 2, (TrainConfig(ddp="torch"),))``.

Notebook: ``04_ddp`` ("SimpleDDP against PyTorch's DDP", "Bucket size"). Tests:
``tests/test_distributed.py``.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.ddp import SimpleDDP
from course_lib.distributed.launcher import init_from_env, launch, require_process_group, worker_device

IN_FEATURES, OUT_FEATURES = 32, 8


@export("distributed.TrainConfig")
@dataclass
class TrainConfig:
    """One training run."""

    ddp: str = "simple"  # "simple" (SimpleDDP) or "torch" (torch.nn.parallel.DistributedDataParallel)
    steps: int = 30  # optimizer steps
    global_batch: int = 64  # examples per step over all ranks; each rank gets global_batch / N
    width: int = 128  # hidden width of the MLP
    depth: int = 3  # hidden layers of the MLP
    lr: float = 0.05  # SGD learning rate
    bucket_cap_mb: float = 25.0  # gradient bucket size in MiB, for either wrapper
    seed: int = 0  # seeds the data, the teacher and the initial weights


def _model(cfg: TrainConfig) -> nn.Module:
    layers: list[nn.Module] = []
    features = IN_FEATURES
    for _ in range(cfg.depth):
        layers += [nn.Linear(features, cfg.width), nn.Tanh()]
        features = cfg.width
    return nn.Sequential(*layers, nn.Linear(features, OUT_FEATURES))


def _batch(cfg: TrainConfig, step: int, teacher: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
    x = torch.randn(cfg.global_batch, IN_FEATURES, generator=gen)  # (B, IN), identical on every rank
    with torch.no_grad():
        y = teacher(x) + 0.01 * torch.randn(cfg.global_batch, OUT_FEATURES, generator=gen)  # (B, OUT)
    return x, y


def _check_config(cfg: TrainConfig) -> TrainConfig:
    """Check every field of ``cfg`` (on one process, before any collective); return it.

    Raises:
        TypeError: ``cfg`` is not a :class:`TrainConfig`, or a field has the wrong type.
        ValueError: an unknown ``ddp`` or a field out of range (``steps`` < 1 would leave no loss
            to report; ``global_batch`` < 1 gives empty shards and a NaN loss).
    """
    _checks.instance("cfg", cfg, TrainConfig)
    _checks.one_of("cfg.ddp", cfg.ddp, ("simple", "torch"))
    for name in ("steps", "global_batch", "width"):
        _checks.integer(f"cfg.{name}", getattr(cfg, name), minimum=1)
    _checks.integer("cfg.depth", cfg.depth, minimum=0)
    _checks.integer("cfg.seed", cfg.seed, minimum=0)
    _checks.real("cfg.lr", cfg.lr, minimum=0, open_min=True)
    _checks.real("cfg.bucket_cap_mb", cfg.bucket_cap_mb, minimum=0, open_min=True)
    return cfg


@export("distributed.run_training")
def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train on every rank of the current process group; return the same summary on each rank.

    Returns:
        ``losses``: mean loss over ranks per step; ``ms_per_step``: median milliseconds per step
        (slowest rank, first step excluded); ``world_size``; ``parameters``; ``config``; for
        SimpleDDP also ``buckets`` (how many) and ``events`` (its last step's gradient arrivals,
        all-reduce launches and waits, in order); both ``None`` for PyTorch's DDP.

    Raises:
        TypeError, ValueError: a bad ``cfg`` (:func:`_check_config`), or a ``global_batch`` not
            divisible by the world size.
        RuntimeError: no initialised process group.
    """
    _check_config(cfg)
    require_process_group("run_training")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cfg.global_batch % world:
        raise ValueError(f"cfg.global_batch must be divisible by the world size {world}; got {cfg.global_batch}")
    device = worker_device()
    torch.manual_seed(cfg.seed + 1)
    teacher = _model(TrainConfig(width=16, depth=1))
    torch.manual_seed(cfg.seed + 10 * rank)  # different on purpose: the wrapper broadcasts rank 0's
    module = _model(cfg).to(device)
    if cfg.ddp == "simple":
        model: nn.Module = SimpleDDP(module, bucket_cap_mb=cfg.bucket_cap_mb)
    else:
        model = nn.parallel.DistributedDataParallel(module, bucket_cap_mb=cfg.bucket_cap_mb)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    local = cfg.global_batch // world
    losses, seconds = [], []
    for step in range(cfg.steps):
        x, y = _batch(cfg, step, teacher)
        x, y = x[rank * local:(rank + 1) * local].to(device), y[rank * local:(rank + 1) * local].to(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()  # gradients are averaged over ranks when this returns
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(loss.detach())
        if rank == 0 and (step % 10 == 0 or step == cfg.steps - 1):
            print(f"step {step:3d}  local loss {loss.item():.4f}")
    stacked = torch.stack(losses).to(device)
    dist.all_reduce(stacked)
    times = torch.tensor(seconds, dtype=torch.float64, device=device)
    dist.all_reduce(times, op=dist.ReduceOp.MAX)
    timed = times[1:] if cfg.steps > 1 else times
    simple = model if isinstance(model, SimpleDDP) else None
    return {"losses": (stacked / world).tolist(), "ms_per_step": 1000 * timed.median().item(),
            "world_size": world, "parameters": sum(p.numel() for p in module.parameters()),
            "buckets": len(simple.buckets) if simple else None,
            "events": list(simple.events) if simple else None, "config": asdict(cfg)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.distributed.train",
                                     description="Data-parallel training of a small MLP with SimpleDDP or DDP.")
    parser.add_argument("--nproc", type=int, default=2,
                        help="processes to start when not run by torchrun (ignored under torchrun)")
    for f in fields(TrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return parser


def _summary(result: dict[str, Any]) -> str:
    losses = result["losses"]
    return (f"ddp={result['config']['ddp']} ranks={result['world_size']} params={result['parameters']:,} "
            f"steps={len(losses)}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, {result['ms_per_step']:.1f} ms/step")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run under torchrun when its environment is set, else start ``--nproc`` local processes."""
    args = vars(_parser().parse_args(argv))
    nproc = args.pop("nproc")
    cfg = _check_config(TrainConfig(**args))  # here, not N times in the workers
    if "RANK" in os.environ and "MASTER_ADDR" in os.environ:  # started by torchrun
        rank, _ = init_from_env()
        try:
            result = run_training(cfg)
            # DDP's reducer sits in a reference cycle; if it outlives the process group, gloo
            # aborts the process at exit ("terminate called without an active exception",
            # about 1 run in 4 under torch 2.14). Free it first, then tear down together.
            gc.collect()
            dist.barrier()
        finally:
            dist.destroy_process_group()
        if rank == 0:
            print(_summary(result))
        return result
    result = launch(run_training, nproc, (cfg,)).results[0]
    print(_summary(result))
    return result


if __name__ == "__main__":
    main()
