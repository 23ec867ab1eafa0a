"""Point-forecast accuracy in price-return units, against the last-close (random walk) forecast of no change:
the one home of MAE, RMSE, MASE and directional accuracy for the backtest report and `kronos evaluate`."""

from __future__ import annotations

import numpy as np

from kronos_cli.metrics.probabilistic import wilson_interval


def return_accuracy(forecast: np.ndarray, realised: np.ndarray) -> dict[str, float]:
    """Forecast returns (N, P) on the last close against realised ones, over the steps whose future is known.

    MASE is the MAE over the last-close forecast's MAE on the same steps (below 1 beats the random walk);
    direction is the share of steps, among those where both the forecast and the outcome moved, whose sign the
    forecast got right, with a Wilson 95% interval.
    """
    known = np.isfinite(realised) & np.isfinite(forecast)
    err = (forecast - realised)[known]
    rw = np.abs(realised[known])
    f, r = forecast[known], realised[known]
    moved = (f != 0) & (r != 0)
    hits, n_moved = int((np.sign(f[moved]) == np.sign(r[moved])).sum()), int(moved.sum())
    lo, hi = wilson_interval(hits, n_moved)
    return {
        "windows": int(known.any(axis=1).sum()),
        "MAE": float(np.abs(err).mean()) if err.size else float("nan"),
        "RMSE": float(np.sqrt((err**2).mean())) if err.size else float("nan"),
        "MAE_last_close": float(rw.mean()) if rw.size else float("nan"),
        "MASE": float(np.abs(err).mean() / rw.mean()) if rw.size and rw.mean() > 0 else float("nan"),
        "direction": hits / n_moved if n_moved else float("nan"),
        "direction_lo": lo,
        "direction_hi": hi,
    }
