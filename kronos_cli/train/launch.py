"""Running a training stage: in this process, under torchrun/srun, or one worker per GPU/CPU via torch elastic.

The worker receives a typed payload (the resolved config itself, never a path to load again) and a factory for
its observer, which the command line supplies so that rank 0 renders progress.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from kronos_cli.config import Config
from kronos_cli.forecast.device import resolve_device
from kronos_cli.records.runs import run_dir
from kronos_cli.runtime.distributed import Context, Launch, backend_device, launch, setup, teardown
from kronos_cli.train.recipe import train
from kronos_cli.train.resume import claim_run_dir
from kronos_cli.train.state import Observer, StepEvent, TrainOptions, TrainSummary

log = logging.getLogger(__name__)
FAIL_ONCE_AT_STEP = "KRONOS_FAIL_ONCE_AT_STEP"  # debug option: the last rank exits at that step, once


@dataclass(frozen=True)
class WorkerPayload:
    cfg: Config
    options: TrainOptions
    device: str = "auto"
    backend: str | None = None  # "nccl" or "gloo" when the elastic launcher started the worker
    make_observer: Callable[[Context], Observer] | None = None  # picklable (a module-level function or partial)


class FailOnceAt(Observer):
    """Testing aid for elastic restarts (`KRONOS_FAIL_ONCE_AT_STEP=N`): the last rank exits at step N of the
    first attempt. Installed only when the variable is set, so the training loop knows nothing of it."""

    def __init__(self, inner: Observer, step: int):
        self.inner, self.step = inner, step

    def on_start(self, info) -> None:
        self.inner.on_start(info)

    def on_step(self, event: StepEvent) -> None:
        self.inner.on_step(event)
        if event.step == self.step:
            log.warning("%s=%d: this worker exits now", FAIL_ONCE_AT_STEP, self.step)
            os._exit(17)

    def on_epoch(self, event) -> None:
        self.inner.on_epoch(event)

    def on_end(self, summary) -> None:
        self.inner.on_end(summary)


def _observer(payload: WorkerPayload, ctx: Context) -> Observer:
    obs = payload.make_observer(ctx) if payload.make_observer is not None else Observer()
    at = os.environ.get(FAIL_ONCE_AT_STEP)
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if at and first_attempt and ctx.rank == ctx.world_size - 1:
        obs = FailOnceAt(obs, int(at))
    return obs


def _device(payload: WorkerPayload) -> torch.device:
    return backend_device(payload.backend) or resolve_device(payload.device)


@record
def worker_entry(payload: WorkerPayload) -> TrainSummary:
    """What each worker runs (module-level, so that spawned processes can import it)."""
    ctx = setup(_device(payload), payload.backend)
    try:
        return train(payload.cfg, payload.options, ctx, _observer(payload, ctx))
    finally:
        teardown(ctx)


def run_stage(
    cfg: Config,
    options: TrainOptions,
    device: str = "auto",
    launch_opts: Launch = Launch(),
    make_observer: Callable[[Context], Observer] | None = None,
) -> TrainSummary:
    """Train one stage in-process, under torchrun/srun, or through torch elastic; rank 0's summary."""
    launch_opts.check()
    if os.environ.get("RANK", "0") == "0":
        claim_run_dir(options, run_dir(cfg, options.stage))
    payload = WorkerPayload(cfg, options, device, make_observer=make_observer)
    if launch_opts.uses_launcher and "RANK" not in os.environ:
        log.info(
            "launching %d worker(s) per node on %d node(s) through torch elastic",
            launch_opts.workers_per_node,
            launch_opts.nnodes,
        )
        payload = replace(payload, backend="nccl" if launch_opts.gpus else "gloo")
        results = launch(worker_entry, payload, launch_opts)
        return results.get(0) or next(iter(results.values()))
    return worker_entry(payload)  # alone, or already started by torchrun/srun with RANK and WORLD_SIZE set
