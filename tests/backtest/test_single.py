"""One series traded on its forecast's sign: the timing of positions, and the simulation's known answers for
prices that rise or fall 1% a bar, with costs, flips, a suspension and buy and hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.backtest.single import Costs, sign_positions, sign_strategy, simulate

FREE = Costs(0.0, 0.0, 0.0, 1e6)


def _prices(n: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Opens and closes moving `step` a bar: each bar opens at the last close and closes `step` away."""
    close = 100 * (1 + step) ** np.arange(1, n + 1)
    return close / (1 + step), close


def test_the_signal_of_a_bar_sets_the_next_bars_position():
    bars = pd.date_range("2024-01-01", periods=6, freq="D")
    signal = pd.Series([0.5, 0.2, -0.1, np.nan, 0.0, 1.0], index=bars)
    assert sign_positions(signal, bars, short=True).tolist() == [0, 1, 1, -1, 0, 0]
    assert sign_positions(signal, bars, short=False).tolist() == [0, 1, 1, 0, 0, 0]  # flat, never short


def test_holding_a_series_that_rises_1pct_a_bar_earns_1pct_a_bar():
    deal, close = _prices(50, 0.01)
    sim = simulate(np.ones(50), deal, close, FREE)
    assert np.allclose(sim["return"], 0.01) and (sim["cost"] == 0).all()
    assert sim["turnover"].tolist() == [1.0] + [0.0] * 49  # bought once, at the first open
    assert (1 + sim["return"]).prod() - 1 == pytest.approx(1.01**50 - 1)


def test_a_buy_pays_open_cost_and_is_sized_so_that_it_and_its_cost_fit_in_the_equity():
    deal, close = _prices(10, 0.01)
    sim = simulate(np.ones(10), deal, close, Costs(0.001, 0.002, 0.0, 1e6))
    assert sim["cost"].iloc[0] == pytest.approx(0.001 / 1.001) and (sim["cost"].iloc[1:] == 0).all()
    net = sim["return"] - sim["cost"]
    assert net.iloc[0] == pytest.approx(1.01 / 1.001 - 1) and np.allclose(sim["return"].iloc[1:], 0.01)
    assert (1 + net).prod() - 1 == pytest.approx(1.01**10 / 1.001 - 1)
    assert simulate(np.ones(10), deal, close, Costs(0.0, 0.0, 500.0, 1e6))["cost"].iloc[0] == pytest.approx(5e-4)


def test_a_short_in_a_falling_series_gains_what_the_price_lost():
    deal, close = _prices(20, -0.01)
    sim = simulate(-np.ones(20), deal, close, FREE)
    assert sim["return"].iloc[0] == pytest.approx(0.01)  # short at the open, 1% lower at the close
    assert (1 + sim["return"]).prod() - 1 == pytest.approx(1 - 0.99**20)  # held, not rebalanced
    assert (sim["amount"] < 0).all() and sim["weight"].iloc[0] == pytest.approx(-0.99 / 1.01)


def test_a_flip_from_long_to_short_trades_twice_the_equity_at_the_close_cost():
    deal, close = _prices(4, 0.0)
    sim = simulate(np.array([1.0, 1.0, -1.0, -1.0]), deal, close, Costs(0.001, 0.003, 0.0, 1e6))
    flip = 1 + 1 / 1.003  # sell the long (the equity), then sell short the equity less the short's cost
    assert sim["turnover"].tolist() == pytest.approx([1 / 1.001, 0.0, flip, 0.0])
    assert sim["cost"].iloc[2] == pytest.approx(flip * 0.003)


