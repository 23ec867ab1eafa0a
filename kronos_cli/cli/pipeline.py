"""`kronos pipeline`: prep -> train-tokenizer -> train-predictor -> backtest -> export -> evaluate, skipping what is
done."""

from __future__ import annotations

import logging
import os

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json
from kronos_cli.cli.train import observer_factory


class _StageProgress:
    """One progress bar per pipeline stage that reports progress (training stages render their own)."""

    def __init__(self) -> None:
        self.bar: StepProgress | None = None

    def on_stage(self, stage: str, state: str) -> None:
        self.close()
        logging.getLogger("kronos_cli.cli").info("pipeline: %s %s", stage, state)
        if state == "running" and not stage.startswith("train-"):
            self.bar = StepProgress(stage).__enter__()

    def update(self, done: int, total: int, note: str = "") -> None:
        if self.bar is not None:
            self.bar.update(done, total, note)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


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
):
    """The library pipeline with training stages rendered like `kronos train-*`; on a failing stage the summary
    of what exists is printed before the stage's one-line error."""
    from kronos_cli.workflows.pipeline import PipelineFailed, run_pipeline

    bars = _StageProgress()
    try:
        return run_pipeline(
            cfg,
            start,
            until,
            force,
            device,
            export_formats,
            launch_opts,
            observer_factory(ctx, json_out),
            bars.on_stage,
            bars.update,
        )
    except PipelineFailed as failed:
        bars.close()
        if os.environ.get("RANK", "0") == "0":
            report(failed.result, json_out)
        raise failed.cause from None
    finally:
        bars.close()


@opt.with_launcher
@opt.with_config
def pipeline(
    ctx: typer.Context,
    device: str = opt.DEVICE,
    force: bool = typer.Option(False, "--force", help="Redo stages whose outputs are up to date."),
    start: str | None = typer.Option(None, "--from", help="First stage to run."),
    until: str | None = typer.Option(None, "--until", help="Last stage to run."),
    formats: str = typer.Option("bundle,hf,int8,compiled", "--format", help="Export formats."),
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Run the whole job; stages whose outputs exist for the same config are skipped."""
    result = run_with_cli(
        ctx, cfg, device, launch, start, until, force, [f.strip() for f in formats.split(",") if f.strip()], json_out
    )
    if os.environ.get("RANK", "0") != "0":
        return
    report(result, json_out)


def report(result, json_out: bool) -> None:
    """The backtest and export tables of the stages that ran, each stage's state and the outputs that exist."""
    if json_out:
        print_json(result.to_json())
        return
    if "backtest" in result.results:
        from kronos_cli.cli.backtest import print_backtest

        print_backtest(result.results["backtest"])
    if "export" in result.results:
        from kronos_cli.cli.export import print_export

        print_export(result.results["export"])
    if "evaluate" in result.results:
        from kronos_cli.cli.evaluate import print_evaluation

        print_evaluation(result.results["evaluate"], outputs=False)
    console.print("stages: " + ", ".join(f"{s} {state}" for s, state in result.stages.items()))
    for label, path in result.paths.items():
        console.print(f"{label}: {path}")
    if result.failed:
        console.print(f"the {result.failed} stage failed; the outputs above are those of the stages before it")
