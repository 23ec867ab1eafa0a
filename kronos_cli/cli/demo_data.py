"""`kronos demo-data`: write the synthetic Qlib market (with a planted, documented predictable component)."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json


def demo_data(
    out: Path = typer.Argument(..., help="Directory to write the Qlib provider into."),
    stocks: int = typer.Option(60, "--stocks", help="Number of stocks."),
    start: str = typer.Option("2021-01-01", "--start", help="First calendar day."),
    end: str = typer.Option("2024-12-31", "--end", help="Last calendar day."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same market)."),
    signal: str = typer.Option(
        "reversal", "--signal", help="Planted predictable component: reversal, momentum, or none (a martingale)."
    ),
    strength: float = typer.Option(0.3, "--strength", help="How strong the planted component is, in [0, 1)."),
    market_vol: float = typer.Option(
        0.002, "--market-vol", help="Daily volatility of the market factor that all stocks share (unpredictable)."
    ),
    market: str = typer.Option(
        "qlib",
        "--market",
        help="qlib: daily A-shares as a Qlib provider; or bar files of another market: cn5min (A-share 5-minute "
        "CSV, XSHG), crypto1h (hourly Parquet, 24/7), usdaily (daily CSV, XNYS), fx1h (hourly currency pairs, "
        "CSV stamped in UTC, forex).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty directory."),
    json_out: bool = opt.JSON,
) -> None:
    """Write a synthetic market as a real Qlib provider directory (for demos and tests); its kronos_market.json
    holds the ground-truth IC of the planted component. `--market cn5min|crypto1h|usdaily|fx1h` writes bar files of
    that market instead, for configs/csv_minute.yaml, crypto_hourly.yaml, us_daily.yaml and fx_hourly.yaml."""
    from kronos_cli.data.synthetic import METADATA, MarketSpec, write_market
    from kronos_cli.data.synthetic_csv import write_csv_market

    if market != "qlib":
        n = stocks if stocks != 60 else 12
        path = write_csv_market(out, market, symbols=n, seed=seed, force=force)
        if json_out:
            print_json({"market": market, "path": str(path)})
        else:
            console.print(f"synthetic {market} bar files: {path}")
        return
    path = write_market(out, MarketSpec(stocks, start, end, seed, signal, strength, market_vol), force=force)
    if json_out:
        print_json({"market": market, "path": str(path), "ground_truth": str(path / METADATA)})
    else:
        console.print(f"synthetic Qlib market: {path} (ground truth in {path / METADATA})")
