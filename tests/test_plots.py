"""Figures a researcher would trust: compounded returns in percent, intraday bars on a bar axis, joined lines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli import plots


def _sessions(days: int) -> pd.DatetimeIndex:
    """5-minute bars of an A-share day: 09:35-11:30 and 13:05-15:00 (a lunch break between)."""
    out = []
    for d in pd.bdate_range("2024-03-04", periods=days):
        out += list(pd.date_range(d + pd.Timedelta("09:35:00"), d + pd.Timedelta("11:30:00"), freq="5min"))
        out += list(pd.date_range(d + pd.Timedelta("13:05:00"), d + pd.Timedelta("15:00:00"), freq="5min"))
    return pd.DatetimeIndex(out)


def test_intraday_forecasts_use_a_bar_axis_with_session_ticks_and_join_the_history(tmp_path):
    plt = plots._pyplot()
    times = _sessions(4)
    hist, fut = times[:-10], times[-10:]
    close = 100 + np.cumsum(np.ones(len(times)) * 0.01)
    fig, ax = plt.subplots()
    assert plots.draw_forecast(ax, hist, close[:-10], fut, close[-10:], ("q10-q90", close[-10:] - 1, close[-10:] + 1))
    history_line, forecast_line = ax.get_lines()[:2]
    assert np.array_equal(history_line.get_xdata(), np.arange(len(hist)))  # one step per bar: no lunch gap
    assert forecast_line.get_xdata()[0] == len(hist) - 1  # the forecast starts at the last history bar
    assert forecast_line.get_ydata()[0] == close[-11]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07"]
    plt.close(fig)
    days = pd.bdate_range("2024-01-01", periods=40)
    fig, ax = plt.subplots()
    assert not plots.draw_forecast(ax, days[:30], close[:30], days[30:], close[30:40], None)  # daily: on dates
    plt.close(fig)
    assert (
        plots.plot_forecast(hist, close[:-10], fut, close[-10:], None, tmp_path / "f.png").read_bytes()[:4]
        == b"\x89PNG"
    )


def test_performance_is_compounded_in_percent():
    daily = pd.Series([0.10, -0.10, 0.10])
    assert plots.compounded(daily).iloc[-1] == np.prod(1 + daily) - 1  # not the sum 0.10
