"""`kronos demo-data`: write the synthetic Qlib market."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli.common import console


def demo_data(
    out: Path = typer.Argument(..., help="Directory to write the Qlib provider into."),
    stocks: int = typer.Option(60, "--stocks", help="Number of stocks."),
    start: str = typer.Option("2021-01-01", "--start", help="First calendar day."),
    end: str = typer.Option("2024-12-31", "--end", help="Last calendar day."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same market)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty directory."),
) -> None:
    """Write a synthetic market as a real Qlib provider directory (for demos and tests)."""
    from kronos_cli.data.synthetic import MarketSpec, write_market

    path = write_market(out, MarketSpec(stocks, start, end, seed), force=force)
    console.print(f"synthetic Qlib market: {path}")
