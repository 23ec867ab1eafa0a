"""Point-forecast accuracy in price-return units, against the last-close (random walk) forecast of no change."""

from __future__ import annotations

import numpy as np


def return_accuracy(forecast: np.ndarray, realised: np.ndarray) -> dict[str, float]:
    """Forecast returns (N, P) on the last close against realised ones, over the steps whose future is known.

    MASE is the MAE over the last-close forecast's MAE (below 1 beats the random walk); the direction is that of
    the return at the horizon's last bar.
    """
    known = np.isfinite(realised) & np.isfinite(forecast)
    err = (forecast - realised)[known]
    rw = np.abs(realised[known])
    last = known[:, -1]
    f_end, r_end = forecast[last, -1], realised[last, -1]
    moved = r_end != 0
    n = int(known.any(axis=1).sum())
    return {
        "windows": n,
        "MAE": float(np.abs(err).mean()) if err.size else float("nan"),
        "RMSE": float(np.sqrt((err**2).mean())) if err.size else float("nan"),
        "MAE_last_close": float(rw.mean()) if rw.size else float("nan"),
        "MASE": float(np.abs(err).mean() / rw.mean()) if rw.size and rw.mean() > 0 else float("nan"),
        "directional_accuracy": float((np.sign(f_end[moved]) == np.sign(r_end[moved])).mean())
        if moved.any()
        else float("nan"),
    }
