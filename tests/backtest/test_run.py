"""How a backtest report words its annualisation."""

from __future__ import annotations

from kronos_cli.backtest.run import _annualization


def test_daily_bars_are_trading_days_and_intraday_bars_are_counted_in_the_singular_or_plural():
    assert _annualization(238, 1, "day") == "238 trading days a year"
    assert _annualization(238, 48, "5min") == "11,424 bars a year (238 trading days x 48 bars a day, 5min bars)"
    assert _annualization(365, 1, "60min") == "365 bars a year (365 trading days x 1 bar a day, 60min bars)"
