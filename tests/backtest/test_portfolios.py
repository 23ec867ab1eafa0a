"""Which strategy a pool gets (TopkDropout needs more symbols than it holds; one series trades its forecast's
sign), and the warning when costs take more than the strategy made."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.backtest.annualization import BarsAYear
from kronos_cli.backtest.portfolios import TOPK, cost_warning, one_series, score
from kronos_cli.core.errors import KronosError

DAYS = pd.bdate_range("2024-06-03", periods=20)


def _keys(*names: str, days=DAYS) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([days, list(names)], names=["datetime", "instrument"])


def _cfg(*overrides: str):
    return config.load(None, ["backtest.topk=8", "backtest.n_drop=2", *overrides])


def test_one_symbol_trades_its_sign_and_a_pool_no_wider_than_topk_is_refused():
    assert one_series(_cfg(), _keys("SH600000"), DAYS[0], DAYS[-1]) == "SH600000"
    with pytest.raises(KronosError, match=r"backtest.topk=8 holds every one of the 2 symbols .* set backtest.topk"):
        one_series(_cfg(), _keys("SH600000", "SZ000010"), DAYS[0], DAYS[-1])
    assert one_series(_cfg("backtest.topk=1", "backtest.n_drop=1"), _keys("A", "B"), DAYS[0], DAYS[-1]) is None
    late = _keys("A", "B", days=DAYS[:5]).append(_keys("A", days=DAYS[5:]))
    assert one_series(_cfg(), late, DAYS[5], DAYS[-1]) == "A"  # the backtest range holds one symbol


def test_n_drop_0_is_refused_for_what_qlib_makes_of_it():
    with pytest.raises(KronosError, match="backtest.n_drop must be >= 1, got 0: Qlib's TopkDropout reads 0 as"):
        _cfg("backtest.n_drop=0")


def _report(bars: int, gross_total: float, net_total: float, turnover: float) -> pd.DataFrame:
    gross = (1 + gross_total) ** (1 / bars) - 1
    cost = gross - ((1 + net_total) ** (1 / bars) - 1)
    index = pd.date_range("2024-01-01", periods=bars, freq="h")
    return pd.DataFrame({"return": gross, "cost": cost, "bench": 0.0, "turnover": turnover}, index=index)


def test_the_issues_churning_backtest_warns_that_costs_exceed_the_gross_return():
    """Issue 24: one symbol, topk=1 n_drop=1, turnover 0.27 a bar: +0.59% before costs, -16.1% after."""
    stats = score(_report(616, 0.0059, -0.161, 0.27), BarsAYear(8760, 24, "8,760 bars a year"), "compound")
    assert stats["without_cost"]["total_return"] == pytest.approx(0.0059)
    assert stats["with_cost"]["total_return"] == pytest.approx(-0.161)
    text = cost_warning("mean", stats, TOPK)
    assert text.startswith("mean: trading costs of 16.69% exceed the gross return of +0.59% (-16.10% after costs)")
    assert "with 0.27 of the account traded a bar on average" in text
    assert "backtest.hold_thresh" in text and "backtest.open_cost" in text
    assert "forecast's sign" in cost_warning("mean", stats, "long/flat on the forecast's sign")


def test_no_warning_where_the_strategy_made_more_than_it_paid():
    stats = score(_report(616, 0.08, 0.05, 0.05), BarsAYear(8760, 24, "8,760 bars a year"), "compound")
    assert cost_warning("mean", stats, TOPK) is None
    free = score(_report(100, -0.02, -0.02, 0.0), BarsAYear(238, 1, "238 trading days a year"), "sum")
    assert cost_warning("mean", free, TOPK) is None and np.isclose(free["with_cost"]["total_return"], -0.02, atol=1e-3)
