"""`kronos signals`: one day's ranked signal table, from the fine-tuned run or any checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json


@opt.with_launcher
@opt.with_config
def signals(
    date: str = typer.Option("latest", "--date", help="YYYY-MM-DD, or latest (the last bar of the data)."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="[default: the run's fine-tuned best_model]"),
    model: str | None = typer.Option(None, "--model", help="[default: the run's fine-tuned best_model]"),
    bundle: Path | None = opt.BUNDLE,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the table here (.csv or .json)."),
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Rank the pool on one day with the backtest's signals (for tomorrow's trades with --date latest)."""
    from kronos_cli.backtest.ranking import day_signals
    from kronos_cli.core.io import write_json, write_text
    from kronos_cli.records.runs import load_pair
    from kronos_cli.runtime.precision import concrete

    pair = load_pair(cfg, tokenizer, model, str(bundle) if bundle else None)
    pair.warn_if_trained_otherwise(cfg)
    forecaster = pair.forecaster(pair.resolve(cfg, dtype=concrete(dtype), device=device))  # no sample to check
    result = day_signals(cfg, pair, forecaster, date, launch)
    if output is not None:
        if output.suffix == ".json":
            write_json(output, result.to_json())
        else:
            write_text(output, result.table.to_csv(index=False))
    if json_out:
        print_json(result.to_json())
    elif output is None:
        buf = io.StringIO()
        result.table.to_csv(buf, index=False)
        console.file.write(buf.getvalue())
