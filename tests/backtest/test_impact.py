"""Known answers of Qlib's impact and volume cap on a tiny hand-made market (a real Qlib provider directory): one
stock that TopkDropout buys on the first bar with 95% of the account and then holds, a second it never wants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.backtest.markets import EQUAL_WEIGHT, market_rules
from kronos_cli.backtest.qlib_backtest import QlibMarket
from kronos_cli.data.provider import write_calendar, write_pool, write_series

DAYS = pd.bdate_range("2024-01-01", periods=8)
ACCOUNT, PRICE, RISK = 1e6, 10.0, 0.95  # TopkDropout spends cash x its risk degree, 0.95
ORDER = ACCOUNT * RISK / PRICE  # 95,000 shares


def _market(root, volume: float, limit_up_day: int | None = None) -> str:
    """Stocks SH600000 (open and close 10 every day, `volume` shares a day) and SH600003 (ranked below it);
    SH600006 ranks first but hits the limit up on `limit_up_day` (its close 10% up)."""
    write_calendar(root, "day", DAYS)
    n = len(DAYS)
    for symbol, vol in (("SH600000", volume), ("SH600003", 1e9), ("SH600006", 1e9)):
        close = np.full(n, PRICE)
        change = np.zeros(n)
        if symbol == "SH600006" and limit_up_day is not None:
            close[limit_up_day:] *= 1.1
            change[limit_up_day] = 0.1
        fields = {"open": close, "close": close, "high": close, "low": close, "volume": np.full(n, vol)}
        write_series(root, symbol, "day", 0, {**fields, "factor": np.ones(n), "change": change, "vwap": close})
    spans = {s: [(DAYS[0], DAYS[-1])] for s in ("SH600000", "SH600003", "SH600006")}
    for pool in ("all", "csi300"):
        write_pool(root, pool, spans, "day")
    return str(root)


def _run(uri: str, *overrides: str, ranked: tuple[str, ...] = ("SH600000", "SH600003")):
    cfg = config.load(
        None,
        [
            f"data.provider_uri={uri}",
            "backtest.topk=1",
            "backtest.n_drop=1",
            "backtest.limit_threshold=0.095",
            "backtest.trade_unit=0",  # fractional: no lot rounding between the cap and the fill
            "backtest.open_cost=0",
            "backtest.close_cost=0",
            "backtest.min_cost=0",
            *overrides,
        ],
    )
    scores = np.linspace(1.0, 0.0, len(ranked))  # the first ranks highest on every bar
    index = pd.MultiIndex.from_product([DAYS, list(ranked)], names=["datetime", "instrument"])
    signal = pd.Series(np.tile(scores, len(DAYS)), index=index)
    market = QlibMarket(cfg, DAYS[1], DAYS[-2], EQUAL_WEIGHT)
    return market.run(signal, market_rules(cfg), ACCOUNT)


def test_an_order_larger_than_the_volume_cap_is_filled_by_exactly_the_cap(tmp_path):
    uri = _market(tmp_path / "m", volume=1000.0)
    report, held, fills = _run(uri, "backtest.volume_limit=0.1", "backtest.impact_cost=0")
    first = held[held["datetime"] == DAYS[1]]
    assert first["instrument"].tolist() == ["SH600000"] and first["amount"].iloc[0] == pytest.approx(100.0)  # 10%
    assert (fills.orders, fills.filled, fills.partial, fills.unfilled, fills.volume_capped) == (1, 0, 1, 0, 1)
    assert fills.fill_rate == pytest.approx(100.0 / ORDER)
    _, held_free, free = _run(uri, "backtest.volume_limit=0", "backtest.impact_cost=0")  # 0 turns the cap off
    assert held_free["amount"].iloc[0] == pytest.approx(ORDER) and free.fill_rate == 1.0 and free.volume_capped == 0


@pytest.mark.parametrize("impact", [0.1, 0.5])
def test_impact_cost_reduces_a_known_trades_return_by_the_formulas_amount(tmp_path, impact):
    participation = 0.1  # the order is a tenth of the bar's traded value
    uri = _market(tmp_path / "m", volume=ORDER / participation)
    free, _, _ = _run(uri, "backtest.volume_limit=0", "backtest.impact_cost=0")
    paid, held, fills = _run(uri, "backtest.volume_limit=0", f"backtest.impact_cost={impact}")
    rate = impact * participation**2  # Qlib: impact_cost x (order value / bar value)^2 of the order's value
    assert paid["cost"].iloc[0] == pytest.approx(rate * ORDER * PRICE / ACCOUNT) and free["cost"].sum() == 0
    assert (paid["cost"].iloc[1:] == 0).all() and held["amount"].iloc[0] == pytest.approx(ORDER)  # filled in full
    lost = free["account"].iloc[-1] - paid["account"].iloc[-1]  # the same shares at the same prices otherwise
    assert lost == pytest.approx(rate * ORDER * PRICE) and fills.fill_rate == 1.0


def test_a_buy_at_the_limit_up_is_refused_and_counted(tmp_path):
    uri = _market(tmp_path / "m", volume=1e9, limit_up_day=1)
    _, held, fills = _run(uri, "backtest.volume_limit=0", ranked=("SH600006", "SH600000", "SH600003"))
    assert fills.refused_buys == {"price limit": 1}  # wanted on the first bar, at its limit up: no order
    assert held.loc[held["datetime"] == DAYS[1], "instrument"].tolist() == []
    assert held.loc[held["datetime"] == DAYS[2], "instrument"].tolist() == ["SH600006"]  # bought the bar after
