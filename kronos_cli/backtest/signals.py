"""Signals per (date, instrument) from forecast paths: last, mean, max, min of the forecast close minus the
last observed close, in the window's normalised units as in the reference; optionally as price returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.backtest.forecasting import TestForecasts
from kronos_cli.bars import denormalise
from kronos_cli.errors import KronosError

SIGNALS = ("last", "mean", "max", "min")


def make_signals(fc: TestForecasts, symbols: list[str], names: list[str], returns: bool = False) -> pd.DataFrame:
    bad = sorted(set(names) - set(SIGNALS))
    if bad:
        raise KronosError(f"backtest.signals has unknown {bad}; choose from {', '.join(SIGNALS)}")
    mean_path = fc.paths.mean(axis=1)  # (N, P), averaged over sample paths
    stat = {
        "last": mean_path[:, -1],
        "mean": mean_path.mean(axis=1),
        "max": mean_path.max(axis=1),
        "min": mean_path.min(axis=1),
    }
    out = pd.DataFrame({"datetime": pd.to_datetime(fc.origin), "instrument": np.asarray(symbols)[fc.symbol]})
    for name in names:
        out[name] = stat[name] - fc.last_close
        if returns:  # de-normalise both ends with the window's lookback statistics
            level = denormalise(stat[name], fc.close_mean, fc.close_std)
            last = denormalise(fc.last_close, fc.close_mean, fc.close_std)
            out[f"{name}_ret"] = level / last - 1
    out = out.sort_values(["datetime", "instrument"]).drop_duplicates(["datetime", "instrument"], keep="last")
    return out.reset_index(drop=True)


def realised_returns(fc: TestForecasts, symbols: list[str]) -> pd.Series:
    """Realised close-to-close return over the predict horizon, per (datetime, instrument)."""
    last = denormalise(fc.last_close, fc.close_mean, fc.close_std)
    end = denormalise(fc.realised[:, -1], fc.close_mean, fc.close_std)
    idx = pd.MultiIndex.from_arrays(
        [pd.to_datetime(fc.origin), np.asarray(symbols)[fc.symbol]], names=["datetime", "instrument"]
    )
    s = pd.Series(end / last - 1, index=idx)
    return s[~s.index.duplicated(keep="last")].sort_index()
