"""Start N worker processes from a notebook cell, collect what they return and print — or fail fast.

``launch(fn, world_size)`` is a small ``torchrun`` for one machine that a notebook can call:

1. the parent opens a ``TCPStore`` on ``127.0.0.1`` and a port the OS picks (port 0), so every
   launch has its own free port and nothing listens beyond this machine;
2. it starts ``world_size`` processes (``forkserver`` where the OS has it — torch is imported once
   in the fork server, so each worker starts in a fraction of a second — else ``spawn``);
3. each worker joins the process group (gloo on CPU, NCCL when there is a GPU per rank), calls
   ``fn(*args, **kwargs)`` and sends back its result and everything it printed;
4. the parent streams each worker's output as ``[rank r] ...`` lines and returns a
   :class:`LaunchResult`.

Faults: when a rank raises, dies (``os._exit``, a segfault, the OOM killer) or the launch runs
past ``timeout``, the parent waits a short grace period for other reports, then terminates every
remaining worker and raises :class:`WorkerError` naming the rank and what happened. Ranks stuck
in a collective with the dead rank are killed rather than waited for, so nothing hangs. A rank
that only failed *because* a peer died (gloo's "Connection closed by peer") is reported as a
consequence, not as the cause.

Worker functions must be importable by name (module-level functions in ``course_lib`` or another
installed module): spawned processes re-import them; a function defined in a notebook cell
cannot be found there. ``course_lib.distributed.experiment`` holds the chapter's workers.

The same worker functions run under ``torchrun`` (and so across machines) through
:func:`init_from_env`; see ``course_lib.distributed.train``.

Differences from torchrun: one machine only, no restarts (torchrun's ``--max-restarts``), no
rendezvous backend (a store hosted by the launching process instead).

Notebook: ``04_ddp`` (sections "Processes, not threads" and "When a rank fails").
Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing as mp
import os
import pickle
import platform
import queue as queue_module
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from course_lib import _checks
from course_lib._export import export

GRACE_SECONDS = 1.0  # after the first failure, how long to wait for other ranks' reports
POLL_SECONDS = 0.02  # how often the parent checks for messages and dead processes
MAX_WORLD_SIZE = 64  # one machine; more processes than this is a mistake, not an experiment
# Errors a rank raises *because* a peer went away: reported as consequences, not causes.
_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "DistNetworkError",
              "DistBackendError", "Broken pipe", "Socket Timeout", "Connection refused", "Timed out",
              "timed out")


@dataclass(frozen=True)
class Failure:
    """How one rank failed."""

    kind: str  # "raised", "died", "timeout" or "stopped" (still running when the others failed)
    summary: str  # one line: "ValueError: ..." or "exited with code 3 ..."
    details: str = ""  # the worker's traceback, when it raised
    seen: float = 0.0  # when the parent noticed (perf_counter), to order failures


@export("distributed.WorkerError")
class WorkerError(RuntimeError):
    """A worker rank raised, died or timed out; the message names the rank and what happened.

    Attributes:
        rank: the rank that failed first (the cause, where it can be told from consequences).
        kind: ``"raised"``, ``"died"``, ``"timeout"`` or ``"stopped"``.
        failures: every failed rank's :class:`Failure`, by rank.
        outputs: what each rank printed before the launch was stopped.
    """

    def __init__(self, rank: int, failures: dict[int, Failure], outputs: list[str]) -> None:
        self.rank, self.failures, self.outputs = rank, failures, outputs
        cause = failures[rank]
        self.kind = cause.kind
        others = sorted(r for r in failures if r != rank)
        text = f"rank {rank} {cause.kind}: {cause.summary}"
        if others:
            text += f"\n(then ranks {others} failed too, or were stopped: {failures[others[0]].summary})"
        if cause.details:
            text += f"\n--- traceback in rank {rank} ---\n{cause.details.rstrip()}"
        super().__init__(text)


@export("distributed.LaunchResult")
@dataclass
class LaunchResult:
    """What :func:`launch` brings back from a successful run."""

    results: list[Any]  # fn's return value on each rank, indexed by rank
    outputs: list[str]  # everything each rank printed (stdout and stderr), indexed by rank
    seconds: float  # wall time from the first process start to the last result
    backend: str  # "gloo" or "nccl"
    cpu_seconds: list[float]  # CPU time each rank's process used (all its threads), indexed by rank
    world_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.world_size = len(self.results)


@export("distributed.default_backend")
def default_backend(world_size: int) -> str:
    """``"nccl"`` when there is a CUDA GPU for every rank, else ``"gloo"`` (CPU processes)."""
    _checks.integer("world_size", world_size, minimum=1)
    if torch.cuda.is_available() and dist.is_nccl_available() and torch.cuda.device_count() >= world_size:
        return "nccl"
    return "gloo"


@export("distributed.worker_device")
def worker_device() -> torch.device:
    """The device this rank computes on: its own GPU under NCCL, else the CPU.

    Raises:
        RuntimeError: no process group is initialised.
    """
    require_process_group("worker_device")
    if dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return torch.device("cpu")


def require_process_group(caller: str) -> None:
    """Raise a ``RuntimeError`` that says how to get a process group, unless one exists."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{caller} needs an initialised process group; run it inside a worker started by "
            "course_lib.distributed.launch(fn, world_size) or by torchrun, or call "
            "torch.distributed.init_process_group(...) first"
        )


