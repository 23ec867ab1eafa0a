"""Bars a year from the market's trading days and the calendar's bars a trading day, counted by the week, and the
words a report states them in."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos_cli.backtest.annualization import bars_a_trading_day, bars_a_year
from kronos_cli.backtest.markets import MARKETS
from kronos_cli.market.sessions import ForexGrid, parse_freq, session_grid


def _grid(calendar: str, freq: str, label: str = "start") -> pd.DatetimeIndex:
    return session_grid(calendar, parse_freq(freq), label).bars(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))


@pytest.mark.parametrize(
    "calendar,freq,market,bars,words",
    [
        ("XSHG", "day", "cn", 238, "238 trading days a year"),
        ("XNYS", "day", "us", 252, "252 trading days a year"),
        ("XSHG", "5min", "cn", 238 * 48, "11,424 bars a year (238 trading days x 48 bars a day, 5min bars)"),
        ("24/7", "1h", "crypto", 8760, "8,760 bars a year (365 trading days x 24 bars a day, 60min bars)"),
        ("24/7", "day", "crypto", 365, "365 trading days a year"),
        # forex: 120 hourly bars a week (Sunday 17:00 to Friday 17:00 New York), 24 a trading day, 260 days
        ("forex", "1h", "fx", 6240, "6,240 bars a year (260 trading days x 24 bars a day, 60min bars)"),
        ("forex", "day", "fx", 260, "260 trading days a year"),
    ],
)
def test_bars_a_year_of_each_market(calendar, freq, market, bars, words):
    year = bars_a_year(MARKETS[market], parse_freq(freq), _grid(calendar, freq), None)
    assert year.bars == bars and year.words == words


def test_forex_dates_are_uneven_but_its_weeks_are_not():
    """Stamped in UTC, an hourly forex week opens with a Sunday stub and ends on a short Friday: the dates hold
    2 to 24 bars, every full week 120."""
    grid = _grid("forex", "1h")
    per_date = pd.Series(1, index=grid).groupby(grid.normalize()).size()
    assert per_date.min() < 5 and per_date.max() == 24
    assert bars_a_trading_day(grid, 5) == 24


def test_daily_forex_with_sunday_bars_counts_six_bars_a_week():
    grid = ForexGrid(parse_freq("day"), sundays=True).bars(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))
    year = bars_a_year(MARKETS["fx"], parse_freq("day"), grid, None)
    assert year.bars == pytest.approx(312)
    assert year.words == "312 bars a year (260 trading days x 1.2 bars a day, day bars)"


def test_the_config_overrides_and_a_calendar_shorter_than_three_weeks_counts_by_the_date():
    year = bars_a_year(MARKETS["crypto"], parse_freq("1h"), _grid("24/7", "1h"), 8766.0)
    assert year.bars == 8766 and year.words == "8,766 bars a year (backtest.bars_per_year)"
    short = pd.date_range("2024-01-01", periods=24 * 10, freq="h")  # ten days: no week between the first and the last
    assert bars_a_trading_day(short, 7) == 24


def test_the_config_refuses_a_bars_per_year_that_is_not_a_positive_number_and_an_unknown_accumulation():
    from kronos_cli import config
    from kronos_cli.core.errors import KronosError

    for bad in ("0", "-252"):
        with pytest.raises(KronosError, match="backtest.bars_per_year must be a number of bars above 0"):
            config.load(None, [f"backtest.bars_per_year={bad}"])
    with pytest.raises(KronosError, match="backtest.accumulation must be one of 'compound', 'sum'"):
        config.load(None, ["backtest.accumulation=geometric"])
    cfg = config.load(None, ["backtest.market=fx", "backtest.bars_per_year=6240"])
    assert (cfg.backtest.market, cfg.backtest.bars_per_year, cfg.backtest.accumulation) == ("fx", 6240, "compound")
