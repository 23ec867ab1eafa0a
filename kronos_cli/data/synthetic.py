"""A synthetic A-share-like market written as a real Qlib provider directory (day frequency), with a planted,
documented predictable component so that "did the model learn anything?" has a known answer.

Each stock's log price is beta x the market factor's cumulative return plus a deviation x_t with stochastic
volatility (log-volatility follows an AR(1): volatility clusters):
- `signal="reversal"` (the default, k = `strength` = 0.3): x_t = (1 - k) x_{t-1} + e_t, so the expected return
  over the next P days is (1 - (1 - k)^P) x (-x_t): stocks stretched above their own recent path tend to come
  back;
- `signal="momentum"`: daily deviation returns follow an AR(1) with coefficient k;
- `signal="none"`: a pure martingale (k = 0): nothing is predictable, and any skill a backtest reports is a leak.
The market factor (daily volatility `market_vol`, 0.2% by default) is what no single series can predict from its
own past: Kronos forecasts one series at a time, so the default keeps it small enough for the planted part to
show in a forecast's error as well as in the cross-sectional IC.
Daily returns are clipped to the +-10% price limit. The market also has suspensions, a late listing, a
delisting, pool membership that changes over time (a stock joins csi300 halfway, one leaves, one leaves and
rejoins), benchmark indices (SH000300, SH000906, SH000852; equal-weighted over their members day by day) and the
pools csi300, csi800, csi1000 and all.

`kronos_market.json` at the provider's root records the spec and the ground truth: the IC and Rank IC of the
oracle signal (the planted conditional expectation) against realised close-to-close returns over 1, 5 and 10
days, and the MASE of that expectation (its mean absolute error over the last close's: the best any forecaster
can reach). Files are written as Qlib's dump_bin does: `calendars/day.txt`, `instruments/<pool>.txt`
(`SYMBOL<TAB>start<TAB>end`, one line per membership span), `features/<symbol lower>/<field>.day.bin`
(little-endian float32, the first value being the index of the series' first day in the calendar).
Deterministic by seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir, json_text
from kronos_cli.data.provider import write_calendar, write_pool, write_series

log = logging.getLogger(__name__)

FIELDS = ("open", "close", "high", "low", "volume", "vwap", "factor", "change")
BENCHMARKS = {"csi300": "SH000300", "csi800": "SH000906", "csi1000": "SH000852"}
SIGNALS = ("reversal", "momentum", "none")
LIMIT = 0.10
METADATA = "kronos_market.json"
ORACLE_HORIZONS = (1, 5, 10)


@dataclass(frozen=True)
class MarketSpec:
    stocks: int = 60
    start: str = "2021-01-01"
    end: str = "2024-12-31"
    seed: int = 0
    signal: str = "reversal"
    strength: float = 0.3  # k above: the share of the deviation that reverts each day (or the AR coefficient)
    market_vol: float = 0.002  # the market factor's daily volatility (no series can predict it from its own past)


@dataclass
class _Stock:
    symbol: str
    first: int  # calendar index of the first and last listed day
    last: int
    valid: np.ndarray  # (n,) bool: a bar that day
    returns: np.ndarray  # (n,) daily close-to-close return (0 where no bar)
    oracle: np.ndarray  # (n,) the planted signal known at each day's close (its sign predicts returns)
    fields: dict[str, np.ndarray]


def _calendar(spec: MarketSpec, rng: np.random.Generator) -> pd.DatetimeIndex:
    days = pd.bdate_range(spec.start, spec.end)
    if len(days) < 60:
        raise KronosError(
            f"the synthetic market needs at least 60 trading days; {spec.start}..{spec.end} has {len(days)}"
        )
    holidays = rng.choice(len(days), size=len(days) // 40, replace=False)  # a few closed weekdays
    return days.delete(np.sort(holidays))


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
    change = close / prev - 1
    change[0] = 0.0
    return {
        "open": open_,
        "close": close,
        "high": high,
        "low": low,
        "volume": volume,
        "vwap": (open_ + high + low + close) / 4,
        "factor": np.ones(n),
        "change": change,
    }


def _deviation(spec: MarketSpec, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily idiosyncratic returns with the planted component and clustered volatility, and the oracle signal
    (the planted part's sign-correct predictor) known at each close."""
    log_vol = np.zeros(n)
    for t in range(1, n):
        log_vol[t] = 0.95 * log_vol[t - 1] + 0.2 * rng.normal()
    shocks = 0.018 * np.exp(log_vol - 0.4) * rng.normal(size=n)
    k = spec.strength if spec.signal != "none" else 0.0
    x, returns, oracle = np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(1, n):
        if spec.signal == "momentum":
            returns[t] = k * returns[t - 1] + shocks[t]
            oracle[t] = returns[t]
        else:  # reversal (or none, k = 0): an AR(1) deviation of the log price
            x[t] = (1 - k) * x[t - 1] + shocks[t]
            returns[t] = x[t] - x[t - 1]
            oracle[t] = -x[t]
    return returns, oracle


