"""Trading signals from forecast paths: last, mean, max or min of the mean forecast close minus the last close.

In the model's units (the window's lookback z-score), as the reference computes them; `<name>_ret` gives the
same statistic as a price return on the last close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.windows import WindowForecasts
from kronos_cli.market.bars import EPS

SIGNALS = ("last", "mean", "max", "min")


def check_signals(names: list[str]) -> None:
    bad = sorted(set(names) - set(SIGNALS))
    if bad:
        raise KronosError(f"backtest.signals has unknown {bad}; choose from {', '.join(SIGNALS)}")
    if not names:
        raise KronosError(f"backtest.signals is empty; choose from {', '.join(SIGNALS)}")


def signal_table(
    fc: WindowForecasts, dates: np.ndarray, instruments: np.ndarray, names: list[str], returns: bool = False
) -> pd.DataFrame:
    """One row per window, in the windows' order: datetime, instrument, a column per signal (and `<name>_ret`
    with `returns`)."""
    check_signals(names)
    mean_path = fc.paths.mean(axis=1)  # (N, P), averaged over sample paths
    stat = {
        "last": mean_path[:, -1],
        "mean": mean_path.mean(axis=1),
        "max": mean_path.max(axis=1),
        "min": mean_path.min(axis=1),
    }
    out = pd.DataFrame({"datetime": pd.to_datetime(dates), "instrument": np.asarray(instruments)})
    for name in names:
        out[name] = stat[name] - fc.last
        if returns:
            out[f"{name}_ret"] = (stat[name] * (fc.std + EPS) + fc.mean) / fc.last_close - 1
    return out