@export("distributed.init_from_env")
def init_from_env(backend: str | None = None, timeout: float = 60.0) -> tuple[int, int]:
    """Join the process group described by torchrun's environment; return ``(rank, world_size)``.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
    this is the one call a script needs to run unchanged under ``torchrun --nproc-per-node N``.

    Raises:
        RuntimeError: the environment variables are missing (not started by torchrun).
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"init_from_env needs torchrun's environment; missing {', '.join(missing)}")
    world_size = int(os.environ["WORLD_SIZE"])
    backend = backend or default_backend(world_size)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    return dist.get_rank(), world_size


def _loopback_interface() -> str | None:
    """The loopback interface's name, so gloo and NCCL listen on 127.0.0.1 only."""
    return {"Linux": "lo", "Darwin": "lo0"}.get(platform.system())


class _QueueWriter(io.TextIOBase):
    """A text stream that sends each complete line to the parent as ``("out", rank, line)``."""

    def __init__(self, channel: Any, rank: int) -> None:
        self.channel, self.rank, self.pending = channel, rank, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.channel.put(("out", self.rank, line + "\n"))
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.channel.put(("out", self.rank, self.pending))
            self.pending = ""


def _worker_main(rank: int, world_size: int, port: int, backend: str, fn: Callable[..., Any],
                 args: tuple, kwargs: dict, channel: Any, timeout: float, threads: int) -> None:
    """The body of one worker process (module level, so spawn can import it)."""
    writer = _QueueWriter(channel, rank)
    ok = False
    with contextlib.redirect_stdout(writer), contextlib.redirect_stderr(writer):
        try:
            os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
            loopback = _loopback_interface()
            if loopback:
                os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
                os.environ.setdefault("NCCL_SOCKET_IFNAME", loopback)
            torch.set_num_threads(threads)  # N processes share the cores; don't oversubscribe
            if backend == "nccl":
                torch.cuda.set_device(rank)
            # Collectives give up at half the launch's timeout: ranks waiting for a hung peer
            # fail first, and the parent can name the rank that never arrived.
            store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False,
                                  timeout=timedelta(seconds=timeout / 2))
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                    timeout=timedelta(seconds=timeout / 2))
            result = fn(*args, **kwargs)
            payload = pickle.dumps((result, time.process_time()))  # by value: we exit before the parent reads
            gc.collect()  # free DDP reducers before their group goes (see training.main)
            dist.barrier()  # nobody tears the group down while a peer still uses it
            writer.flush()
            channel.put(("ok", rank, payload))
            ok = True
        except BaseException as exc:  # noqa: BLE001 — everything, SystemExit included, goes back
            writer.flush()
            channel.put(("error", rank, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        finally:
            if ok and dist.is_initialized():
                dist.destroy_process_group()
    sys.stdout.flush()
    if not ok:  # skip interpreter teardown, which can block on a broken process group
        channel.close()
        channel.join_thread()
        os._exit(1)


def _context(start_method: str | None) -> mp.context.BaseContext:
    methods = mp.get_all_start_methods()
    method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
    _checks.one_of("start_method", method, methods)
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Imported once in the fork server, then shared by every worker it forks.
        ctx.set_forkserver_preload(["torch", "torch.distributed", "course_lib.distributed.launcher"])
    return ctx


def _primary(failures: dict[int, Failure]) -> int:
    """The failure most likely to be the cause, earliest first among equals.

    A death or a genuine exception comes first; then a rank that was still running (stuck
    outside the collective its peers waited in, or timed out); last, errors a rank raised
    because a peer was gone or never came (connection closed, collective timed out).
    """
    def key(rank: int) -> tuple[int, float, int]:
        f = failures[rank]
        if f.kind in ("stopped", "timeout"):
            return (1, f.seen, rank)
        consequence = f.kind == "raised" and any(m in f.summary + f.details for m in _PEER_LOST)
        return (2 if consequence else 0, f.seen, rank)
    return min(failures, key=key)


def _check_fn(fn: Callable[..., Any]) -> None:
    """``fn`` must be a module-level function: spawned workers re-import it by name."""
    if not callable(fn):
        raise TypeError(f"fn must be a function; got {type(fn).__name__}: {fn!r}")
    qualname = getattr(fn, "__qualname__", "")
    if getattr(fn, "__module__", "__main__") in ("__main__", "__mp_main__") or "<" in qualname:
        raise TypeError(
            f"fn must be a module-level function importable by name (like "
            f"course_lib.distributed.experiment.hello); got {qualname or fn!r} from "
            f"{getattr(fn, '__module__', '?')}: worker processes re-import fn by name and cannot see "
            "functions defined in a notebook cell or inside another function"
        )


@dataclass
class _Run:
    """One launch in flight: the workers, the channel they report on, and what arrived so far."""

    procs: list[Any]  # the worker processes, rank order
    channel: Any  # the queue every worker writes ("out" | "ok" | "error", rank, ...) messages to
    store: Any  # the TCPStore hosted by this process; kept alive until the workers are stopped
    show_output: bool  # echo "[rank r] ..." lines as they arrive
    start: float = field(default_factory=time.perf_counter)
    outputs: list[str] = field(default_factory=list)  # everything each rank printed
    results: dict[int, Any] = field(default_factory=dict)  # rank -> fn's return value
    cpu: dict[int, float] = field(default_factory=dict)  # rank -> CPU seconds it used
    failures: dict[int, Failure] = field(default_factory=dict)
    first_failure: float | None = None  # when the first failure was seen

    def handle(self, message: tuple) -> None:
        kind, rank = message[0], message[1]
        if kind == "out":
            self.outputs[rank] += message[2]
            if self.show_output:
                print(f"[rank {rank}] {message[2]}", end="" if message[2].endswith("\n") else "\n", flush=True)
        elif kind == "ok":
            self.results[rank], self.cpu[rank] = pickle.loads(message[2])
        else:
            self.fail(rank, Failure("raised", message[2], message[3], time.perf_counter()))

    def fail(self, rank: int, failure: Failure) -> None:
        self.failures[rank] = failure
        self.first_failure = self.first_failure or failure.seen

    def drain(self) -> None:
        while True:
            try:
                self.handle(self.channel.get_nowait())
            except queue_module.Empty:
                return

    def pending(self) -> list[int]:
        """Ranks that have neither returned nor failed."""
        return [r for r in range(len(self.procs)) if r not in self.results and r not in self.failures]


def _start(fn: Callable[..., Any], world_size: int, args: tuple, kwargs: dict[str, Any], backend: str,
           timeout: float, show_output: bool, start_method: str | None) -> _Run:
    """Host the store, start ``world_size`` workers, and return the run to supervise."""
    ctx = _context(start_method)
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=timeout))  # port 0: the OS picks a free port
    channel = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // world_size)
    procs = [ctx.Process(target=_worker_main, name=f"rank{rank}", daemon=True,  # type: ignore[attr-defined]
                         args=(rank, world_size, store.port, backend, fn, args, kwargs, channel, timeout, threads))
             for rank in range(world_size)]
    run = _Run(procs, channel, store, show_output, outputs=[""] * world_size)
    try:
        for proc in procs:
            proc.start()
    except BaseException:  # one failed to start: stop the ones that did
        _stop(run)
        raise
    return run


