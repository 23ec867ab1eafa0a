"""`kronos demo`: the whole job on the embedded default in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli.common import JsonOpt, OverridesArg, console, print_json


def demo(out: Path = typer.Option(Path("kronos-demo"), "--out", help="Where the market, data and runs go."),
         overrides: list[str] | None = OverridesArg, json_out: bool = JsonOpt) -> None:
    """Synthetic Qlib market -> prep -> fine-tune tokenizer and predictor -> Qlib backtest of the test split."""
    from kronos_cli.cli.backtest import print_backtest
    from kronos_cli.cli.train import ConsoleObserver
    from kronos_cli.demo import run_demo

    result = run_demo(out, overrides or [], observer_factory=ConsoleObserver)
    bt = {k: v for k, v in result.backtest.items() if k not in ("daily_returns", "config")}
    if json_out:
        print_json({"out": str(result.out), "dataset_splits": result.dataset["splits"],
                    "tokenizer": result.tokenizer, "predictor": result.predictor, "backtest": bt})
        return
    console.print(f"tokenizer best val loss {result.tokenizer['best_val_loss']:.4f}; predictor best val loss "
                  f"{result.predictor['best_val_loss']:.4f}; runs in {result.out / 'outputs' / 'models'}")
    print_backtest(result.backtest)
