"""Market sessions: bar sizes, exchange grids (lunch breaks, early closes, holidays), 24/7, inferred sessions, and
forecast timestamps that follow them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions import (
    BarFreq,
    check_calendar_name,
    fit,
    fitted_grid,
    future_timestamps,
    infer_calendar,
    parse_freq,
    session_grid,
)

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


def forex_hours(start: str, end: str, minutes: int = 60, tz: str = "UTC", shift: int = 0, label: str = "start"):
    """The forex week's bars by its definition, not the grid's: every bar start (in UTC) at which New York's clock
    is not between Friday 17:00 and Sunday 17:00, on the vendor's clock (a zone, shifted by whole hours)."""
    utc = pd.date_range(T(start, tz="UTC"), T(end, tz="UTC"), freq=f"{minutes}min", inclusive="left")
    ny = utc.tz_convert("America/New_York")
    day, hour = ny.day_of_week, ny.hour + ny.minute / 60
    closed = (day == 5) | ((day == 4) & (hour >= 17)) | ((day == 6) & (hour < 17))
    wall = utc[~closed].tz_convert(tz).tz_localize(None) + pd.Timedelta(hours=shift)
    return (wall + pd.Timedelta(minutes=minutes) if label == "end" else wall).as_unit("ns")


NY_CLOSE = "New York close time (UTC+2, UTC+3 in US summer time)"


def test_the_forex_week_opens_at_22_utc_in_winter_and_21_utc_in_summer():
    grid = session_grid("forex", parse_freq("1h")).bars(T("2024-02-26"), T("2024-11-12"))
    assert (grid == forex_hours("2024-02-26", "2024-11-12 00:01")).all()
    sundays = pd.Series(grid[grid.day_of_week == 6]).groupby(grid[grid.day_of_week == 6].date).min()
    opens = {str(d): t.strftime("%H:%M") for d, t in sundays.items()}
    assert opens["2024-03-03"] == "22:00" and opens["2024-03-10"] == "21:00"  # the US changes its clocks 03-10
    assert opens["2024-10-27"] == "21:00" and opens["2024-11-03"] == "22:00"  # and back on 11-03
    fridays = grid[grid.day_of_week == 4]
    assert fridays[fridays.normalize() == T("2024-03-08")].max() == T("2024-03-08 21:00")  # the last bar 21-22
    assert fridays[fridays.normalize() == T("2024-03-15")].max() == T("2024-03-15 20:00")
    assert not (grid.day_of_week == 5).any()  # Saturday is shut


@pytest.mark.parametrize(
    "minutes,tz,shift,label,text",
    [
        (60, "UTC", 0, "start", "UTC, stamped at the bar start"),
        (60, "UTC", 0, "end", "UTC, stamped at the bar end"),
        (60, "America/New_York", 0, "start", "New York time, stamped at the bar start"),
        (60, "America/New_York", 7, "start", f"{NY_CLOSE}, stamped at the bar start"),
        (60, "America/New_York", 7, "end", f"{NY_CLOSE}, stamped at the bar end"),
        (60, "Europe/Athens", 0, "start", "broker time on EU summer time"),
        (5, "UTC", 0, "start", "UTC, stamped at the bar start"),
        (15, "America/New_York", 7, "start", f"{NY_CLOSE}, stamped at the bar start"),
    ],
)  # fmt: skip
def test_each_vendor_convention_of_the_forex_week_is_recognised(minutes, tz, shift, label, text):
    """Bars stamped as Dukascopy and OANDA (UTC), New York and MetaTrader brokers (New York + 7 hours, or EU
    summer time) do, across both daylight-saving changes of spring 2024, fit the forex grid exactly."""
    stamps = forex_hours("2024-02-25", "2024-04-08", minutes, tz, shift, label).asi8
    for name in ("forex", "24/5", "FX"):
        grid = fitted_grid(name, parse_freq(f"{minutes}min"), stamps)
        assert grid.name == "forex" and text in grid.describe() and fit(grid, stamps) == (1.0, 1.0)
    assert check_calendar_name("24/5") is None and check_calendar_name("forex") is None


def test_four_hour_bars_aligned_to_utc_midnight_or_to_the_sunday_open():
    """Dukascopy's 4-hour bars start at UTC midnight (the Sunday bar from 20:00 holds the open); OANDA's start at
    17:00 New York (21:00 or 22:00 UTC). Both fit, either side of a daylight-saving change."""
    four = parse_freq("4h")
    midnight = session_grid("forex", four).bars(T("2024-02-25"), T("2024-04-08"))
    fridays = midnight[midnight.day_of_week == 4]
    assert set(midnight[midnight.day_of_week == 6].strftime("%H")) == {"20"}  # 20:00-24:00 holds the open
    assert {t.hour for t in pd.Series(fridays).groupby(fridays.date).max()} == {20}  # and the close
    hours = forex_hours("2024-02-25", "2024-04-08")
    oanda = hours[(hours.tz_localize("UTC").tz_convert("America/New_York").hour - 17) % 4 == 0]
    assert set(oanda[oanda.day_of_week == 6].strftime("%H")) == {"21", "22"}
    for stamps, aligned in ((midnight, False), (oanda, True)):
        grid = fitted_grid("forex", four, stamps.asi8)
        assert ("aligned to the Sunday open" in grid.describe()) == aligned and fit(grid, stamps.asi8) == (1.0, 1.0)


@pytest.mark.parametrize(
    "stamps,freq,want",
    [
        (pd.date_range("2024-01-01", "2024-02-01", freq="h"), "1h", "24/7 (60min)"),
        (forex_hours("2024-02-25", "2024-04-08"), "1h", "forex (60min, UTC, stamped at the bar start)"),
        (session_grid("XNYS", parse_freq("day")).bars(T("2023-06-01"), T("2024-03-27")), "day", "XNYS (day)"),
        (session_grid("XNYS", parse_freq("30min")).bars(T("2023-10-02"), T("2024-03-27")), "30min", "XNYS (30min)"),
        (session_grid("XSHG", parse_freq("day")).bars(T("2023-06-01"), T("2024-03-27")), "day", "XSHG (day)"),
        (pd.bdate_range("2024-01-01", "2024-03-29"), "day", "inferred (day, Mon-Fri"),  # no holiday: no exchange
    ],
)
def test_the_calendar_is_inferred_from_the_bars(stamps, freq, want):
    assert infer_calendar(parse_freq(freq), pd.DatetimeIndex(stamps).as_unit("ns").asi8).describe().startswith(want)


@pytest.mark.parametrize(
    "last,close,sunday",
    [("2024-03-08 15:00", "2024-03-08 21:00", "2024-03-10 21:00"),  # closes in winter, opens in summer time
     ("2024-04-26 15:00", "2024-04-26 20:00", "2024-04-28 21:00")],
)  # fmt: skip
def test_forex_forecasts_have_no_bar_in_a_closed_hour(last, close, sunday):
    """Seen in the issue: EURUSD forecasts fell on Friday night and all of Sunday (the lookback's times of day on
    the weekdays it traded)."""
    hist = forex_hours("2024-01-08", last + ":01")
    for calendar in (None, "forex", "24/5"):
        fut = future_timestamps(hist, 60, calendar)
        assert fut.isin(forex_hours(last, "2024-05-10")).all()  # every forecast bar an open hour
        assert fut[fut <= T(close)].equals(pd.date_range(T(last) + pd.Timedelta(hours=1), close, freq="h"))
        assert fut[fut > T(close)][0] == T(sunday)  # nothing on Friday night or Saturday, Sunday from the open
