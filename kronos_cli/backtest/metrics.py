"""Signal quality (IC family), forecast accuracy, and portfolio statistics with Qlib's conventions.

Daily returns are annualised with 238 trading days (Qlib's convention) and accumulate by summing, as Qlib's
risk analysis does; both are stated in every report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ANNUAL_DAYS = 238
ACCUMULATION = "sum"


def ic_table(signal: pd.Series, realised: pd.Series) -> dict[str, float]:
    """IC and Rank IC per day (cross-section), their means and IRs (mean / std)."""
    df = pd.concat([signal.rename("s"), realised.rename("r")], axis=1, join="inner").dropna()
    by_day = df.groupby(level="datetime")
    ic = by_day.apply(lambda g: g["s"].corr(g["r"]) if len(g) > 2 else np.nan).dropna()
    ric = by_day.apply(lambda g: g["s"].rank().corr(g["r"].rank()) if len(g) > 2 else np.nan).dropna()

    def ir(x: pd.Series) -> float:
        return float(x.mean() / x.std()) if len(x) > 1 and x.std() > 0 else float("nan")

    return {
        "IC": float(ic.mean()) if len(ic) else float("nan"),
        "ICIR": ir(ic),
        "Rank IC": float(ric.mean()) if len(ric) else float("nan"),
        "Rank ICIR": ir(ric),
        "days": int(len(ic)),
    }


def accuracy(forecast: np.ndarray, realised: np.ndarray, last: np.ndarray) -> dict[str, float]:
    """Forecast close against realised close (normalised units), per bar of the horizon, pooled."""
    f, r = forecast.ravel().astype(np.float64), realised.ravel().astype(np.float64)
    err = f - r
    ss_res, ss_tot = float((err**2).sum()), float(((r - r.mean()) ** 2).sum())
    direction = np.sign(forecast[:, -1] - last) == np.sign(realised[:, -1] - last)
    return {
        "MAE": float(np.abs(err).mean()),
        "MSE": float((err**2).mean()),
        "R2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "directional_accuracy": float(direction.mean()),
        "correlation": float(np.corrcoef(f, r)[0, 1]) if f.std() > 0 and r.std() > 0 else float("nan"),
    }


def portfolio_stats(daily: pd.Series, turnover: pd.Series | None = None) -> dict[str, float]:
    """Annualised return (mean x 238), volatility (std x sqrt 238), IR, max drawdown of the summed curve,
    win rate, mean turnover."""
    daily = daily.dropna()
    if daily.empty:
        return {}
    curve = daily.cumsum()
    std = daily.std()
    out = {
        "annualized_return": float(daily.mean() * ANNUAL_DAYS),
        "volatility": float(std * np.sqrt(ANNUAL_DAYS)),
        "information_ratio": float(daily.mean() / std * np.sqrt(ANNUAL_DAYS)) if std > 0 else float("nan"),
        "max_drawdown": float((curve - curve.cummax()).min()),
        "win_rate": float((daily > 0).mean()),
        "total_return": float(curve.iloc[-1]),
        "days": int(len(daily)),
    }
    if turnover is not None:
        out["turnover"] = float(turnover.mean())
    return out
