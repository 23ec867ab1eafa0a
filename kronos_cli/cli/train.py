"""`kronos train-tokenizer` and `kronos train-predictor`: in-process, or one worker per GPU/CPU via torch elastic."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import typer

from kronos_cli.cli.common import (ConfigOpt, DeviceOpt, JsonOpt, OverridesArg, SetOpt, console, err_console,
                                   load_config, print_json, setup_logging)

log = logging.getLogger("kronos_cli.cli")


class ConsoleObserver:
    """Rich progress (loss, lr, samples/s, ETA) and an epoch table on a terminal; plain lines otherwise."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar = None
        self.task = None
        self.rows: list[tuple] = []
        self.log_every = 1

    def on_start(self, info: dict[str, Any]) -> None:
        log.info("training the %s on %s (world size %d): %d epochs, %d optimiser steps, %s trainable parameters; "
                 "run dir %s", info["stage"], info["device"], info["world_size"], info["epochs"],
                 info["total_steps"], f"{info['params']:,}", info["run_dir"])
        self.log_every = max(1, info["total_steps"] // 20)
        if err_console.is_terminal and not self.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=err_console)
            self.bar.start()
            self.task = self.bar.add_task(info["stage"], total=info["total_steps"], stats="")

    def on_step(self, e) -> None:
        stats = f"epoch {e.epoch}/{e.epochs} loss {e.loss:.4f} lr {e.lr:.2e} {e.samples_per_s:,.0f} samples/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=e.step, stats=stats)
        elif e.step % self.log_every == 0 or e.step == e.total_steps:
            log.info("step %d/%d %s", e.step, e.total_steps, stats)

    def on_epoch(self, e) -> None:
        self.rows.append((e.epoch, e.train_loss, e.val_loss, e.best_val_loss, e.improved, e.seconds))
        msg = (f"epoch {e.epoch}: train {e.train_loss:.4f}, val {e.val_loss:.4f}"
               f"{' (best)' if e.improved else ''}, {e.seconds:.1f} s")
        if self.bar is not None:
            self.bar.console.print(msg)
        else:
            log.info(msg)

    def on_end(self, summary: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.stop()


def _epoch_table(rows: list[tuple], stage: str):
    from rich.table import Table

    table = Table(title=f"{stage} training")
    for col in ("epoch", "train loss", "val loss", "best", "seconds"):
        table.add_column(col, justify="right")
    for epoch, tr, va, _best, improved, sec in rows:
        table.add_row(str(epoch), f"{tr:.4f}", f"{va:.4f}", "*" if improved else "", f"{sec:.1f}")
    return table


def worker_entry(payload: dict) -> dict:
    """What each elastic worker runs (module-level so that it can be imported in spawned processes)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_run)(payload)


def _run(payload: dict) -> dict:
    import torch

    from kronos_cli import config as config_mod
    from kronos_cli.model.forecast import resolve_device
    from kronos_cli.train.distributed import setup, teardown
    from kronos_cli.train.loop import TrainOptions, train

    setup_logging(debug=payload.get("debug", False), quiet=payload.get("quiet", False))
    cfg = config_mod.load(payload["config"], payload["overrides"])
    opts = TrainOptions(**payload["options"])
    backend = payload.get("backend")
    if backend == "nccl":
        device = torch.device("cuda")
    elif backend == "gloo":
        device = torch.device("cpu")
    else:
        device = resolve_device(payload["device"])
    ctx = setup(device, backend)
    if not ctx.is_main:
        logging.getLogger("kronos_cli").setLevel(logging.WARNING)
    observer = ConsoleObserver(quiet=payload.get("quiet", False)) if ctx.is_main else None
    try:
        summary = train(cfg, opts, ctx, observer)
    finally:
        teardown(ctx)
    if ctx.is_main and observer is not None and observer.rows and not payload.get("json"):
        console.print(_epoch_table(observer.rows, opts.stage))
    return summary


def run_stage(stage: str, config: Path | None, overrides: list[str], device: str, launch_opts,
              options: dict, debug: bool = False, quiet: bool = False, json_out: bool = False) -> dict | None:
    """Train one stage in-process, under torchrun/srun, or through torch elastic; rank 0's summary."""
    from kronos_cli.train.distributed import launch

    payload = {"config": str(config) if config else None, "overrides": list(overrides), "device": device,
               "json": json_out, "debug": debug or bool(os.environ.get("KRONOS_DEBUG")), "quiet": quiet,
               "options": {"stage": stage, **options}}
    launch_opts.check()
    if launch_opts.uses_launcher and "RANK" not in os.environ:
        log.info("launching %d worker(s) per node on %d node(s) through torch elastic", launch_opts.workers_per_node,
                 launch_opts.nnodes)
        results = launch(worker_entry, payload, launch_opts)
        return results.get(0) or next(iter(results.values()))
    return _run(payload)  # alone, or already started by torchrun/srun with RANK and WORLD_SIZE set


def _train(ctx: typer.Context, stage: str, config: Path | None, overrides: list[str] | None, sets: list[str] | None,
           device: str, max_steps: int | None, resume: str | None, init: str | None, tokenizer: str | None,
           checkpoint_every: int, gpus: int | None, nproc: int | None, nnodes: int, node_rank: int | None,
           rdzv_endpoint: str | None, rdzv_id: str | None, max_restarts: int, json_out: bool) -> None:
    from kronos_cli.train.distributed import Launch

    load_config(config, overrides, sets)  # fail fast on a bad config, before any worker starts
    if max_steps is not None and max_steps <= 0:
        from kronos_cli.errors import KronosError

        raise KronosError(f"--max-steps must be > 0, got {max_steps}")
    root = ctx.find_root().params
    launch_opts = Launch(nproc=nproc, gpus=gpus, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint,
                         rdzv_id=rdzv_id, max_restarts=max_restarts)
    summary = run_stage(stage, config, [*(overrides or []), *(sets or [])], device, launch_opts,
                        {"max_steps": max_steps, "resume": resume, "init": init, "tokenizer": tokenizer,
                         "checkpoint_every": checkpoint_every},
                        debug=bool(root.get("debug")), quiet=bool(root.get("quiet")), json_out=json_out)
    if os.environ.get("RANK", "0") != "0":  # under torchrun/srun only rank 0 reports
        return
    if json_out and summary is not None:
        print_json(summary)
    elif summary is not None:
        console.print(f"best validation loss {summary['best_val_loss']:.4f} (epoch {summary['best_epoch']}); "
                      f"best model: {summary['best_model']}")


_GPUS = typer.Option(None, "--gpus", help="One worker per GPU (NCCL), through torch elastic.")
_NPROC = typer.Option(None, "--nproc", help="CPU workers per node (gloo), through torch elastic.")
_NNODES = typer.Option(1, "--nnodes", help="Number of nodes (torchrun's --nnodes).")
_NODE_RANK = typer.Option(None, "--node-rank", help="This node's rank (torchrun's --node-rank).")
_ENDPOINT = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous (multi-node).")
_RDZV_ID = typer.Option(None, "--rdzv-id", help="Job id shared by all nodes.")
_RESTARTS = typer.Option(0, "--max-restarts", help="Restart failed workers this often; they resume from "
                                                   "checkpoints/last.")
_MAX_STEPS = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps.")
_RESUME = typer.Option(None, "--resume", help="'auto' (checkpoints/last if any) or a checkpoints/last directory.")
_CKPT_EVERY = typer.Option(0, "--checkpoint-every", help="Also save checkpoints/last every N steps.")


def train_tokenizer(ctx: typer.Context, config: Path | None = ConfigOpt, overrides: list[str] | None = OverridesArg,
                    sets: list[str] | None = SetOpt, device: str = DeviceOpt, max_steps: int | None = _MAX_STEPS,
                    resume: str | None = _RESUME,
                    init: str | None = typer.Option(None, "--init", help="Start from this checkpoint or preset:NAME "
                                                                          "[default: model.tokenizer]."),
                    checkpoint_every: int = _CKPT_EVERY, gpus: int | None = _GPUS, nproc: int | None = _NPROC,
                    nnodes: int = _NNODES, node_rank: int | None = _NODE_RANK, rdzv_endpoint: str | None = _ENDPOINT,
                    rdzv_id: str | None = _RDZV_ID, max_restarts: int = _RESTARTS, json_out: bool = JsonOpt) -> None:
    """Fine-tune the tokenizer (reconstruction + BSQ loss)."""
    _train(ctx, "tokenizer", config, overrides, sets, device, max_steps, resume, init, None, checkpoint_every, gpus,
           nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id, max_restarts, json_out)


def train_predictor(ctx: typer.Context, config: Path | None = ConfigOpt, overrides: list[str] | None = OverridesArg,
                    sets: list[str] | None = SetOpt, device: str = DeviceOpt, max_steps: int | None = _MAX_STEPS,
                    resume: str | None = _RESUME,
                    init: str | None = typer.Option(None, "--init", help="Start from this checkpoint or preset:NAME "
                                                                          "[default: model.predictor]."),
                    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer checkpoint [default: "
                                                         "this run's train-tokenizer best_model, else model.tokenizer]."),
                    checkpoint_every: int = _CKPT_EVERY, gpus: int | None = _GPUS, nproc: int | None = _NPROC,
                    nnodes: int = _NNODES, node_rank: int | None = _NODE_RANK, rdzv_endpoint: str | None = _ENDPOINT,
                    rdzv_id: str | None = _RDZV_ID, max_restarts: int = _RESTARTS, json_out: bool = JsonOpt) -> None:
    """Fine-tune the predictor (next-token cross-entropy over the tokenizer's tokens)."""
    _train(ctx, "predictor", config, overrides, sets, device, max_steps, resume, init, tokenizer, checkpoint_every, gpus,
           nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id, max_restarts, json_out)
