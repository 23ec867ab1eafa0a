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


def test_portfolio_stats_use_238_days_and_summed_returns():
    daily = pd.Series([0.01, -0.02, 0.03, 0.0], index=pd.bdate_range("2024-01-01", periods=4))
    s = portfolio_stats(daily, turnover=pd.Series([0.2, 0.1, 0.3, 0.2]))
    assert s["annualized_return"] == pytest.approx(daily.mean() * 238)
    assert s["total_return"] == pytest.approx(0.02)
    assert s["max_drawdown"] == pytest.approx(-0.02)
    assert s["win_rate"] == pytest.approx(0.5) and s["turnover"] == pytest.approx(0.2)
