"""`kronos walkforward`: retrain per period, one stitched out-of-sample verdict."""

from __future__ import annotations

import logging
import os

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json, print_tables
from kronos_cli.cli.train import observer_factory


@opt.with_launcher
@opt.with_config
def walkforward(
    ctx: typer.Context,
    plan: bool = typer.Option(False, "--plan", help="Print the folds (dates, training sizes, refits) and stop."),
    device: str = opt.DEVICE,
    force: bool = typer.Option(False, "--force", help="Score and report again even when nothing changed."),
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Folds over the walkforward: span, each trained only on bars before its test period (as `kronos pipeline`
    trains a run), their test periods stitched into one record: leaderboard, per-fold table, sign tests, one
    backtest over the span."""
    from kronos_cli.walkforward.folds import Training
    from kronos_cli.walkforward.run import run_walkforward, walkforward_plan

    if plan:
        folds = walkforward_plan(cfg)
        if json_out:
            print_json({"embargo": folds.embargo, "folds": folds.to_json()})
        else:
            print_tables([folds.table()])
        return
    how = Training(device, launch, observer_factory(ctx, json_out))
    log = logging.getLogger("kronos_cli.cli")
    with StepProgress("walk-forward") as bar:
        result = run_walkforward(cfg, how, force, bar.update, lambda fold, state: log.info("%s: %s", fold, state))
    if os.environ.get("RANK", "0") != "0":
        return
    if json_out:
        print_json(result.to_json())
        return
    print_walkforward(result)


def print_walkforward(result, folds_last: bool = False) -> None:
    """The result's tables, its notes and outputs; with `folds_last`, the per-fold table at the very end; then the
    page to open."""
    if result.up_to_date:
        console.print("walk-forward up to date: nothing changed since the last run (--force scores it again)")
    tables = result.tables()
    print_tables(tables[1:] if folds_last else tables)
    for note in result.evaluation.notes:
        console.print(f"note: {note}")
    for label, path in result.outputs.items():
        if label != "html":
            console.print(f"{label}: {path}", markup=False, highlight=False)
    if folds_last:
        print_tables(tables[:1])
    if "html" in result.outputs:  # a result written before pages were made has none
        console.print(f"report (open in a browser): {result.outputs['html']}", markup=False, highlight=False)