def test_a_suspended_bar_trades_nothing_and_keeps_the_last_close():
    deal, close = _prices(5, 0.01)
    deal[1], close[1] = np.nan, np.nan
    sim = simulate(np.array([0.0, 1.0, 1.0, 1.0, 1.0]), deal, close, FREE)
    assert sim["turnover"].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]  # bought at the next bar that trades
    assert sim["return"].tolist() == pytest.approx([0.0, 0.0, 0.01, 0.01, 0.01])
    assert sim["waiting"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]  # the buy waited one bar: counted as refused
    bars = pd.date_range("2024-01-01", periods=5, freq="D")
    prices = pd.DataFrame({"open": deal, "close": close}, index=bars)
    _, _, fills = sign_strategy(pd.Series(1.0, index=bars), prices, "open", FREE, short=False)
    assert fills.refused_buys == {"suspension": 1} and fills.orders == fills.filled == 1


def test_the_report_beside_buy_and_hold():
    deal, close = _prices(30, 0.01)
    bars = pd.date_range("2024-01-01", periods=30, freq="h")
    prices = pd.DataFrame({"open": deal, "close": close}, index=bars)
    signal = pd.Series(np.where(np.arange(30) % 10 < 5, 1.0, -1.0), index=bars)
    report, held, fills = sign_strategy(signal, prices, "open", Costs(0.001, 0.001, 0.0, 1e6), short=False)
    assert list(report.columns) == ["return", "cost", "turnover", "bench"] and report.index.equals(bars)
    hold = (1 + report["bench"]).prod() - 1
    assert hold == pytest.approx(1.01**30 / 1.001 - 1)  # buy and hold: one buy, its cost included
    strat = (1 + report["return"] - report["cost"]).prod() - 1
    assert strat < hold and (report["turnover"] > 0).sum() == 6  # in and out three times, paying each time
    assert set(held.columns) == {"datetime", "amount", "weight"} and (held["amount"] > 0).all()
    assert fills.orders == fills.filled == 6 and fills.fill_rate == 1.0 and not fills.refused_buys


@pytest.mark.parametrize("cost", [0.0, 0.001])
def test_holding_a_series_long_is_qlibs_executor_bar_for_bar(market, cost):
    """Qlib's executor holding one stock (TopkDropout topk 1 that never sells, the whole account invested, no lot
    or limit) and the simulation's buy and hold report the same returns, costs and turnover."""
    import contextlib
    import io

    from kronos_cli.data.qlib_source import init_qlib

    init_qlib(str(market), "cn")
    with contextlib.redirect_stderr(io.StringIO()):  # gym's import banner
        from qlib.backtest import backtest, executor
        from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    start, end = pd.Timestamp("2024-06-03"), pd.Timestamp("2024-09-30")
    days = pd.DatetimeIndex(D.calendar(start_time="2024-05-01", end_time=end))
    signal = pd.Series(1.0, index=pd.MultiIndex.from_product([days, ["SH600000"]], names=["datetime", "instrument"]))
    strategy = TopkDropoutStrategy(signal=signal, topk=1, n_drop=1, hold_thresh=10**9, risk_degree=1.0)
    exchange = {"freq": "day", "limit_threshold": None, "trade_unit": None, "deal_price": "open"}
    with contextlib.redirect_stderr(io.StringIO()):
        metrics, _ = backtest(
            start_time=start,
            end_time=end,
            strategy=strategy,
            executor=executor.SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, verbose=False),
            account=1e8,
            benchmark="SH000300",
            exchange_kwargs={**exchange, "open_cost": cost, "close_cost": cost, "min_cost": 0},
        )
    qlib_report = metrics["1day"][0]
    prices = D.features(["SH600000"], ["$open", "$close"], start_time=start, end_time=end).droplevel("instrument")
    sim = simulate(np.ones(len(prices)), prices.iloc[:, 0].to_numpy(), prices.iloc[:, 1].to_numpy(),
                   Costs(cost, cost, 0.0, 1e8))  # fmt: skip
    assert len(sim) == len(qlib_report) > 60
    for column in ("return", "cost", "turnover"):
        np.testing.assert_allclose(sim[column], qlib_report[column], atol=1e-8)
