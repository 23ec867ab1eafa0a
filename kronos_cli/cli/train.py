"""`kronos train-tokenizer` and `kronos train-predictor`: in-process, or one worker per GPU/CPU via torch elastic."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, err_console, print_json, setup_logging

log = logging.getLogger("kronos_cli.cli")

# name -> (type, option): how far and from where a training run goes.
RUN = {
    "max_steps": (int | None, typer.Option(None, "--max-steps", help="Stop after this many optimiser steps.")),
    "resume": (
        str | None,
        typer.Option(None, "--resume", help="'auto' (checkpoints/last if any) or a checkpoints/last directory."),
    ),
    "checkpoint_every": (int, typer.Option(0, "--checkpoint-every", help="Also save checkpoints/last every N steps.")),
    "overwrite": (
        bool,
        typer.Option(False, "--overwrite", help="Start again in a run directory that holds an earlier run."),
    ),
}
with_run = opt.option_group(RUN, "run", lambda **flags: flags)


class ConsoleObserver:
    """Rank 0's view: Rich progress (loss, lr, samples/s, ETA) and an epoch table on a terminal; plain lines
    otherwise."""

    def __init__(self, quiet: bool = False, table: bool = True):
        self.quiet, self.table = quiet, table
        self.bar = None
        self.task = None
        self.rows: list[tuple] = []
        self.log_every = 1

    def on_start(self, info: dict[str, Any]) -> None:
        log.info(
            "training the %s on %s (world size %d): %d epochs, %d optimiser steps; method %s: %s of %s parameters "
            "trainable (%.2f%%); run dir %s",
            info["stage"],
            info["device"],
            info["world_size"],
            info["epochs"],
            info["total_steps"],
            info["method"],
            f"{info['params']:,}",
            f"{info['total_params']:,}",
            100 * info["params"] / max(info["total_params"], 1),
            info["run_dir"],
        )
        self.log_every = max(1, info["total_steps"] // 20)
        if err_console.is_terminal and not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
            )
            self.bar.start()
            self.task = self.bar.add_task(info["stage"], total=info["total_steps"], stats="")

    def on_step(self, e) -> None:
        stats = f"epoch {e.epoch}/{e.epochs} loss {e.loss:.4f} lr {e.lr:.2e} {e.samples_per_s:,.0f} samples/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=e.step, stats=stats)
        elif e.step % self.log_every == 0 or e.step == e.total_steps:
            log.info("step %d/%d %s", e.step, e.total_steps, stats)

    def on_epoch(self, e) -> None:
        self.rows.append((e.epoch, e.train_loss, e.val_loss, e.improved, e.seconds))
        msg = (
            f"epoch {e.epoch}: train {e.train_loss:.4f}, val {e.val_loss:.4f}"
            f"{' (best)' if e.improved else ''}, {e.seconds:.1f} s"
        )
        if self.bar is not None:
            self.bar.console.print(msg)
        else:
            log.info(msg)

    def on_end(self, summary) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.table and self.rows:
            console.print(_epoch_table(self.rows, summary.stage))
        if self.table and summary.val_loss_start is not None and not self.quiet:
            from kronos_cli.train.forgetting import verdict

            console.print(f"{summary.stage}: {verdict(summary.val_loss_start, summary.best_val_loss)}")


def _epoch_table(rows: list[tuple], stage: str):
    from rich.table import Table

    table = Table(title=f"{stage} training")
    for col in ("epoch", "train loss", "val loss", "best", "seconds"):
        table.add_column(col, justify="right")
    for epoch, tr, va, improved, sec in rows:
        table.add_row(str(epoch), f"{tr:.4f}", f"{va:.4f}", "*" if improved else "", f"{sec:.1f}")
    return table


def worker_observer(ctx, debug: bool = False, quiet: bool = False, json_out: bool = False):
    """Run in every training worker: our logging set-up; rank 0 renders, the others only warn."""
    from kronos_cli.train.state import Observer

    setup_logging(debug=debug, quiet=quiet)
    if not ctx.is_main:
        logging.getLogger("kronos_cli").setLevel(logging.WARNING)
        return Observer()
    return ConsoleObserver(quiet=quiet, table=not json_out)


def observer_factory(ctx: typer.Context, json_out: bool):
    """A picklable factory of each worker's observer, with this invocation's --debug/-q/--json."""
    root = ctx.find_root().params
    debug = bool(root.get("debug")) or os.environ.get("KRONOS_DEBUG", "") not in ("", "0")
    return functools.partial(worker_observer, debug=debug, quiet=bool(root.get("quiet")), json_out=json_out)


def _train(
    ctx: typer.Context,
    stage: str,
    cfg,
    device: str,
    init: str | None,
    tokenizer: str | None,
    launch,
    run: dict,
    json_out: bool,
) -> None:
    from kronos_cli.core.errors import KronosError
    from kronos_cli.train.launch import run_stage
    from kronos_cli.train.state import TrainOptions

    if run["max_steps"] is not None and run["max_steps"] <= 0:
        raise KronosError(f"--max-steps must be > 0, got {run['max_steps']}")
    options = TrainOptions(
        stage, run["max_steps"], run["resume"], init, tokenizer, run["checkpoint_every"], overwrite=run["overwrite"]
    )
    summary = run_stage(cfg, options, device, launch, observer_factory(ctx, json_out))
    if os.environ.get("RANK", "0") != "0":  # under torchrun/srun only rank 0 reports
        return
    if json_out:
        print_json(summary.to_json())
    else:
        console.print(
            f"best validation loss {summary.best_val_loss:.4f} (epoch {summary.best_epoch}); "
            f"best model: {summary.best_model}"
        )


@with_run
@opt.with_launcher
@opt.with_config
def train_tokenizer(
    ctx: typer.Context,
    init: str | None = typer.Option(
        None, "--init", help="Start from this checkpoint or preset:NAME [default: model.tokenizer]."
    ),
    device: str = opt.DEVICE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
    run=None,
) -> None:
    """Fine-tune the tokenizer (reconstruction + BSQ loss)."""
    _train(ctx, "tokenizer", cfg, device, init, None, launch, run, json_out)


@with_run
@opt.with_launcher
@opt.with_config
def train_predictor(
    ctx: typer.Context,
    init: str | None = typer.Option(
        None, "--init", help="Start from this checkpoint or preset:NAME [default: model.predictor]."
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer checkpoint [default: this run's train-tokenizer best_model, else model.tokenizer].",
    ),
    device: str = opt.DEVICE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
    run=None,
) -> None:
    """Fine-tune the predictor (next-token cross-entropy over the tokenizer's tokens)."""
    _train(ctx, "predictor", cfg, device, init, tokenizer, launch, run, json_out)
