"""Forecasts that need no model, in the same units as the models' (the return of the close h bars ahead on the
last close), computed from each window's own lookback:

- last close: the random walk, no change (its MAE is what MASE divides by);
- drift: the lookback's mean daily return, compounded over the horizon;
- historical volatility (normal): a random walk whose h-bar return is normal with mean 0 and the standard
  deviation of the last 20 daily returns times sqrt(h): a fair opponent for the probabilistic scores;
- historical volatility (bootstrap): random-walk paths whose daily returns are drawn from the last 20.
"""

from __future__ import annotations

import numpy as np

from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins
from kronos_cli.market.bars import FEATURES
from kronos_cli.metrics.probabilistic import Ensemble, Normal, Point, Predictive

CLOSE = FEATURES.index("close")
VOL_BARS = 20
BOOTSTRAP_PATHS = 100


def lookback_returns(arrays: DatasetArrays, origins: Origins, lookback: int) -> np.ndarray:
    """Daily close-to-close returns (N, lookback - 1) of each window's lookback."""
    idx = origins.rows[:, None] + np.arange(1 - lookback, 1)
    close = np.asarray(arrays.features[idx, CLOSE], dtype=np.float64)
    return close[:, 1:] / close[:, :-1] - 1


def baselines(returns: np.ndarray, predict: int, seed: int = 0) -> dict[str, Predictive]:
    n = len(returns)
    h = np.arange(1, predict + 1)
    recent = returns[:, -VOL_BARS:]
    sigma = recent.std(axis=1, ddof=1)[:, None] * np.sqrt(h)
    rng = np.random.default_rng(seed)
    draws = recent[np.arange(n)[:, None, None], rng.integers(0, recent.shape[1], (n, BOOTSTRAP_PATHS, predict))]
    return {
        "last close": Point(np.zeros((n, predict))),
        "drift": Point((1 + returns.mean(axis=1))[:, None] ** h - 1),
        "hist. vol (normal)": Normal(np.zeros((n, predict)), np.maximum(sigma, 1e-12)),
        "hist. vol (bootstrap)": Ensemble(np.cumprod(1 + draws, axis=2) - 1),
    }
