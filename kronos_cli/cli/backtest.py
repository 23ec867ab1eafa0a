"""`kronos backtest`: forecast the test split, backtest the signals (Qlib's TopkDropout; one series: the forecast's
sign against buy and hold), signal and portfolio reports."""

from __future__ import annotations

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json, print_tables


@opt.with_launcher
@opt.with_config
def backtest(
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer checkpoint [default: the run's fine-tuned best_model, else model.tokenizer].",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Predictor checkpoint [default: the run's fine-tuned best_model, else model.predictor]."
    ),
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Forecast every signal day of the test split point in time, and backtest the signals: Qlib's TopkDropout over
    a pool, or one series long and short (or flat) on the forecast's sign against its buy and hold."""
    from kronos_cli.backtest.run import run_backtest
    from kronos_cli.split_forecasts import Scale

    with StepProgress("backtest", unit="windows") as bar:
        result = run_backtest(cfg, tokenizer, model, device, progress=bar.update, scale=Scale(dtype, launch))
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
