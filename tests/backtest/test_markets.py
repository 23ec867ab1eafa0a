"""Market rules: a preset per market, the config's explicit values winning, and the default benchmark."""

from __future__ import annotations

from kronos_cli import config
from kronos_cli.backtest.markets import EQUAL_WEIGHT, benchmark_for, market_rules


def _cfg(*overrides):
    return config.load(None, list(overrides))


def test_presets_per_market():
    cn, us, crypto = (market_rules(_cfg(f"backtest.market={m}")) for m in ("cn", "us", "crypto"))
    assert (cn.limit_threshold, cn.trade_unit, cn.days_per_year) == (0.095, 100, 238)
    assert (us.limit_threshold, us.trade_unit, us.days_per_year) == (None, 1, 252)
    assert (crypto.limit_threshold, crypto.trade_unit, crypto.days_per_year) == (None, None, 365)


def test_the_fx_preset_and_which_markets_sell_a_single_series_short():
    fx = market_rules(_cfg("backtest.market=fx"))
    assert (fx.limit_threshold, fx.trade_unit, fx.days_per_year, fx.days_per_week) == (None, None, 260, 5)
    assert (fx.open_cost, fx.close_cost, fx.min_cost) == (0.0001, 0.0001, 0.0)
    lots = market_rules(_cfg("backtest.market=fx", "backtest.trade_unit=1000", "backtest.open_cost=0.00005"))
    assert lots.trade_unit == 1000 and lots.open_cost == 0.00005  # lots and costs as configured
    assert fx.short and market_rules(_cfg("backtest.market=crypto")).short
    assert not market_rules(_cfg("backtest.market=cn")).short
    assert market_rules(_cfg("backtest.market=cn", "backtest.short=true")).short
    assert not market_rules(_cfg("backtest.market=fx", "backtest.short=false")).short


def test_the_config_wins_and_zero_turns_a_limit_or_lot_off():
    rules = market_rules(_cfg("backtest.market=cn", "backtest.limit_threshold=0", "backtest.trade_unit=0",
                              "backtest.open_cost=0.0002"))  # fmt: skip
    assert rules.limit_threshold is None and rules.trade_unit is None and rules.open_cost == 0.0002
    assert rules.close_cost == 0.0015  # the preset's where the config is silent


def test_default_benchmark_is_the_pools_index_else_equal_weight():
    assert benchmark_for(_cfg("data.instrument=csi300")) == "SH000300"
    assert benchmark_for(_cfg("data.instrument=[SH600000,SH600001]")) == EQUAL_WEIGHT
    assert benchmark_for(_cfg("data.instrument=csi300", "backtest.market=us")) == EQUAL_WEIGHT
    assert benchmark_for(_cfg("backtest.benchmark=SPY")) == "SPY"


def test_impact_and_volume_limit_per_market_and_from_the_config():
    cn, fx = market_rules(_cfg("backtest.market=cn")), market_rules(_cfg("backtest.market=fx"))
    assert (cn.impact_cost, cn.volume_limit) == (0.1, 0.1)  # Qlib's recommended impact, a 10% participation cap
    assert (fx.impact_cost, fx.volume_limit) == (0.0, None)  # forex bar volume is a tick count, not traded amount
    mine = market_rules(_cfg("backtest.impact_cost=0.3", "backtest.volume_limit=0.05"))
    assert (mine.impact_cost, mine.volume_limit) == (0.3, 0.05)
    assert market_rules(_cfg("backtest.volume_limit=0")).volume_limit is None  # 0 turns the cap off


def test_scaled_rules_multiply_every_cost_and_nothing_else():
    cn = market_rules(_cfg("backtest.market=cn"))
    two = cn.scaled(2.0)
    assert (two.open_cost, two.close_cost, two.min_cost, two.impact_cost) == (0.002, 0.003, 10.0, 0.2)
    assert (two.limit_threshold, two.trade_unit, two.volume_limit) == (cn.limit_threshold, cn.trade_unit, 0.1)
    assert cn.scaled(0.0).open_cost == cn.scaled(0.0).impact_cost == 0.0
