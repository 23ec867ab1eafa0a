"""`kronos pipeline`: prep -> train-tokenizer -> train-predictor -> backtest -> export, skipping what is done."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from kronos_cli.cli.common import ConfigOpt, DeviceOpt, JsonOpt, OverridesArg, SetOpt, console, load_config, print_json
from kronos_cli.cli.train import (
    _ENDPOINT,
    _GPUS,
    _NNODES,
    _NODE_RANK,
    _NPROC,
    _RDZV_ID,
    _RESTARTS,
    launch_options,
    observer_factory,
)


def run_with_cli(
    ctx: typer.Context,
    cfg,
    device: str,
    launch_opts,
    start: str | None,
    until: str | None,
    force: bool,
    export_formats: list[str] | None,
    json_out: bool = False,
) -> dict:
    """The library pipeline with training stages rendered like `kronos train-*`."""
    from kronos_cli.pipeline import run_pipeline

    def on_stage(stage: str, state: str) -> None:
        logging.getLogger("kronos_cli.cli").info("pipeline: %s %s", stage, state)

    return run_pipeline(
        cfg, start, until, force, device, export_formats, launch_opts, observer_factory(ctx, json_out), on_stage
    )


def pipeline(
    ctx: typer.Context,
    config: Path | None = ConfigOpt,
    overrides: list[str] | None = OverridesArg,
    sets: list[str] | None = SetOpt,
    device: str = DeviceOpt,
    force: bool = typer.Option(False, "--force", help="Redo stages whose outputs are up to date."),
    start: str | None = typer.Option(None, "--from", help="First stage to run."),
    until: str | None = typer.Option(None, "--until", help="Last stage to run."),
    formats: str = typer.Option("bundle,hf,int8,compiled", "--format", help="Export formats."),
    gpus: int | None = _GPUS,
    nproc: int | None = _NPROC,
    nnodes: int = _NNODES,
    node_rank: int | None = _NODE_RANK,
    rdzv_endpoint: str | None = _ENDPOINT,
    rdzv_id: str | None = _RDZV_ID,
    max_restarts: int = _RESTARTS,
    json_out: bool = JsonOpt,
) -> None:
    """Run the whole job; stages whose outputs exist for the same config are skipped."""
    cfg = load_config(config, overrides, sets)
    launch_opts = launch_options(gpus, nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id, max_restarts)
    result = run_with_cli(
        ctx,
        cfg,
        device,
        launch_opts,
        start,
        until,
        force,
        [f.strip() for f in formats.split(",") if f.strip()],
        json_out,
    )
    if os.environ.get("RANK", "0") != "0":
        return
    report(result, json_out)


def report(result: dict, json_out: bool) -> None:
    """The backtest tables (when the backtest ran) and the paths of the report, plot and exported artifacts."""
    if json_out:
        bt = result.get("backtest")
        print_json(
            {
                "stages": result["stages"],
                "paths": result["paths"],
                "backtest": bt.to_json(full=False) if bt else None,
                "export": result.get("export"),
            }
        )
        return
    paths = dict(result["paths"])
    if result.get("backtest"):
        from kronos_cli.cli.backtest import print_backtest

        print_backtest(result["backtest"])  # it lists the backtest's files itself
        paths = {"exported": paths["exported"]}
    for label, path in paths.items():
        console.print(f"{label}: {path}")
