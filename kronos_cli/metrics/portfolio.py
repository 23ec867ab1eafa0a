"""Portfolio statistics of per-bar returns, with Qlib's conventions.

Returns are annualised with the market's bars per year (238 trading days for A-shares, Qlib's convention; the
market's days x bars per day for intraday bars) and accumulate by summing, as Qlib's risk analysis does; both
are stated in every report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ANNUAL_DAYS = 238
ACCUMULATION = "sum"


def portfolio_stats(
    daily: pd.Series, turnover: pd.Series | None = None, periods: float = ANNUAL_DAYS
) -> dict[str, float]:
    """Annualised return (mean x periods a year), volatility (std x sqrt periods), IR, max drawdown of the
    summed curve, win rate, mean turnover, for returns per bar (`periods` bars a year, daily: 238)."""
    daily = daily.dropna()
    if daily.empty:
        return {}
    curve = daily.cumsum()
    std = daily.std()
    out = {
        "annualized_return": float(daily.mean() * periods),
        "volatility": float(std * np.sqrt(periods)),
        "information_ratio": float(daily.mean() / std * np.sqrt(periods)) if std > 0 else float("nan"),
        "max_drawdown": float((curve - curve.cummax()).min()),
        "win_rate": float((daily > 0).mean()),
        "total_return": float(curve.iloc[-1]),
        "days": int(len(daily)),
    }
    if turnover is not None:
        out["turnover"] = float(turnover.mean())
    return out