def _stock(i: int, spec: MarketSpec, rng: np.random.Generator, market: np.ndarray) -> _Stock:
    n = len(market)
    symbol = f"SH{600000 + 3 * i}" if i % 2 == 0 else f"SZ{1 + 3 * i:06d}"
    first = n // 3 if i == 1 else 0  # a late listing, a third of the way in
    last = 2 * n // 3 if i == 2 else n - 1  # a delisting, two thirds of the way in
    beta = rng.uniform(0.6, 1.4)
    idio, oracle = _deviation(spec, rng, n)
    r = np.clip(beta * market + idio, -LIMIT, LIMIT)
    if i % 7 == 3:  # limit-up days
        r[rng.choice(n, 3, replace=False)] = LIMIT
    valid = np.zeros(n, dtype=bool)
    valid[first : last + 1] = True
    if i % 5 == 0 and last - first > 100:  # a suspension of 5 to 20 days
        s = rng.integers(first + 30, last - 40)
        valid[s : s + rng.integers(5, 21)] = False
    close = 10 * rng.uniform(0.5, 5) * np.exp(np.cumsum(np.where(valid, np.log1p(r), 0.0)))
    return _Stock(
        symbol, first, last, valid, np.where(valid, r, 0.0), oracle, _series_fields(close, rng, rng.uniform(2e6, 2e7))
    )


def _membership(stocks: list[_Stock], n: int) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Pool -> symbol -> membership spans (calendar indices). csi300 is two thirds of the stocks and changes
    over time: stock 4 joins halfway (listed from the start), stock 6 leaves at three quarters, stock 8 leaves
    at a third and rejoins at two thirds."""
    listed = {s.symbol: [(s.first, s.last)] for s in stocks}
    csi300 = {s.symbol: [(s.first, s.last)] for s in stocks[: max(3, 2 * len(stocks) // 3)]}
    changes = {4: [(n // 2, n - 1)], 6: [(0, 3 * n // 4)], 8: [(0, n // 3), (2 * n // 3, n - 1)]}
    for i, spans in changes.items():
        if i < len(stocks) and stocks[i].symbol in csi300:
            csi300[stocks[i].symbol] = spans
    return {"all": listed, "csi300": csi300, "csi800": dict(listed), "csi1000": dict(listed)}


def _member_matrix(stocks: list[_Stock], spans: dict[str, list[tuple[int, int]]], n: int) -> np.ndarray:
    m = np.zeros((len(stocks), n), dtype=bool)
    for i, s in enumerate(stocks):
        for a, b in spans.get(s.symbol, []):
            m[i, a : b + 1] = True
    return m & np.stack([s.valid for s in stocks])


def _nan_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Pearson correlation of (stocks, days) arrays, NaN entries left out."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(0) / n, b.sum(0) / n
        da, db = np.where(ok, a - ma, 0.0), np.where(ok, b - mb, 0.0)
        return (da * db).sum(0) / np.sqrt((da**2).sum(0) * (db**2).sum(0))


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.DataFrame(x).rank(axis=0).to_numpy()


def _expected_log_return(signal: str, k: float, oracle: np.ndarray, h: int) -> np.ndarray:
    """The planted part of the next h days' log return, given the oracle signal (the market factor left out)."""
    if signal == "momentum":
        return k * (1 - k**h) / (1 - k) * oracle
    return (1 - (1 - k) ** h) * oracle


