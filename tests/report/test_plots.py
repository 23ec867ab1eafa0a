"""Figures a researcher would trust: compounded returns in percent, intraday bars on a bar axis, joined lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.report import plots


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


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions draw, kept open instead of written."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: figures.append(fig) or path)
    yield figures
    plt = plots._pyplot()
    for fig in figures:
        plt.close(fig)


def _apart(fig, legend, ax) -> bool:
    fig.canvas.draw()
    return not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_error_by_horizon_counts_whole_bars_and_keeps_its_legend_off_the_data(drawn, tmp_path):
    series = {m: {"MAE": [0.01, 0.012, 0.015, 0.02, 0.021], "CRPS": [0.008] * 5} for m in ("a", "b", "c", "d", "e")}
    plots.plot_by_horizon(series, tmp_path / "h.png", "run, test split")
    (fig,) = drawn
    (legend,) = fig.legends
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1, 2, 3, 4, 5]  # no tick at 1.5 bars ahead
        assert ax.get_legend() is None and _apart(fig, legend, ax)


def test_ic_by_month_stays_readable_for_any_number_of_months(drawn, tmp_path):
    months = [f"{p:%Y-%m}" for p in pd.period_range("2019-01", periods=72, freq="M")]
    monthly = {m: {mo: 0.1 for mo in months} for m in ("fine-tuned", "initial weights", "drift", "hist. vol")}
    plots.plot_ic_by_month(monthly, tmp_path / "ic.png", "run: mean daily IC by month")
    (fig,) = drawn
    (ax,) = fig.axes
    assert fig.get_figwidth() <= plots.MAX_WIDTH  # not 0.6 inches a bar: 173 inches for 72 months
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) <= 2 * plots.MAX_TICKS and labels[:2] == ["2019-01", "2019-05"]
    assert _apart(fig, fig.legends[0], ax)


def test_pit_panels_share_one_y_scale(drawn, tmp_path):
    plots.plot_pit({"flat": [0.1] * 10, "u-shaped": [0.4] + [0.025] * 8 + [0.4]}, tmp_path / "pit.png", "PIT")
    (fig,) = drawn
    assert len({ax.get_ylim() for ax in fig.axes}) == 1
