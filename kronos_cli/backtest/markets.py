"""Market rules for the backtest: presets per market (`backtest.market`), overridden by the config's values.

A preset sets the daily price limit (only A-shares have one), the lot size Qlib's exchange rounds orders to,
trading costs, the trading days per year that annualise returns, and the default benchmark. A value set in the
config wins; `None` in the config means "the market's".
"""

from __future__ import annotations

from dataclasses import dataclass

from kronos_cli.config import Config

EQUAL_WEIGHT = "equal-weight"  # the mean bar return of the pool's members at the time
POOL_BENCHMARKS = {"csi300": "SH000300", "csi800": "SH000906", "csi1000": "SH000852"}


@dataclass(frozen=True)
class MarketRules:
    limit_threshold: float | None  # None: no price limit
    trade_unit: float | None  # None: fractional amounts
    open_cost: float
    close_cost: float
    min_cost: float
    days_per_year: int
    note: str


MARKETS = {
    "cn": MarketRules(0.095, 100, 0.001, 0.0015, 5.0, 238, "A-shares: 10% daily limit, lots of 100 shares"),
    "us": MarketRules(None, 1, 0.0005, 0.0005, 1.0, 252, "US stocks: no price limit, whole shares"),
    "hk": MarketRules(None, 100, 0.0013, 0.0013, 5.0, 246, "Hong Kong: no price limit, lots of 100 shares"),
    "crypto": MarketRules(None, None, 0.001, 0.001, 0.0, 365, "crypto: around the clock, fractional amounts"),
}


def market_rules(cfg: Config) -> MarketRules:
    """The market's preset with the config's explicit values in place (a limit or lot of 0 turns it off)."""
    b = cfg.backtest
    preset = MARKETS[b.market]

    def pick(key: str, off_when_zero: bool = False):
        value = getattr(b, key)
        if value is None:
            return getattr(preset, key)
        return None if off_when_zero and value == 0 else value

    return MarketRules(
        limit_threshold=pick("limit_threshold", True),
        trade_unit=pick("trade_unit", True),
        open_cost=pick("open_cost"),
        close_cost=pick("close_cost"),
        min_cost=pick("min_cost"),
        days_per_year=preset.days_per_year,
        note=preset.note,
    )


def benchmark_for(cfg: Config) -> str:
    """`backtest.benchmark`, else the index of a known A-share pool, else the pool's equal-weight return."""
    if cfg.backtest.benchmark:
        return cfg.backtest.benchmark
    pool = cfg.data.instrument if isinstance(cfg.data.instrument, str) else None
    if cfg.backtest.market == "cn" and cfg.data.source == "qlib" and pool in POOL_BENCHMARKS:
        return POOL_BENCHMARKS[pool]
    return EQUAL_WEIGHT
