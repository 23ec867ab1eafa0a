"""`kronos demo`: the whole job on the embedded default in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli.common import JsonOpt, OverridesArg, console, print_json


def demo(out: Path = typer.Option(Path("kronos-demo"), "--out", help="Where the market, data and runs go."),
         overrides: list[str] | None = OverridesArg, json_out: bool = JsonOpt) -> None:
    """Synthetic Qlib market -> prep -> fine-tune tokenizer and predictor -> forecast held-out windows."""
    from kronos_cli.cli.train import ConsoleObserver
    from kronos_cli.demo import run_demo

    result = run_demo(out, overrides or [], observer_factory=ConsoleObserver)
    ev = result.evaluation
    if json_out:
        print_json({"out": str(result.out), "dataset_splits": result.dataset["splits"],
                    "tokenizer": result.tokenizer, "predictor": result.predictor, "evaluation": ev})
        return
    from rich.table import Table

    table = Table(title="kronos demo: held-out test windows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("test windows forecast", str(ev["test_windows"]))
    table.add_row("horizon (bars)", str(ev["horizon"]))
    table.add_row("MAE close, fine-tuned model", f"{ev['mae_close_model']:.4f}")
    table.add_row("MAE close, naive (last value)", f"{ev['mae_close_naive']:.4f}")
    table.add_row("directional accuracy", f"{ev['directional_accuracy']:.1%}")
    table.add_row("tokenizer best val loss", f"{result.tokenizer['best_val_loss']:.4f}")
    table.add_row("predictor best val loss", f"{result.predictor['best_val_loss']:.4f}")
    console.print(table)
    console.print(f"errors in {ev['units']}; runs in {result.out / 'outputs' / 'models'}")
