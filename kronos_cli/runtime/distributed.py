"""Process groups and launching, for training and forecasting: in-process, already launched (torchrun, srun), or
through torch elastic.

One worker per GPU with NCCL (`--gpus N`) or CPU workers with gloo (`--nproc N`) are started by torch's own
elastic launcher (`torch.distributed.launcher.api.elastic_launch`), with torchrun's meanings and defaults
set explicitly: c10d rendezvous, standalone on a free local port when no endpoint is given. Workers are forked
(`start_method`): a spawned worker imported torch and the package again, and re-ran the launching script, 10-40 s
of start-up on a loaded 2-core machine (benchmarks/bench_backtest.py --nproc 2) where a fork takes milliseconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from kronos_cli.core.errors import KronosError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """Launcher flags, with torchrun's names and meanings (nproc is per node)."""

    nproc: int | None = None  # CPU workers per node (gloo)
    gpus: int | None = None  # GPU workers per node (NCCL)
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    max_restarts: int = 0

    @property
    def workers_per_node(self) -> int:
        return self.gpus or self.nproc or 1

    @property
    def uses_launcher(self) -> bool:
        return self.workers_per_node > 1 or self.nnodes > 1

    def check(self) -> None:
        if self.nproc and self.gpus:
            raise KronosError(
                "use gpus N (NCCL, one worker per GPU) or nproc N (CPU workers, gloo), not both",
                setting=("gpus", "nproc"),
            )
        for name in ("nproc", "gpus"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise KronosError(f"{name} must be >= 1, got {v}", setting=name)
        if self.gpus:
            if not torch.cuda.is_available():
                raise KronosError(
                    f"gpus {self.gpus} needs CUDA (NCCL), but CUDA is not available here; use nproc N for CPU workers",
                    setting=("gpus", "nproc"),
                )
            have = torch.cuda.device_count()
            if self.gpus > have:
                raise KronosError(f"gpus {self.gpus} asks for more GPUs than this machine has ({have})", setting="gpus")
        if self.nnodes < 1:
            raise KronosError(f"nnodes must be >= 1, got {self.nnodes}", setting="nnodes")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise KronosError(
                "multi-node training needs rdzv_endpoint HOST:PORT (the same on every node)", setting="rdzv_endpoint"
            )
        if self.max_restarts < 0:
            raise KronosError(f"max_restarts must be >= 0, got {self.max_restarts}", setting="max_restarts")


def threads_per_worker(local_workers: int) -> int:
    """Intra-op threads of each of a node's CPU workers: $OMP_NUM_THREADS (torchrun sets 1), else the cores
    shared out, so that the workers do not oversubscribe them."""
    return int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // local_workers))


def start_method(entry: Callable, opts: Launch) -> str:
    """How the workers start. `fork` (they inherit every imported module and the payload's classes) for CPU
    workers of one thread each in a process that has not used CUDA: GNU OpenMP cannot run a parallel region in a
    child forked after the parent ran one, and a single thread never enters one. Otherwise `forkserver`: a
    clean server imports the entry's module once and forks each worker from it (it never ran OpenMP or CUDA);
    a worker then imports only what the launching script adds (Python 3.11 runs it again in each worker)."""
    if not opts.gpus and threads_per_worker(opts.workers_per_node) == 1 and not torch.cuda.is_initialized():
        return "fork"
    multiprocessing.get_context("forkserver").set_forkserver_preload([entry.__module__])
    return "forkserver"


def launch(entry: Callable, payload: Any, opts: Launch) -> dict:
    """Run `entry(payload)` in every worker through torch elastic; returns rank -> return value."""
    opts.check()
    endpoint = opts.rdzv_endpoint or "localhost:0"  # standalone: c10d store on a free local port
    rdzv_configs: dict = {"timeout": 900}
    if opts.node_rank is not None:
        rdzv_configs["rank"] = opts.node_rank
    config = LaunchConfig(
        min_nodes=opts.nnodes,
        max_nodes=opts.nnodes,
        nproc_per_node=opts.workers_per_node,
        run_id=opts.rdzv_id or f"kronos-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        rdzv_configs=rdzv_configs,
        max_restarts=opts.max_restarts,
        monitor_interval=0.1,  # the agent notices finished workers this soon (torchrun: 0.1 s too)
        start_method=start_method(entry, opts),
        logs_specs=DefaultLogsSpecs(),
    )
    return elastic_launch(config, entry)(payload)


def process_age() -> float | None:
    """Seconds since this process started (its start-up, when asked before its first forward); None where /proc
    is not there to say."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # clock ticks after boot
        return float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def backend_device(backend: str | None) -> torch.device | None:
    """The device of a worker the launcher started: CUDA for NCCL, the CPU for gloo; None when not launched."""
    return {"nccl": torch.device("cuda"), "gloo": torch.device("cpu")}.get(backend or "")


@dataclass(frozen=True)
class Context:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device, backend: str | None = None) -> Context:
    """Join the process group when launched with RANK and WORLD_SIZE (elastic, torchrun, srun), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise KronosError(
                "the NCCL backend needs CUDA, which is not available here; use nproc for CPU workers", setting="nproc"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu") if device.type != "cuda" else device
        torch.set_num_threads(threads_per_worker(int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    if not dist.is_initialized():
        timeout = timedelta(minutes=30)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # The agent's store outlives a restart; keys of the failed attempt (old peers' addresses) would
            # still be there, so each attempt gets its own key prefix.
            store = dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=timeout
            )
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(f"/kronos/attempt_{attempt}", store)
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world, timeout=timeout)
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    return Context(rank, local_rank, world, device)


def all_reduce_sum(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def weight_spread(model: torch.nn.Module, ctx: Context) -> float:
    """Largest difference of a weight checksum between ranks: 0 when gradients really are all-reduced."""
    if not ctx.distributed:
        return 0.0
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        index = torch.arange(flat.numel(), dtype=flat.dtype, device=flat.device)
        probe = torch.stack([flat.sum(), (flat * flat).sum(), (flat * index).sum()])
    hi, lo = probe.clone(), -probe.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MAX)
    return float((hi + lo).abs().max())


def mean_across(total: float, n: int, ctx: Context) -> float:
    v = all_reduce_sum(torch.tensor([total, float(n)], dtype=torch.float64, device=ctx.device), ctx)
    return float(v[0] / max(v[1], 1))
