"""Qlib provider directories: where a config's provider is, and writing one (calendar, pools, feature bins).

Every source becomes a Qlib provider: Qlib's own data is one already; `kronos prep` writes a CSV or Parquet
source as one inside the dataset (`<dataset_path>/qlib`), so that the backtest, `signals` and `evaluate` read
prices, calendar and benchmark through Qlib the same way for both. The layout is Qlib's: `calendars/<freq>.txt`
(one bar per line), `instruments/<pool>.txt` (SYMBOL<TAB>start<TAB>end, a line per membership span) and
`features/<symbol>/<field>.<freq>.bin` (little-endian float32: the series' first calendar index, then its
values, NaN where it has no bar). `kronos_provider.json` says which market calendar the bars follow.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.io import json_text
from kronos_cli.market.bars import mean_price
from kronos_cli.market.sessions import future_timestamps, parse_freq

PROVIDER_DIR = "qlib"  # inside the dataset directory, for sources that are not Qlib providers
PROVIDER_META = "kronos_provider.json"
CSV_POOL = "all"  # the pool a CSV source's provider lists every symbol in
QLIB_FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor", "change")  # `qlib_fields`


def provider_uri(d: DataConfig) -> str:
    """The Qlib provider a config's data lives in: `data.provider_uri`, or the one prep wrote from CSV."""
    return d.provider_uri if d.source == "qlib" else str(Path(d.dataset_path) / PROVIDER_DIR)


def pool_of(d: DataConfig) -> str | list[str]:
    """The pool (or symbol list) a config reads: `data.instrument`, or every CSV symbol."""
    if d.source == "csv" and not isinstance(d.instrument, list):
        return CSV_POOL
    return d.instrument


def provider_meta(uri: str | Path) -> dict:
    """What a provider written by kronos records about its market ({} for Qlib's own data)."""
    path = Path(uri).expanduser() / PROVIDER_META
    return json.loads(path.read_text()) if path.is_file() else {}


def _stamp(t: pd.Timestamp, intraday: bool) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}" if intraday else f"{t:%Y-%m-%d}"


def write_calendar(root: Path, freq: str, calendar: pd.DatetimeIndex, append: bool = False) -> None:
    """The calendar's bars, a line each (after the lines there with `append`)."""
    unit = "s" if parse_freq(freq).intraday else "D"  # numpy writes ISO: 2024-01-02T09:35:00, T made a space
    text = np.datetime_as_string(pd.DatetimeIndex(calendar).as_unit("ns").values, unit=unit)
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    with open(root / "calendars" / f"{parse_freq(freq).qlib}.txt", "a" if append else "w") as f:
        f.write("\n".join(text).replace("T", " ") + "\n" if len(text) or not append else "")


def write_pool(root: Path, pool: str, spans: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]], freq: str) -> None:
    """A pool file: a line per membership span (full timestamps for intraday bars, so that Qlib keeps the
    last day's bars)."""
    intraday = parse_freq(freq).intraday
    (root / "instruments").mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t{_stamp(a, intraday)}\t{_stamp(b, intraday)}" for s, ss in spans.items() for a, b in ss]
    (root / "instruments" / f"{pool}.txt").write_text("\n".join(lines) + "\n")


def write_series(root: Path, symbol: str, freq: str, first: int, fields: dict[str, np.ndarray]) -> None:
    """One symbol's fields from calendar index `first` on (NaN where it has no bar)."""
    d = root / "features" / symbol.lower()
    d.mkdir(parents=True, exist_ok=True)
    name = parse_freq(freq).qlib
    for field, values in fields.items():
        np.concatenate([[first], np.asarray(values, dtype=np.float64)]).astype("<f4").tofile(d / f"{field}.{name}.bin")


