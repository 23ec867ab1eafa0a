"""`kronos backtest`: forecast the test split, Qlib TopkDropout backtest, signal and portfolio reports."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli.common import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    OverridesArg,
    SetOpt,
    StepProgress,
    console,
    load_config,
    print_json,
    print_tables,
)


def backtest(
    config: Path | None = ConfigOpt,
    overrides: list[str] | None = OverridesArg,
    sets: list[str] | None = SetOpt,
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer checkpoint [default: the run's fine-tuned best_model, else model.tokenizer].",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Predictor checkpoint [default: the run's fine-tuned best_model, else model.predictor]."
    ),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Forecast every test window, turn forecasts into signals and backtest them with Qlib."""
    from kronos_cli.backtest.run import run_backtest

    cfg = load_config(config, overrides, sets)
    with StepProgress("backtest") as bar:
        result = run_backtest(cfg, tokenizer, model, device, progress=bar.update)
    if json_out:
        print_json(result.to_json(full=False))
        return
    print_backtest(result)


def print_backtest(result) -> None:
    """A backtest's tables, notes and output paths."""
    print_tables(result.tables())
    for note in result.notes:
        console.print(f"note: {note}")
    for label, path in result.outputs.items():
        console.print(f"{label}: {path}")
