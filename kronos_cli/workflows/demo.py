"""`kronos demo`: the whole job on the embedded default, a synthetic market and tiny models, on the CPU.

The synthetic Qlib market is written into the output directory, and the pipeline runs `configs/demo.yaml`
(tiny models trained from scratch, since pretrained weights need the internet) with every path pointing there.
The resolved config is saved there too (`config.yaml`), so the other commands find the demo's run, and a CSV of
daily bars is written for trying `kronos predict` on the exported bundle.
"""

from __future__ import annotations

from pathlib import Path

from kronos_cli.config import Config, dump
from kronos_cli.core.io import write_text
from kronos_cli.data.synthetic import write_market
from kronos_cli.data.synthetic_csv import CSV_MARKETS, write_csv_market


def demo_overrides(out: Path, extra: list[str] = ()) -> list[str]:
    return [
        f"data.provider_uri={out / 'market'}",
        f"data.dataset_path={out / 'data' / 'processed_datasets'}",
        f"output_dir={out / 'outputs'}",
        *extra,
    ]


# `kronos demo --walkforward`: four quarterly folds over 2024, each predictor refitted from the last fold's (the
# tokenizer, a preset, is trained once in the first fold), with a shorter training than the demo's pipeline.
WALKFORWARD = [
    "walkforward.start=2024-01-01",
    "walkforward.end=2024-12-31",
    "walkforward.test_period=3M",
    "walkforward.val_period=3M",
    "walkforward.base=previous",
    "training.epochs=1",
    "training.n_train_iter=60",
    "backtest.sample_count=8",
]


def ensure_market(out: Path) -> Path:
    market = out / "market"
    if not (market / "calendars" / "day.txt").is_file():
        write_market(market)
    return market


def write_config(cfg: Config, out: Path) -> Path:
    """`<out>/config.yaml`: the demo's resolved config (absolute paths), for the commands that take `-c`."""
    header = "# The resolved config of `kronos demo` (absolute paths): give it to signals, backtest or evaluate.\n"
    return write_text(out / "config.yaml", header + dump(cfg))


def ensure_bars(out: Path) -> Path:
    """A CSV of daily bars to forecast with the demo's bundle: the synthetic US market's first symbol, listed
    throughout."""
    market = out / "usdaily"
    if not (market / "kronos_market.json").is_file():
        write_csv_market(market, "usdaily", force=True)
    return market / f"{CSV_MARKETS['usdaily'].prefix}00.csv"