def write_bars(root: Path, symbol: str, freq: str, first: int, bars: np.ndarray, before=None) -> np.ndarray:
    """A symbol's (T, 6) bars from calendar index `first` on as Qlib's fields, computed from the bars as stored
    (float32), so that bars appended later (`before`: the stored bar before them) extend the fields exactly as
    writing them all at once would; returns the stored bars."""
    stored = np.asarray(bars, dtype=np.float32)
    d = os.path.join(root, "features", symbol.lower())  # strings: pathlib's joins cost as much as the writes
    os.makedirs(d, exist_ok=True)
    name = parse_freq(freq).qlib
    fields = qlib_fields(stored if before is None else np.vstack([np.asarray(before, np.float32)[None], stored]))
    out = np.empty((len(fields), len(stored) + 1), dtype="<f4")  # each field after its first index: one write a file
    out[:, 0] = first
    out[:6, 1:] = stored.T  # the bars' own columns, in one transposing copy
    for i, (field, values) in enumerate(fields.items()):
        if i >= 6:
            out[i, 1:] = values[0 if before is None else 1 :]
        with open(os.path.join(d, f"{field}.{name}.bin"), "wb" if before is None else "ab") as f:
            f.write(memoryview(out[i] if before is None else out[i, 1:]).cast("B"))
    return stored


def read_bars(root: Path, symbol: str, freq: str) -> tuple[int, np.ndarray]:
    """A symbol's first calendar index and its (T, 6) float32 bars, as `write_bars` stored them."""
    d, name = root / "features" / symbol.lower(), parse_freq(freq).qlib
    cols = [np.fromfile(d / f"{field}.{name}.bin", dtype="<f4") for field in QLIB_FIELDS[:6]]
    return int(cols[0][0]), np.stack([c[1:] for c in cols], axis=1)


def carry_bars(old: Path, root: Path, symbol: str, freq: str, append: bool) -> None:
    """A symbol's field files from provider `old` into `root`: linked when they stay as they are, copied when
    bars will be appended (a link would extend the old provider's files too)."""
    src, dst, name = old / "features" / symbol.lower(), root / "features" / symbol.lower(), parse_freq(freq).qlib
    dst.mkdir(parents=True, exist_ok=True)
    for field in QLIB_FIELDS:
        a, b = src / f"{field}.{name}.bin", dst / f"{field}.{name}.bin"
        if append:
            shutil.copyfile(a, b)
            continue
        try:
            os.link(a, b)
        except OSError:  # a file system without hard links
            shutil.copyfile(a, b)


def write_meta(root: Path, meta: dict) -> None:
    (root / PROVIDER_META).write_text(json_text(meta))


def qlib_fields(bars: np.ndarray) -> dict[str, np.ndarray]:
    """The fields Qlib's exchange reads, from (T, 6) bars in FEATURES order: prices as given ($factor 1: the
    prices are taken as already adjusted), volume, amount, vwap and the close-to-close change (these two in
    float64 whatever the bars' type, so that float32 bars give what their float64 copy gives)."""
    open_, high, low, close, volume, amount = (bars[:, i] for i in range(6))
    wide = close.astype(np.float64)
    traded = volume > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        change = wide / np.concatenate([[np.nan], wide[:-1]]) - 1
        if traded.all():  # the usual series: no bar without volume, whose vwap is the mean price; a quotient of
            vwap = amount / volume  # float32s is that of their float64s rounded (53 >= 2 x 24 + 2 bits: exact)
        else:
            o, h, lo, c, v, a = (x.astype(np.float64) for x in (open_, high, low, close, volume, amount))
            vwap = np.where(traded, a / np.where(traded, v, 1), mean_price(o, h, lo, c))
    finite = np.isfinite(close)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "amount": amount,
        "vwap": vwap,
        "factor": np.ones(len(close)) if finite.all() else np.where(finite, 1.0, np.nan),
        "change": change,
    }


def continue_calendar(calendar: pd.DatetimeIndex, n: int, meta: dict) -> pd.DatetimeIndex:
    """The n bars after a provider's calendar: on its market calendar where kronos wrote it (the next
    session's first bar after a close, none in a lunch break, crypto around the clock), else on the sessions
    its calendar shows."""
    return future_timestamps(calendar, n, meta.get("calendar"), meta.get("bar_label", "auto"))
