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
    capacity: str | None = typer.Option(
        None,
        "--capacity",
        help="Capital levels to simulate the first signal's portfolio at, from the same forecasts: 1e6,1e7,1e8 "
        "[default: backtest.capacity].",
    ),
    cost_multipliers: str | None = typer.Option(
        None,
        "--cost-multipliers",
        help="Multiples of every cost to simulate it at: 0,1,2,4 (or 0x,1x,2x,4x) [default: "
        "backtest.cost_multipliers].",
    ),
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Forecast every signal day of the test split point in time, and backtest the signals: Qlib's TopkDropout over
    a pool, or one series long and short (or flat) on the forecast's sign against its buy and hold; with capacity
    and cost levels, the first signal's portfolio again at each, from the same forecasts."""
    from kronos_cli.backtest.run import run_backtest
    from kronos_cli.runtime.split_forecasts import Scale

    cfg = with_levels(cfg, {"--capacity": capacity, "--cost-multipliers": cost_multipliers})
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


def with_levels(cfg, flags: dict[str, str | None]):
    """The config with the levels given by flags in place of backtest.capacity and backtest.cost_multipliers,
    checked as the config's are (a bad level is one line naming the flag)."""
    import dataclasses

    from kronos_cli.config.checks import trading_problems
    from kronos_cli.core.errors import KronosError

    keys = {"--capacity": "capacity", "--cost-multipliers": "cost_multipliers"}
    changes = {}
    for flag, text in flags.items():
        if text is None:
            continue
        try:
            changes[keys[flag]] = [float(v.strip().rstrip("xX")) for v in text.split(",") if v.strip()]
        except ValueError:
            raise KronosError(f"{flag} takes numbers separated by commas (1e6,1e7 or 0x,1x,2x), got {text!r}") from None
    if not changes:
        return cfg
    b = dataclasses.replace(cfg.backtest, **changes)
    for problem in trading_problems(b):
        for flag, key in keys.items():
            if key in changes:
                problem = problem.replace(f"backtest.{key}", flag)
        raise KronosError(problem)
    return dataclasses.replace(cfg, backtest=b)
