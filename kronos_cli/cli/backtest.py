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
    with StepProgress("forecasting test windows") as bar:
        result = run_backtest(cfg, tokenizer, model, device, progress=bar.update)
    if json_out:
        print_json({k: v for k, v in result.items() if k not in ("daily_returns", "config")})
        return
    print_backtest(result)


def print_backtest(result: dict) -> None:
    """Rich tables of a backtest result: signal quality, portfolio, accuracy, notes and output paths."""
    from rich.table import Table

    q = Table(title="signal quality (vs realised return over the horizon)")
    for col in ("signal", "IC", "ICIR", "Rank IC", "Rank ICIR"):
        q.add_column(col, justify="right")
    for name, m in result["signal_quality"].items():
        q.add_row(name, *(f"{m[k]:.4f}" for k in ("IC", "ICIR", "Rank IC", "Rank ICIR")))
    console.print(q)
    p = Table(
        title=f"TopkDropout vs {result['benchmark']}, {result['backtest_range'][0]}..{result['backtest_range'][1]}"
        " (with cost; 238-day annualisation, summed returns)"
    )
    for col in (
        "signal",
        "ann. return",
        "volatility",
        "IR",
        "max DD",
        "win rate",
        "turnover",
        "excess ann.",
        "excess IR",
    ):
        p.add_column(col, justify="right")
    for name, m in result["portfolio"].items():
        w, e = m["with_cost"], m["excess_with_cost"]
        p.add_row(
            name,
            f"{w['annualized_return']:.2%}",
            f"{w['volatility']:.2%}",
            f"{w['information_ratio']:.2f}",
            f"{w['max_drawdown']:.2%}",
            f"{w['win_rate']:.0%}",
            f"{w.get('turnover', 0):.2f}",
            f"{e['annualized_return']:.2%}",
            f"{e['information_ratio']:.2f}",
        )
    b = result["benchmark_stats"]
    if b:
        p.add_row(
            "benchmark",
            f"{b['annualized_return']:.2%}",
            f"{b['volatility']:.2%}",
            f"{b['information_ratio']:.2f}",
            f"{b['max_drawdown']:.2%}",
            f"{b['win_rate']:.0%}",
            "",
            "",
            "",
        )
    console.print(p)
    a = result["forecast_accuracy"]
    console.print(
        f"forecast accuracy (close, normalised): MAE {a['MAE']:.4f}, MSE {a['MSE']:.4f}, R2 {a['R2']:.4f}, "
        f"direction {a['directional_accuracy']:.1%}, corr {a['correlation']:.4f}"
    )
    for note in result["notes"]:
        console.print(f"note: {note}")
    for label, path in result["outputs"].items():
        console.print(f"{label}: {path}")
