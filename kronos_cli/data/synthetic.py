"""A synthetic A-share-like market written as a real Qlib provider directory (day frequency).

Prices follow a one-factor model: each stock's daily return is beta x the market's return plus an
idiosyncratic return with a little momentum, clipped to the +-10% price limit. The market also has
suspensions (no bars for some days), a late listing, a delisting, a benchmark index (SH000300, plus SH000906
and SH000852 for the larger pools) and pools csi300 (two thirds of the stocks), csi800, csi1000 and all.
Deterministic by seed. Files are written as Qlib's dump_bin does: `calendars/day.txt`, `instruments/<pool>.txt`
(`SYMBOL<TAB>start<TAB>end`), `features/<symbol lower>/<field>.day.bin` (little-endian float32, the first value
being the index of the series' first day in the calendar).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.errors import KronosError

log = logging.getLogger(__name__)

FIELDS = ("open", "close", "high", "low", "volume", "vwap", "factor", "change")
BENCHMARKS = {"csi300": "SH000300", "csi800": "SH000906", "csi1000": "SH000852"}
LIMIT = 0.10


@dataclass(frozen=True)
class MarketSpec:
    stocks: int = 60
    start: str = "2021-01-01"
    end: str = "2024-12-31"
    seed: int = 0


def _calendar(spec: MarketSpec, rng: np.random.Generator) -> pd.DatetimeIndex:
    days = pd.bdate_range(spec.start, spec.end)
    if len(days) < 60:
        raise KronosError(
            f"the synthetic market needs at least 60 trading days; {spec.start}..{spec.end} has {len(days)}"
        )
    holidays = rng.choice(len(days), size=len(days) // 40, replace=False)  # a few closed weekdays
    return days.delete(np.sort(holidays))


def _write_bin(path: Path, start_index: int, values: np.ndarray) -> None:
    np.concatenate([[start_index], values]).astype("<f4").tofile(path)


def _series_fields(close: np.ndarray, rng: np.random.Generator, base_volume: float) -> dict[str, np.ndarray]:
    n = len(close)
    prev = np.concatenate([[close[0]], close[:-1]])
    gap = np.clip(rng.normal(0, 0.004, n), -LIMIT / 2, LIMIT / 2)
    open_ = np.clip(prev * (1 + gap), prev * (1 - LIMIT), prev * (1 + LIMIT))
    spread = np.abs(rng.normal(0, 0.008, n))
    high = np.minimum(np.maximum(open_, close) * (1 + spread), prev * (1 + LIMIT))
    low = np.maximum(np.minimum(open_, close) * (1 - spread), prev * (1 - LIMIT))
    high, low = np.maximum(high, np.maximum(open_, close)), np.minimum(low, np.minimum(open_, close))
    volume = base_volume * np.exp(rng.normal(0, 0.35, n)) * (1 + 20 * np.abs(close / prev - 1))
    vwap = (open_ + high + low + close) / 4
    change = close / prev - 1
    change[0] = 0.0
    return {
        "open": open_,
        "close": close,
        "high": high,
        "low": low,
        "volume": volume,
        "vwap": vwap,
        "factor": np.ones(n),
        "change": change,
    }


def write_market(out: str | os.PathLike, spec: MarketSpec = MarketSpec(), force: bool = False) -> Path:
    """Write the provider directory atomically; returns its path."""
    target = Path(out).expanduser().resolve()
    if spec.stocks < 6:
        raise KronosError(f"--stocks must be at least 6, got {spec.stocks}")
    if target.exists() and any(target.iterdir()):
        if not force:
            raise KronosError(f"{target} exists and is not empty; pass --force to replace it")
    rng = np.random.default_rng(spec.seed)
    cal = _calendar(spec, rng)
    n = len(cal)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "calendars").mkdir()
        (tmp / "instruments").mkdir()
        (tmp / "calendars" / "day.txt").write_text("\n".join(d.strftime("%Y-%m-%d") for d in cal) + "\n")

        market = rng.normal(0.0003, 0.011, n)  # the market factor's daily return
        symbols = [f"SH{600000 + 3 * i}" if i % 2 == 0 else f"SZ{1 + 3 * i:06d}" for i in range(spec.stocks)]
        spans: dict[str, tuple[int, int]] = {}
        returns = np.zeros((spec.stocks, n))
        alive = np.zeros((spec.stocks, n), dtype=bool)
        for i, sym in enumerate(symbols):
            first, last = 0, n - 1
            if i == 1:  # a late listing, a third of the way in
                first = n // 3
            if i == 2:  # a delisting, two thirds of the way in
                last = 2 * n // 3
            beta = rng.uniform(0.6, 1.4)
            idio = rng.normal(0, 0.018, n)
            for t in range(1, n):  # a little momentum makes the series learnable
                idio[t] += 0.08 * idio[t - 1]
            r = np.clip(beta * market + idio, -LIMIT, LIMIT)
            if i % 7 == 3:  # limit-up days
                r[rng.choice(n, 3, replace=False)] = LIMIT
            valid = np.zeros(n, dtype=bool)
            valid[first : last + 1] = True
            if i % 5 == 0 and last - first > 100:  # a suspension of 5 to 20 days
                s = rng.integers(first + 30, last - 40)
                valid[s : s + rng.integers(5, 21)] = False
            close = 10 * rng.uniform(0.5, 5) * np.exp(np.cumsum(np.where(valid, np.log1p(r), 0.0)))
            fields = _series_fields(close, rng, rng.uniform(2e6, 2e7))
            sym_dir = tmp / "features" / sym.lower()
            sym_dir.mkdir(parents=True)
            for name in FIELDS:
                values = np.where(valid, fields[name], np.nan)[first : last + 1]
                _write_bin(sym_dir / f"{name}.day.bin", first, values)
            spans[sym] = (first, last)
            returns[i] = np.where(valid, r, 0.0)
            alive[i] = valid

        pools = {
            "all": symbols,
            "csi300": symbols[: max(3, 2 * spec.stocks // 3)],
            "csi800": symbols,
            "csi1000": symbols,
        }
        for pool, members in pools.items():
            lines = [f"{s}\t{cal[spans[s][0]]:%Y-%m-%d}\t{cal[spans[s][1]]:%Y-%m-%d}" for s in members]
            if pool == "all":  # the benchmark indices are instruments too, as in Qlib's cn_data
                lines += [f"{b}\t{cal[0]:%Y-%m-%d}\t{cal[-1]:%Y-%m-%d}" for b in BENCHMARKS.values()]
            (tmp / "instruments" / f"{pool}.txt").write_text("\n".join(lines) + "\n")
        for pool, bench in BENCHMARKS.items():
            idx = [symbols.index(s) for s in pools[pool]]
            weights = alive[idx].astype(float)
            index_ret = (returns[idx] * weights).sum(0) / np.maximum(weights.sum(0), 1)
            level = 1000 * np.exp(np.cumsum(np.log1p(index_ret)))
            fields = _series_fields(level, rng, 1e9)
            bench_dir = tmp / "features" / bench.lower()
            bench_dir.mkdir(parents=True)
            for name in FIELDS:
                _write_bin(bench_dir / f"{name}.day.bin", 0, fields[name])

        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote a synthetic market of %d stocks over %d trading days to %s", spec.stocks, n, target)
    return target
