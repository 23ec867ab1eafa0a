"""Portfolio statistics of daily returns, with Qlib's conventions.

Daily returns are annualised with 238 trading days (Qlib's convention) and accumulate by summing, as Qlib's
risk analysis does; both are stated in every report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ANNUAL_DAYS = 238
ACCUMULATION = "sum"


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
