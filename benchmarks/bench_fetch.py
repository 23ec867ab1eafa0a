"""`kronos fetch` after the download: (1) turning fetched bars into a Qlib provider against parsing the recorded
responses themselves, (2) the bytes an incremental update of one new day writes against a full rewrite.

(1) Binance klines in the recorded format (`tests/fetch/cassettes/build.py`), pages of 1000 hourly bars for each
symbol, are parsed by ccxt as `fetch_ohlcv` parses them (`json.loads`, `parse_ohlcvs`); then the same rows become
the canonical frames and a Qlib provider (calendar, pool, nine feature bins a symbol) through the store `kronos
fetch` writes with. The ratio is write / parse, measured in the same run (target: under 2x).
(2) A provider and a CSV directory of 500 symbols' daily bars (two years on XNYS), then one new day for each: the
bytes the update writes (appended bins, the calendar and pool; appended CSV rows) against the size of a full
rewrite.

    python benchmarks/bench_fetch.py [--symbols 500] [--hours 4000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.fetch.files import FileStore
from kronos_cli.fetch.frames import bar_frame, tail_after
from kronos_cli.fetch.qlib_store import QlibStore
from kronos_cli.market.sessions import parse_freq, session_grid

T0, HOUR_MS = 1704067200000, 3_600_000


def kline(t_ms: int, k: int) -> list:
    """One Binance kline as the exchange sends it (the recorded responses' format): times, prices as strings."""
    c = 42000.0 * (1 + 0.002 * np.sin(k * 0.7))
    row = [f"{c * 0.999:.2f}", f"{c * 1.003:.2f}", f"{c * 0.996:.2f}", f"{c:.2f}", f"{10 + k % 5}"]
    return [t_ms, *row, t_ms + HOUR_MS - 1, f"{c * 10:.2f}", 100 + k, "1.0", "1.0", "0"]


def responses(symbols: int, hours: int) -> list[list[str]]:
    """Each symbol's klines as the exchange sends them: JSON pages of at most 1000 bars."""
    out = []
    for i in range(symbols):
        rows = [kline(T0 + h * HOUR_MS, h + i) for h in range(hours)]
        out.append([json.dumps(rows[a : a + 1000]) for a in range(0, hours, 1000)])
    return out


def parse(ex, pages: list[list[str]]) -> list[list]:
    return [[r for page in sym for r in ex.parse_ohlcvs(json.loads(page), None, "1h")] for sym in pages]


def to_provider(rows: list[list], root: Path) -> None:
    freq = parse_freq("1h")
    store = QlibStore(root, freq, {"calendar": "24/7", "bar_label": "start", "freq": freq.qlib, "source": "ccxt"})
    for i, r in enumerate(rows):
        a = np.asarray(r, dtype=np.float64)
        df = bar_frame(pd.to_datetime(a[:, 0].astype(np.int64), unit="ms"), *a[:, 1:6].T)
        store.put(f"S{i:04d}", None, df, df)
    grid = session_grid("24/7", freq).bars(pd.Timestamp(T0, unit="ms"), pd.Timestamp(rows[0][-1][0], unit="ms"))
    store.close(grid)


def ratio(symbols: int, hours: int, repeats: int = 3) -> tuple[float, float]:
    import ccxt

    ex = ccxt.binance()
    pages = responses(symbols, hours)
    t_parse, t_write = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        rows = parse(ex, pages)
        t_parse.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            to_provider(rows, Path(tmp) / "p")
            t_write.append(time.perf_counter() - t)
    return min(t_parse), min(t_write)


def daily(n: int, days: pd.DatetimeIndex, i: int) -> pd.DataFrame:
    close = 50 + i % 97 + np.cumsum(np.sin(np.arange(len(days)) * 0.1 + i)) * 0.1
    return bar_frame(days, close, close * 1.01, close * 0.99, close, np.full(len(days), 1e6), factor=np.ones(len(days)))


def update_bytes(symbols: int, fmt: str) -> tuple[int, int]:
    """Bytes written by a one-day update of `symbols` symbols, and the size of the store it updates."""
    freq = parse_freq("day")
    grid = session_grid("XNYS", freq).bars(pd.Timestamp("2023-01-01"), pd.Timestamp("2025-01-02"))
    old, new = grid[:-1], grid
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / fmt

        def store():
            meta = {"calendar": "XNYS", "bar_label": "start", "freq": "day", "source": "yfinance"}
            return QlibStore(root, freq, meta) if fmt == "qlib" else FileStore(root, fmt, False)

        first = store()
        for i in range(symbols):
            df = daily(symbols, old, i)
            first.put(f"S{i:04d}", None, df, df)
        first.close(old)
        second = store()
        for i in range(symbols):
            stored = second.read(f"S{i:04d}")
            fresh = daily(symbols, new, i)
            tail = tail_after(stored, fresh)
            second.put(f"S{i:04d}", stored, pd.concat([stored, tail]), tail)
        second.close(new)
        full = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        return second.bytes_written, full


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--hours", type=int, default=4000)
    ap.add_argument("--parse-symbols", type=int, default=50)
    args = ap.parse_args()
    t_parse, t_write = ratio(args.parse_symbols, args.hours)
    bars = args.parse_symbols * args.hours
    print(f"recorded klines, {args.parse_symbols} symbols x {args.hours} hourly bars ({bars:,} bars):")
    print(f"  parse (json + ccxt parse_ohlcvs) {t_parse:.3f} s; into a Qlib provider {t_write:.3f} s")
    print(f"  ratio write / parse: {t_write / t_parse:.2f}x (target < 2x)")
    for fmt in ("qlib", "csv"):
        wrote, full = update_bytes(args.symbols, fmt)
        print(
            f"one new day for {args.symbols} symbols ({fmt}): {wrote:,} bytes written vs {full:,} for a full rewrite "
            f"({wrote / full:.2%})"
        )


if __name__ == "__main__":
    main()
