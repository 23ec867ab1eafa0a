"""`kronos fetch`: bars of real markets from yfinance, akshare or ccxt into the layout `kronos prep` reads."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, err_console, print_json, print_tables
from kronos_cli.core.tables import render_text


def fetch(
    source: str = typer.Argument(..., help="yfinance (any Yahoo ticker), akshare (A-shares) or ccxt (crypto)."),
    symbols: list[str] = typer.Argument(None, help="Tickers: AAPL MSFT, 600000 SZ000001, BTC/USDT ETH/USDT."),
    start: str = typer.Option(..., "--start", help="First day, e.g. 2020-01-01."),
    end: str = typer.Option(None, "--end", help="Last day (the whole day) [default: now]."),
    interval: str = typer.Option("day", "--interval", help="Bar size: day, 1h, 5min, ... (what the source offers)."),
    out: Path = typer.Option(None, "--out", help="Directory to write (and update) [default: ./market_SOURCE]."),
    fmt: str = typer.Option(
        "csv", "--format", help="csv or parquet (one file per symbol, data.source: csv) or qlib (a provider directory)."
    ),
    calendar: str = typer.Option(
        None, "--calendar", help="Market calendar gaps are counted on [default: the source's: XNYS, XSHG, 24/7]."
    ),
    exchange: str = typer.Option("binance", "--exchange", help="ccxt: the exchange (binance, kraken, okx, ...)."),
    pool: str = typer.Option(None, "--pool", help="akshare: also fetch an index's members (csi300, csi500, ...)."),
    refresh: bool = typer.Option(
        False, "--refresh", help="Download every symbol whole, replacing what is stored (accepts revised bars)."
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print (alone on stdout) a config for kronos pipeline -c that reads the data."
    ),
    json_out: bool = opt.JSON,
) -> None:
    """Download market bars (yfinance, akshare, ccxt) into the files `kronos prep` reads; run again to add only the
    missing tail (bars the source has revised since are reported, not replaced). Exit code 1 when a symbol failed
    (the others are written)."""
    from kronos_cli.fetch.request import build_request
    from kronos_cli.fetch.run import fetch as run_fetch

    req = build_request(
        source, symbols or [], start, end, interval, out or Path(f"market_{source}"), fmt,
        calendar=calendar, exchange=exchange, pool=pool, refresh=refresh,
    )  # fmt: skip
    with StepProgress(f"fetch {source}", unit="symbols") as bar:
        report = run_fetch(req, progress=lambda done, total, note: bar.update(done, total, note))
    if json_out:
        print_json(report.to_json())
    elif print_config:  # stdout is the config alone (`> run.yaml`); the summary goes to stderr
        err_console.print(render_text([report.table()]), highlight=False, markup=False)
        sys.stdout.write(report.config_snippet())
    else:
        print_tables([report.table()])
    for r in report.failed:
        err_console.print(f"[bold red]failed:[/] {r.symbol}: {r.error}", highlight=False)
    if report.failed:
        raise typer.Exit(1)
