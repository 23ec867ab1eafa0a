"""Synthetic markets as the files users have: CSV and Parquet bars of other markets and bar sizes.

`kronos demo-data DIR --market cn5min|crypto1h|usdaily|fx1h` writes, on the market's real calendar:
- `cn5min`: A-share 5-minute bars on the XSHG calendar (lunch break 11:30-13:00), stamped at each bar's end as
  most vendors do (09:35 ... 11:30, 13:05 ... 15:00), one CSV file with a symbol column;
- `crypto1h`: hourly bars around the clock (24/7), UTC timestamps, one Parquet file per symbol;
- `usdaily`: daily bars on the XNYS calendar (its holidays; early closes are ordinary daily bars), one CSV
  file per symbol;
- `fx1h`: hourly currency pairs on the forex week (Sunday 17:00 to Friday 17:00 New York), stamped at the bar's
  start in UTC as Dukascopy and OANDA do, so the week opens at 22:00 UTC before the US changes its clocks (2024-03-10)
  and at 21:00 UTC after; one CSV file per pair.
Each series has the demo market's planted reversal (the deviation from a common factor mean-reverts, strength
0.3 per day spread over the day's bars), listings after the start, a delisting, and a few missing bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir, json_text
from kronos_cli.market.sessions import bars_per_day, parse_freq, session_grid
from kronos_cli.market.stamps import range_end


@dataclass(frozen=True)
class CsvMarket:
    calendar: str
    freq: str
    label: str  # intraday bars stamped at their start or end
    layout: str  # "file": one file with a symbol column; "dir": a file per symbol
    suffix: str  # .csv or .parquet
    start: str
    end: str
    prefix: str
    daily_vol: float
    price: float = 30.0  # the typical price level


CSV_MARKETS = {
    "cn5min": CsvMarket("XSHG", "5min", "end", "file", ".csv", "2024-01-02", "2024-04-30", "SH6000", 0.02),
    "crypto1h": CsvMarket("24/7", "1h", "start", "dir", ".parquet", "2024-01-01", "2024-03-31", "C", 0.035),
    "usdaily": CsvMarket("XNYS", "day", "start", "dir", ".csv", "2021-01-04", "2024-12-31", "US", 0.018),
    "fx1h": CsvMarket("forex", "1h", "start", "dir", ".csv", "2024-02-01", "2024-04-30", "FX", 0.006, 1.0),
}
FX_PAIRS = (
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "AUDUSD",
    "USDCAD",
    "USDCHF",
    "NZDUSD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "EURCHF",
    "AUDJPY",
)


def _series(
    rng: np.random.Generator, n: int, per_day: float, vol: float, factor: np.ndarray, price: float = 30.0
) -> np.ndarray:
    """(n, 6) bars: a common factor plus a mean-reverting deviation, OHLC around the close, volume, amount."""
    phi = (1 - 0.3) ** (1 / per_day)  # the deviation keeps 70% a day, whatever the bar size
    eps = rng.normal(0, vol / np.sqrt(per_day), n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + eps[t]
    close = price * np.exp(rng.uniform(-1, 1) + factor + x)
    prev = np.r_[close[0], close[:-1]]
    open_ = prev * (1 + rng.normal(0, vol / np.sqrt(per_day) / 4, n))
    spread = np.abs(rng.normal(0, vol / np.sqrt(per_day) / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.round(1e5 * np.exp(rng.normal(0, 0.4, n)))
    return np.stack([open_, high, low, close, volume, volume * (open_ + high + low + close) / 4], axis=1)


def _symbol(market: str, m: CsvMarket, i: int) -> str:
    if market == "fx1h" and i < len(FX_PAIRS):
        return FX_PAIRS[i]
    return f"{m.prefix}{i:02d}" + ("USDT" if market == "crypto1h" else "")


def write_csv_market(out: str | Path, market: str, symbols: int = 12, seed: int = 7, force: bool = False) -> Path:
    """Write a synthetic market's bar files into `out` (atomically); returns its path."""
    if market not in CSV_MARKETS:
        raise KronosError(f"market must be one of qlib, {', '.join(CSV_MARKETS)}; got {market!r}", setting="market")
    if symbols < 4:
        raise KronosError(f"stocks must be at least 4, got {symbols}", setting="stocks")
    m, target = CSV_MARKETS[market], Path(out).expanduser().resolve()
    if target.exists() and any(target.iterdir()) and not force:
        raise KronosError(f"{target} exists and is not empty; pass force to replace it", setting="force")
    freq = parse_freq(m.freq)
    grid = session_grid(m.calendar, freq, m.label).bars(pd.Timestamp(m.start), range_end(m.end))
    rng, n, per_day = np.random.default_rng(seed), len(grid), bars_per_day(grid)
    factor = np.cumsum(rng.normal(0, m.daily_vol / 2 / np.sqrt(per_day), n))
    frames = {}
    for i in range(symbols):
        bars = _series(rng, n, per_day, m.daily_vol, factor, m.price)
        first = int(n * 0.3) if i == 1 else 0  # a late listing
        last = int(n * 0.8) if i == 2 else n  # a delisting
        keep = np.zeros(n, dtype=bool)
        keep[first:last] = True
        keep[rng.choice(n, size=max(1, n // 500), replace=False)] = False  # a few missing bars
        stamps = grid[keep]
        df = pd.DataFrame(bars[keep], columns=["open", "high", "low", "close", "volume", "amount"])
        df.insert(0, "timestamps", stamps.tz_localize("UTC") if m.calendar == "24/7" else stamps)
        frames[_symbol(market, m, i)] = df
    with atomic_dir(target) as tmp:
        if m.layout == "file":
            both = pd.concat([f.assign(symbol=s) for s, f in frames.items()]).sort_values(["timestamps", "symbol"])
            both.to_csv(tmp / f"{market}{m.suffix}", index=False, float_format="%.6g")
        else:
            for s, f in frames.items():
                f.to_parquet(tmp / f"{s}{m.suffix}") if m.suffix == ".parquet" else f.to_csv(
                    tmp / f"{s}{m.suffix}", index=False
                )
        meta = {"market": market, **m.__dict__, "symbols": sorted(frames), "bars": n, "bars_per_day": per_day}
        (tmp / "kronos_market.json").write_text(json_text(meta))
    return target
