"""IC metrics on hand-made signals, accuracy and portfolio statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.backtest import metrics


@pytest.fixture
def realised():
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2024-01-01", periods=60)
    idx = pd.MultiIndex.from_product([days, [f"S{i}" for i in range(40)]], names=["datetime", "instrument"])
    return pd.Series(rng.normal(0, 0.02, len(idx)), index=idx)


def test_perfect_foresight_reversed_and_noise(realised):
    perfect = metrics.ic_table(realised * 3 + 1, realised)
    assert perfect["IC"] == pytest.approx(1.0) and perfect["Rank IC"] == pytest.approx(1.0)
    reversed_ = metrics.ic_table(-realised, realised)
    assert reversed_["IC"] == pytest.approx(-1.0) and reversed_["Rank IC"] == pytest.approx(-1.0)
    noise = pd.Series(np.random.default_rng(1).normal(size=len(realised)), index=realised.index)
    n = metrics.ic_table(noise, realised)
    assert abs(n["IC"]) < 0.05 and abs(n["Rank IC"]) < 0.05 and n["days"] == 60


def test_accuracy_of_a_perfect_and_a_flat_forecast():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 5))
    last = rng.normal(size=50)
    perfect = metrics.accuracy(real, real, last)
    assert perfect["MAE"] == 0 and perfect["R2"] == 1 and perfect["directional_accuracy"] == 1
    assert perfect["correlation"] == pytest.approx(1.0)


def test_portfolio_stats_use_238_days_and_summed_returns():
    daily = pd.Series([0.01, -0.02, 0.03, 0.0], index=pd.bdate_range("2024-01-01", periods=4))
    s = metrics.portfolio_stats(daily, turnover=pd.Series([0.2, 0.1, 0.3, 0.2]))
    assert s["annualized_return"] == pytest.approx(daily.mean() * 238)
    assert s["total_return"] == pytest.approx(0.02)
    assert s["max_drawdown"] == pytest.approx(-0.02)
    assert s["win_rate"] == pytest.approx(0.5) and s["turnover"] == pytest.approx(0.2)