def _supervise(run: _Run, timeout: float) -> None:
    """Collect reports until every rank returned, or a failure's grace period or the timeout ran out.

    A rank that exited without reporting is recorded as ``died``; past ``timeout`` the pending
    ranks are ``timeout``; after a failure, ranks still running are ``stopped``.
    """
    while run.pending():
        try:
            run.handle(run.channel.get(timeout=POLL_SECONDS))
        except queue_module.Empty:
            pass
        now = time.perf_counter()
        for rank in run.pending():
            if run.procs[rank].is_alive():
                continue
            run.drain()  # it may have reported just before exiting
            if rank in run.pending():
                run.fail(rank, Failure("died", f"the process exited with code {run.procs[rank].exitcode} "
                                       "without returning a result", seen=now))
        if run.first_failure is not None and now - run.first_failure > GRACE_SECONDS:
            break
        if now - run.start > timeout:
            for rank in run.pending():
                run.fail(rank, Failure("timeout", f"did not finish within timeout={timeout:g} s "
                                       "(a collective that not every rank called?)", seen=now))
            break
    if run.failures:
        for rank in run.pending():
            run.fail(rank, Failure("stopped", "was still running when the others had failed, and was "
                                   "stopped (stuck outside the collective they waited in?)",
                                   seen=time.perf_counter()))


