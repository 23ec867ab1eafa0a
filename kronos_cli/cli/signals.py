"""`kronos signals`: one day's ranked signal table, from the fine-tuned run or any checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import typer

from kronos_cli.cli.common import ConfigOpt, DeviceOpt, JsonOpt, OverridesArg, SetOpt, console, load_config, print_json


def signals(
    config: Path | None = ConfigOpt,
    overrides: list[str] | None = OverridesArg,
    sets: list[str] | None = SetOpt,
    date: str = typer.Option("latest", "--date", help="YYYY-MM-DD, or latest (the last bar of the data)."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="[default: the run's fine-tuned best_model]"),
    model: str | None = typer.Option(None, "--model", help="[default: the run's fine-tuned best_model]"),
    bundle: Path | None = typer.Option(None, "--bundle", help="A kronos_finetuned.pth from `kronos export`."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the table here (.csv or .json)."),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Rank the pool on one day with the backtest's signals (for tomorrow's trades with --date latest)."""
    from kronos_cli.backtest.ranking import day_signals
    from kronos_cli.io import write_json, write_text
    from kronos_cli.runs import load_pair

    cfg = load_config(config, overrides, sets)
    pair = load_pair(cfg, tokenizer, model, str(bundle) if bundle else None)
    pair.warn_if_trained_otherwise(cfg)
    result = day_signals(cfg, pair.predictor(device, cfg.data.max_context, cfg.data.clip), date)
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
