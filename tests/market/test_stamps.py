"""Stamps and future timestamps that keep a series' own spacing."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions import future_timestamps
from kronos_cli.market.stamps import calendar_features


def test_stamp_columns_minute_hour_weekday_day_month():
    s = calendar_features(pd.to_datetime(["2024-03-15 09:35"]))  # a Friday
    assert s.tolist() == [[35, 9, 4, 15, 3]]


def test_daily_bars_skip_weekends():
    hist = pd.bdate_range("2024-01-01", periods=20)
    fut = future_timestamps(hist, 5)
    assert hist[-1] == pd.Timestamp("2024-01-26")  # a Friday
    assert list(fut.strftime("%a")) == ["Mon", "Tue", "Wed", "Thu", "Fri"]


def test_crypto_daily_bars_keep_weekends():
    hist = pd.date_range("2024-01-01", periods=20, freq="D")
    assert (future_timestamps(hist, 7) == pd.date_range("2024-01-21", periods=7, freq="D")).all()


def test_five_minute_bars_stay_five_minute_and_roll_to_next_session():
    days = pd.bdate_range("2024-01-01", periods=3)
    hist = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=9, minutes=30) + i * pd.Timedelta(minutes=5) for d in days for i in range(12)]
    )  # 09:30 .. 10:25
    fut = future_timestamps(hist, 14)
    assert fut[0] == hist[-1].normalize() + pd.Timedelta(days=1, hours=9, minutes=30)
    assert (fut[1:12] - fut[:11] == pd.Timedelta(minutes=5)).all()
    assert fut[12] == fut[0] + pd.Timedelta(days=1)


def test_needs_two_timestamps():
    with pytest.raises(KronosError):
        future_timestamps(pd.to_datetime(["2024-01-01"]), 3)