def _stop(run: _Run) -> None:
    """Terminate (then kill) every worker still alive, read their last messages, close the channel."""
    started = [proc for proc in run.procs if proc.pid is not None]
    for proc in started:
        if proc.is_alive():
            proc.terminate()
    for proc in started:
        proc.join(timeout=2.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    run.drain()
    run.channel.close()
    run.store = None  # the workers are gone: the store can close


@export("distributed.launch")
def launch(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple = (),
    kwargs: dict[str, Any] | None = None,
    *,
    backend: str | None = None,
    timeout: float = 120.0,
    show_output: bool = True,
    start_method: str | None = None,
) -> LaunchResult:
    """Run ``fn(*args, **kwargs)`` on ``world_size`` new processes joined in one process group.

    Three steps: :func:`_start` (store, processes), :func:`_supervise` (collect reports, detect
    deaths and timeouts), :func:`_stop` (terminate what still runs) — the last always runs.

    Args:
        fn: a module-level function (importable by name); it runs after
            ``init_process_group`` and may use any ``torch.distributed`` call.
        world_size: how many processes (ranks) to start, ``>= 1``.
        args: positional arguments for ``fn`` (picklable).
        kwargs: keyword arguments for ``fn`` (picklable).
        backend: ``"gloo"`` or ``"nccl"``; default :func:`default_backend`.
        timeout: seconds the whole launch may take; each collective in the workers gives up
            after ``timeout / 2``, so ranks stuck waiting for a hung peer fail first.
        show_output: print each rank's output, as ``[rank r] line``, while it runs.
        start_method: a ``multiprocessing`` start method; default ``forkserver`` where available,
            else ``spawn``.

    Returns:
        A :class:`LaunchResult` with every rank's return value and output.

    Raises:
        TypeError: ``fn`` is not an importable module-level function.
        ValueError: ``world_size`` < 1 or too large, a bad ``backend`` or ``timeout``.
        WorkerError: a rank raised, died or did not finish within ``timeout``; all workers are
            stopped before it is raised.

    Example:
        >>> from course_lib.distributed import launch, experiment
        >>> launch(experiment.hello, 4).results  # doctest: +SKIP
        [(0, 4, 6.0), (1, 4, 6.0), (2, 4, 6.0), (3, 4, 6.0)]
    """
    _check_fn(fn)
    world_size = _checks.integer("world_size", world_size, minimum=1, maximum=MAX_WORLD_SIZE)
    backend = _checks.one_of("backend", backend or default_backend(world_size), ("gloo", "nccl"))
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        raise ValueError(f"backend 'nccl' needs one GPU per rank: world_size={world_size} but "
                         f"{torch.cuda.device_count()} GPUs; use backend='gloo' (CPU processes)")
    timeout = _checks.real("timeout", timeout, minimum=0, open_min=True)
    run = None
    try:
        run = _start(fn, world_size, tuple(args), dict(kwargs or {}), backend, timeout, show_output, start_method)
        _supervise(run, timeout)
    finally:
        if run is not None:
            _stop(run)
    if run.failures:
        raise WorkerError(_primary(run.failures), run.failures, run.outputs)
    return LaunchResult([run.results[r] for r in range(world_size)], run.outputs, time.perf_counter() - run.start,
                        backend, [run.cpu[r] for r in range(world_size)])
