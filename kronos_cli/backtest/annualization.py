"""Bars a year, which annualise a backtest's per-bar returns: the market's trading days a year times the bars of a
trading day on the calendar, or `backtest.bars_per_year`; stated in words in every report.

A trading day's bars are counted on the calendar by the week, not by the date: the median full week's bars over
the market's trading days a week (5, or 7 around the clock). A forex session runs from 17:00 to 17:00 New York
time, so its dates hold a stub on Sunday and a short Friday while every week holds 120 hourly bars: 24 a
trading day, x 260 = 6,240 a year; 24/7 hourly crypto is 168 / 7 x 365 = 8,760; A-share days 238; 5-minute
A-share bars 48 x 238. Weeks cut by a holiday do not move a median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.backtest.markets import MarketRules
from kronos_cli.market.sessions import NS_PER_DAY, BarFreq, bars_per_day

MONDAY_SHIFT = 3  # 1970-01-01, day 0 of the epoch, was a Thursday: (days + 3) // 7 counts weeks from Mondays


@dataclass(frozen=True)
class BarsAYear:
    bars: float  # bars a year
    per_day: float  # bars a trading day, on the calendar
    words: str  # how, for the report: "238 trading days a year", "8,760 bars a year (365 trading days x ...)"


def bars_a_trading_day(calendar: pd.DatetimeIndex, days_per_week: int) -> float:
    """The median full week's bars over `days_per_week` (the first and last weeks may be cut by the calendar's
    ends and are left out); the median bars a date when the calendar holds no full week."""
    ns = calendar.as_unit("ns").asi8
    weeks, counts = np.unique((ns // NS_PER_DAY + MONDAY_SHIFT) // 7, return_counts=True)
    if len(weeks) < 3:
        return bars_per_day(calendar)
    return float(np.median(counts[1:-1])) / days_per_week


def bars_a_year(rules: MarketRules, freq: BarFreq, calendar: pd.DatetimeIndex, override: float | None) -> BarsAYear:
    """The market's trading days a year x the calendar's bars a trading day, or the configured `override`."""
    per_day = bars_a_trading_day(calendar, rules.days_per_week)
    if override is not None:
        return BarsAYear(float(override), per_day, f"{override:,g} bars a year (backtest.bars_per_year)")
    days = rules.days_per_year
    if not freq.intraday and per_day == 1:
        return BarsAYear(float(days), 1.0, f"{days} trading days a year")
    bars = "1 bar" if per_day == 1 else f"{per_day:.4g} bars"
    total = days * per_day
    return BarsAYear(total, per_day, f"{total:,.6g} bars a year ({days} trading days x {bars} a day, {freq} bars)")