def _oracle_scores(stocks: list[_Stock], member: np.ndarray, spec: MarketSpec) -> dict[str, dict[str, float]]:
    """Per horizon: the mean daily cross-sectional IC and Rank IC of the oracle signal against close-to-close
    returns, and the MASE of the planted conditional expectation (its MAE over the last close's)."""
    if spec.signal == "none":  # nothing is predictable by construction
        return {f"{h}d": {"IC": 0.0, "Rank IC": 0.0, "MASE": 1.0} for h in ORACLE_HORIZONS}
    log_close = np.stack([np.log(s.fields["close"]) for s in stocks])
    oracle = np.stack([s.oracle for s in stocks])
    out = {}
    for h in ORACLE_HORIZONS:
        fwd = np.full_like(log_close, np.nan)
        fwd[:, :-h] = np.exp(log_close[:, h:] - log_close[:, :-h]) - 1
        ok = member & np.isfinite(fwd) & np.roll(member, -h, axis=1)
        sig, ret = np.where(ok, oracle, np.nan), np.where(ok, fwd, np.nan)
        days = ok.sum(0) >= 10
        ic, ric = _nan_corr(sig, ret)[days], _nan_corr(_rank(sig), _rank(ret))[days]
        expected = np.exp(_expected_log_return(spec.signal, spec.strength, oracle, h)) - 1
        mase = np.abs(expected - fwd)[ok].mean() / np.abs(fwd)[ok].mean()
        out[f"{h}d"] = {
            "IC": float(np.nanmean(ic)) if np.isfinite(ic).any() else float("nan"),  # too few names: unknown
            "Rank IC": float(np.nanmean(ric)) if np.isfinite(ric).any() else float("nan"),
            "MASE": float(mase),
            "days": int(days.sum()),
        }
    return out


def _write_pools(root: Path, cal: pd.DatetimeIndex, membership: dict[str, dict[str, list[tuple[int, int]]]]) -> None:
    for pool, members in membership.items():
        spans = {s: [(cal[a], cal[b]) for a, b in ss] for s, ss in members.items()}
        if pool == "all":  # the benchmark indices are instruments too, as in Qlib's cn_data
            spans.update({b: [(cal[0], cal[-1])] for b in BENCHMARKS.values()})
        write_pool(root, pool, spans, "day")


def _write_features(
    root: Path, symbol: str, first: int, fields: dict[str, np.ndarray], valid: np.ndarray, last: int
) -> None:
    values = {name: np.where(valid, fields[name], np.nan)[first : last + 1] for name in FIELDS}
    write_series(root, symbol, "day", first, values)


def write_market(out: str | os.PathLike, spec: MarketSpec = MarketSpec(), force: bool = False) -> Path:
    """Write the provider directory atomically; returns its path."""
    target = Path(out).expanduser().resolve()
    if spec.stocks < 6:
        raise KronosError(f"stocks must be at least 6, got {spec.stocks}", setting="stocks")
    if spec.signal not in SIGNALS:
        raise KronosError(f"signal must be one of {', '.join(SIGNALS)}, got {spec.signal!r}", setting="signal")
    if not 0 <= spec.strength < 1:
        raise KronosError(f"strength must be in [0, 1), got {spec.strength}", setting="strength")
    if not 0 <= spec.market_vol < LIMIT:
        raise KronosError(f"market_vol must be in [0, {LIMIT}), got {spec.market_vol}", setting="market_vol")
    if target.exists() and any(target.iterdir()) and not force:
        raise KronosError(f"{target} exists and is not empty; pass force to replace it", setting="force")
    rng = np.random.default_rng(spec.seed)
    cal = _calendar(spec, rng)
    n = len(cal)
    market = rng.normal(0.0003, spec.market_vol, n)  # the market factor's daily return
    stocks = [_stock(i, spec, rng, market) for i in range(spec.stocks)]
    membership = _membership(stocks, n)
    with atomic_dir(target) as tmp:
        write_calendar(tmp, "day", cal)
        _write_pools(tmp, cal, membership)
        for s in stocks:
            _write_features(tmp, s.symbol, s.first, s.fields, s.valid, s.last)
        for pool, bench in BENCHMARKS.items():
            member = _member_matrix(stocks, membership[pool], n)
            index_ret = (np.stack([s.returns for s in stocks]) * member).sum(0) / np.maximum(member.sum(0), 1)
            level = 1000 * np.exp(np.cumsum(np.log1p(index_ret)))
            _write_features(tmp, bench, 0, _series_fields(level, rng, 1e9), np.ones(n, dtype=bool), n - 1)
        truth = _oracle_scores(stocks, _member_matrix(stocks, membership["csi300"], n), spec)
        meta = {
            "spec": asdict(spec),
            "pool_for_truth": "csi300",
            "oracle": truth,
            "oracle_definition": "reversal: -x_t (the log-price deviation); momentum: the last deviation return; "
            "none: no predictable part (IC 0). IC and Rank IC: mean daily cross-sectional correlation with the "
            "close-to-close return h days ahead; MASE: the planted expected return's mean absolute error over "
            "the last close's (no change), the best a forecaster can do apart from the market factor",
        }
        (tmp / METADATA).write_text(json_text(meta))
    log.info(
        "wrote a synthetic market of %d stocks over %d trading days to %s (signal %s, strength %g)",
        spec.stocks,
        n,
        target,
        spec.signal,
        spec.strength,
    )
    return target
