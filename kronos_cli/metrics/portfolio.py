"""Portfolio statistics of per-bar returns, compounded (the default) or summed, with every convention stated.

Compounded (geometric), as a quant reads a track record: the cumulative return is prod(1 + r) - 1 and the
annualised return (1 + cumulative) ^ (bars a year / bars) - 1, the rate that compounds to the same growth in a
year; the drawdown is measured on the wealth curve. Summed (arithmetic), as Qlib's `risk_analysis` does: the
cumulative return is sum(r), the annualised return mean(r) x bars a year, the drawdown on the summed curve. In
both, volatility is std(r) x sqrt(bars a year) and the information ratio mean(r) / std(r) x sqrt(bars a year)
(no risk-free rate). A constant 1% a bar over N bars is 1.01^N - 1 cumulative and 1.01^(bars a year) - 1 a year
compounded, and 0.01 N and 0.01 x bars a year summed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ANNUAL_DAYS = 238  # Qlib's trading days a year for A-shares
FLAT = 1e-12  # a standard deviation of bar returns below this is rounding noise: no ratio is defined
COMPOUND, SUM = "compound", "sum"
ACCUMULATIONS = {
    COMPOUND: "compounded: cumulative = prod(1 + r) - 1, annualised = (1 + cumulative)^(bars a year / bars) - 1, "
    "max drawdown on the compounded wealth curve",
    SUM: "summed (Qlib's convention): cumulative = sum(r), annualised = mean(r) x bars a year, max drawdown on "
    "the summed curve",
}


def growth(returns: pd.Series, accumulation: str = COMPOUND) -> pd.Series:
    """The cumulative return after each bar: compounded (prod(1 + r) - 1) or summed."""
    return (1 + returns).cumprod() - 1 if accumulation == COMPOUND else returns.cumsum()


def annualised(cumulative: float, mean: float, bars: int, periods: float, accumulation: str = COMPOUND) -> float:
    """The annual rate of a cumulative return over `bars` bars (`periods` bars a year): compounded, or the mean
    bar return times the bars a year; -100% once compounded wealth is gone."""
    if accumulation == SUM:
        return float(mean * periods)
    if cumulative <= -1:
        return -1.0
    return float(np.expm1(np.log1p(cumulative) * periods / bars))


def max_drawdown(returns: pd.Series, accumulation: str = COMPOUND) -> float:
    """The deepest fall from a peak, the start counted as one: of wealth (compounded, a fraction of the peak) or of
    the summed curve (in return units)."""
    curve = np.r_[0.0, growth(returns, accumulation).to_numpy()]
    if accumulation == COMPOUND:
        wealth = 1 + curve
        return float((wealth / np.maximum.accumulate(wealth) - 1).min())
    return float((curve - np.maximum.accumulate(curve)).min())


def portfolio_stats(
    returns: pd.Series, turnover: pd.Series | None = None, periods: float = ANNUAL_DAYS, accumulation: str = COMPOUND
) -> dict[str, float]:
    """Cumulative and annualised return, volatility, information ratio, max drawdown, win rate, the bars counted
    and the mean turnover of per-bar returns, `periods` bars a year, accumulated by `accumulation`."""
    r = returns.dropna()
    if r.empty:
        return {}
    total = float(growth(r, accumulation).iloc[-1])
    std = r.std()
    out = {
        "total_return": total,
        "annualized_return": annualised(total, float(r.mean()), len(r), periods, accumulation),
        "volatility": float(std * np.sqrt(periods)),
        "information_ratio": float(r.mean() / std * np.sqrt(periods)) if std > FLAT else float("nan"),
        "max_drawdown": max_drawdown(r, accumulation),
        "win_rate": float((r > 0).mean()),
        "bars": int(len(r)),
    }
    if turnover is not None:
        out["turnover"] = float(turnover.mean())
    return out
