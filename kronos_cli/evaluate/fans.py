"""The windows a report draws as fan charts, chosen by rule: for the first model, the symbols with the lowest, the
median and the highest mean absolute error over their labelled windows, each shown at its last window whose whole
future is known (history, the forecast's quantiles and what happened, in prices)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos_cli.core.io import json_floats
from kronos_cli.data.store import DatasetArrays
from kronos_cli.market.bars import FEATURES
from kronos_cli.runtime.split_forecasts import SplitForecasts

FAN_QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
HISTORY = 40  # bars of history before the forecast
CLOSE = FEATURES.index("close")


def _stamps(ns: np.ndarray) -> list[str]:
    t = pd.DatetimeIndex(pd.to_datetime(ns))
    daily = bool((t == t.normalize()).all())
    return [s.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M") for s in t]


def _example(arrays: DatasetArrays, sf: SplitForecasts, i: int, lookback: int) -> dict[str, Any]:
    """Window `i`: its history (up to HISTORY bars of the lookback), quantiles of its forecast and outcome."""
    row, back = int(sf.origins.rows[i]), min(HISTORY, lookback)
    rows = np.arange(row - back + 1, row + 1)
    paths = sf.forecasts.subset(np.array([i])).price_paths()[0]  # (S, P)
    pos = int(arrays.calpos[row])
    future = arrays.calendar[pos + 1 : pos + 1 + paths.shape[1]]
    last = float(sf.forecasts.last_close[i])
    return {
        "symbol": str(sf.names[i]),
        "origin": _stamps(np.array([sf.origin_ns[i]]))[0],
        "history": _stamps(arrays.calendar[arrays.calpos[rows]]),
        "close": json_floats(np.asarray(arrays.features[rows, CLOSE])),
        "future": _stamps(future),
        "quantiles": {str(q): np.quantile(paths, q, axis=0).round(6).tolist() for q in FAN_QUANTILES},
        "actual": (last * (1 + sf.real.path[i])).round(6).tolist(),
    }


def fan_examples(arrays: DatasetArrays, sf: SplitForecasts, model: str, lookback: int) -> list[dict[str, Any]]:
    """The best, median and worst symbol's last fully known window, for `model`'s forecasts `sf`."""
    whole = np.isfinite(sf.real.path).all(axis=1)
    if not whole.any():
        return []
    err = np.abs(sf.forecasts.return_paths().mean(axis=1) - sf.real.path).mean(axis=1)
    by_symbol = pd.Series(err[whole], index=sf.names[whole]).groupby(level=0).mean().sort_values(kind="stable")
    picks = {"lowest": by_symbol.index[0], "median": by_symbol.index[len(by_symbol) // 2]}
    picks["highest"] = by_symbol.index[-1]
    out, seen = [], set()
    for rule, symbol in picks.items():
        if symbol in seen:  # one or two symbols: each drawn once
            continue
        seen.add(symbol)
        i = int(np.flatnonzero(whole & (sf.names == symbol))[-1])
        example = _example(arrays, sf, i, lookback)
        out.append({**example, "rule": rule, "model": model, "mae": float(by_symbol[symbol])})
    return out
