"""IC metrics on hand-made signals, return accuracy against the last close, and portfolio statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import ic_table
from kronos_cli.metrics.portfolio import portfolio_stats


@pytest.fixture
def realised():
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2024-01-01", periods=60)
    idx = pd.MultiIndex.from_product([days, [f"S{i}" for i in range(40)]], names=["datetime", "instrument"])
    return pd.Series(rng.normal(0, 0.02, len(idx)), index=idx)


def test_perfect_foresight_reversed_and_noise(realised):
    perfect = ic_table(realised * 3 + 1, realised)
    assert perfect["IC"] == pytest.approx(1.0) and perfect["Rank IC"] == pytest.approx(1.0)
    reversed_ = ic_table(-realised, realised)
    assert reversed_["IC"] == pytest.approx(-1.0) and reversed_["Rank IC"] == pytest.approx(-1.0)
    noise = pd.Series(np.random.default_rng(1).normal(size=len(realised)), index=realised.index)
    n = ic_table(noise, realised)
    assert abs(n["IC"]) < 0.05 and abs(n["Rank IC"]) < 0.05 and n["days"] == 60


def test_return_accuracy_of_a_perfect_a_flat_and_a_reversed_forecast():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 0.02, size=(50, 5))
    perfect = return_accuracy(real, real)
    assert perfect["MAE"] == 0 and perfect["MASE"] == 0 and perfect["direction"] == 1
    flat = return_accuracy(np.zeros_like(real), real)  # the last-close forecast itself
    assert flat["MASE"] == pytest.approx(1.0) and flat["MAE"] == pytest.approx(np.abs(real).mean())
    assert return_accuracy(-real, real)["direction"] == 0
    unknown = real.copy()
    unknown[:10] = np.nan  # windows whose future is not known are left out, not counted as zero
    assert return_accuracy(real, unknown)["windows"] == 40


def test_portfolio_stats_summed_as_qlib_sums_them():
    daily = pd.Series([0.01, -0.02, 0.03, 0.0], index=pd.bdate_range("2024-01-01", periods=4))
    s = portfolio_stats(daily, turnover=pd.Series([0.2, 0.1, 0.3, 0.2]), accumulation="sum")
    assert s["annualized_return"] == pytest.approx(daily.mean() * 238)
    assert s["total_return"] == pytest.approx(0.02)
    assert s["max_drawdown"] == pytest.approx(-0.02)
    assert s["win_rate"] == pytest.approx(0.5) and s["turnover"] == pytest.approx(0.2) and s["bars"] == 4


@pytest.mark.parametrize("bars,periods", [(100, 238), (616, 8760), (2000, 6240)])
def test_a_constant_1pct_a_bar_compounds_and_sums_to_the_known_answers(bars, periods):
    r = pd.Series(np.full(bars, 0.01))
    c = portfolio_stats(r, periods=periods)  # compounded, the default
    assert c["total_return"] == pytest.approx(1.01**bars - 1, rel=1e-9)
    assert c["annualized_return"] == pytest.approx(1.01**periods - 1, rel=1e-9)
    assert c["max_drawdown"] == 0 and c["win_rate"] == 1 and c["bars"] == bars
    s = portfolio_stats(r, periods=periods, accumulation="sum")
    assert s["total_return"] == pytest.approx(0.01 * bars) and s["annualized_return"] == pytest.approx(0.01 * periods)
    assert np.isnan(c["information_ratio"]) and c["volatility"] == pytest.approx(0)  # no variance, no ratio


def test_100_bars_of_1pct_known_figures():
    c = portfolio_stats(pd.Series(np.full(100, 0.01)), periods=238)
    assert round(c["total_return"], 4) == 1.7048  # 1.01^100 - 1 = +170.48%
    assert round(c["annualized_return"], 4) == 9.6779  # 1.01^238 - 1 = +967.79% a year, where summing says 238%


def test_a_losing_hourly_run_is_not_annualised_below_minus_100pct():
    """Issue 24: -16.1% over 616 hourly bars, summed and x 8,760, read as -229% a year."""
    r = pd.Series(np.full(616, (1 - 0.161) ** (1 / 616) - 1))
    assert portfolio_stats(r, periods=8760)["total_return"] == pytest.approx(-0.161)
    yearly = portfolio_stats(r, periods=8760)["annualized_return"]
    assert yearly == pytest.approx(0.839 ** (8760 / 616) - 1) and -1 < yearly < -0.9  # about -91.8%
    assert portfolio_stats(r, periods=8760, accumulation="sum")["annualized_return"] < -2.2  # the old -229%
    assert portfolio_stats(pd.Series([0.5, -1.0, 0.1]), periods=252)["annualized_return"] == -1.0  # wiped out


def test_drawdowns_of_wealth_and_of_the_summed_curve():
    r = pd.Series([0.10, -0.50, 0.20])
    assert portfolio_stats(r)["max_drawdown"] == pytest.approx(0.55 / 1.1 - 1)  # -50% of the peak's wealth
    assert portfolio_stats(r, accumulation="sum")["max_drawdown"] == pytest.approx(-0.50)
    assert portfolio_stats(pd.Series([-0.1, 0.05]))["max_drawdown"] == pytest.approx(-0.1)  # from the start
