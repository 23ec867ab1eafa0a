"""Market sessions: bar sizes, exchange grids (lunch breaks, early closes, holidays), 24/7, inferred sessions, and
forecast timestamps that follow them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.errors import KronosError
from kronos_cli.sessions import BarFreq, check_calendar_name, future_timestamps, parse_freq, session_grid

T = pd.Timestamp


@pytest.mark.parametrize(
    "text,minutes,qlib",
    [("day", None, "day"), ("1d", None, "day"), ("5min", 5, "5min"), ("5m", 5, "5min"), ("1h", 60, "60min")],
)
def test_bar_sizes(text, minutes, qlib):
    assert parse_freq(text) == BarFreq(minutes) and parse_freq(text).qlib == qlib


@pytest.mark.parametrize("text", ["2x", "0min", "25h", ""])
def test_bad_bar_sizes(text):
    with pytest.raises(KronosError, match="is not a bar size"):
        parse_freq(text)


def test_xshg_five_minute_bars_skip_the_lunch_break_and_follow_the_label():
    start = session_grid("XSHG", parse_freq("5min"), "start").bars(T("2024-01-02"), T("2024-01-02 23:59"))
    end = session_grid("XSHG", parse_freq("5min"), "end").bars(T("2024-01-02"), T("2024-01-02 23:59"))
    assert len(start) == len(end) == 48
    assert [start[0], start[23], start[24], start[-1]] == [T("2024-01-02 09:30"), T("2024-01-02 11:25"),
                                                         T("2024-01-02 13:00"), T("2024-01-02 14:55")]  # fmt: skip
    assert [end[0], end[23], end[24], end[-1]] == [T("2024-01-02 09:35"), T("2024-01-02 11:30"),
                                                 T("2024-01-02 13:05"), T("2024-01-02 15:00")]  # fmt: skip


def test_xnys_early_close_and_holidays():
    hourly = session_grid("XNYS", parse_freq("1h")).bars(T("2024-11-27"), T("2024-11-29 23:59"))
    by_day = pd.Series(1, index=hourly).groupby(hourly.date).sum()
    assert by_day.to_dict() == {T("2024-11-27").date(): 7, T("2024-11-29").date(): 4}  # Thanksgiving, half day
    days = session_grid("XNYS", parse_freq("day")).bars(T("2024-12-23"), T("2024-12-27"))
    assert list(days.strftime("%m-%d")) == ["12-23", "12-24", "12-26", "12-27"]


def test_always_open_keeps_nights_and_weekends():
    bars = session_grid("24/7", parse_freq("1h")).bars(T("2024-01-06"), T("2024-01-07 23:00"))  # a weekend
    assert len(bars) == 48 and (np.diff(bars.as_unit("ns").asi8) == 3600 * 10**9).all()


def test_inferred_sessions_keep_a_lunch_break_and_an_early_close():
    days = pd.bdate_range("2024-01-01", periods=10)
    times = [pd.Timedelta(hours=h, minutes=m) for h, m in [(9, 30), (10, 0), (10, 30), (13, 0), (13, 30), (14, 0)]]
    seen = pd.DatetimeIndex([d + t for d in days for t in times])
    seen = seen[~((seen.normalize() == days[4]) & (seen.hour >= 13))]  # day 5 closes at lunch
    grid = session_grid("infer", parse_freq("30min"), timestamps=seen.as_unit("ns").asi8).bars(seen[0], seen[-1])
    assert (grid == seen).all()  # no bar in the lunch break, none after the early close


def test_unknown_calendar_lists_the_names():
    problem = check_calendar_name("XXXX")
    assert "XXXX" in problem and "XSHG" in problem and "24/7" in problem and "infer" in problem


def test_forecast_timestamps_do_not_fill_the_lunch_break():
    day = session_grid("XSHG", parse_freq("5min"), "end").bars(T("2024-01-02"), T("2024-01-03 23:59"))
    hist = day[:-30]  # up to 11:00 on the second day
    for calendar in (None, "XSHG"):
        fut = future_timestamps(hist, 8, calendar)
        assert list(fut.strftime("%H:%M")) == ["11:05", "11:10", "11:15", "11:20", "11:25", "11:30", "13:05", "13:10"]


def test_forecast_timestamps_skip_exchange_holidays_and_keep_crypto_nights():
    hist = session_grid("XSHG", parse_freq("day")).bars(T("2024-01-02"), T("2024-02-08"))
    assert future_timestamps(hist, 1, "XSHG")[0] == T("2024-02-19")  # after the Spring Festival
    crypto = pd.date_range("2024-01-05 20:00", periods=30, freq="h", tz="UTC")
    fut = future_timestamps(crypto, 3, "24/7")
    assert fut[0] == crypto[-1] + pd.Timedelta(hours=1) and str(fut.tz) == "UTC"


@pytest.mark.parametrize(
    "history,want",
    [
        (pd.date_range("2017-05-01", "2018-04-01", freq="MS"), ["2018-05-01", "2018-06-01", "2018-07-01"]),
        (pd.date_range("2017-01-31", periods=8, freq="ME"), ["2017-09-30", "2017-10-31", "2017-11-30"]),
        (pd.date_range("2015-03-31", periods=8, freq="QE"), ["2017-03-31", "2017-06-30", "2017-09-30"]),
        (pd.date_range("2024-01-05", periods=10, freq="W-FRI"), ["2024-03-15", "2024-03-22", "2024-03-29"]),
        (pd.date_range("2010-12-31", periods=5, freq="YE"), ["2015-12-31", "2016-12-31", "2017-12-31"]),
        # monthly bars on the 15th with one late bar: whole months from the last, no drift
        (pd.DatetimeIndex(["2023-10-15", "2023-11-15", "2023-12-18", "2024-01-15"]), ["2024-02-15", "2024-03-15"]),
    ],
)
def test_bars_wider_than_a_day_continue_on_their_own_calendar(history, want):
    """Seen in an attack: monthly bars ending 2018-04-01 were forecast as 2018-04-02, -03, -04 (any step of a day
    or more was taken for daily bars)."""
    got = future_timestamps(history, len(want))
    assert [t.strftime("%Y-%m-%d") for t in got] == want
