"""Market rules for the backtest: presets per market (`backtest.market`), overridden by the config's values.

A preset sets the daily price limit (only A-shares have one), the lot size Qlib's exchange rounds orders to,
trading costs, the trading days a year and a week that annualise returns (`backtest/annualization.py`), whether
a single series may be sold short (`backtest/single.py`), and the default benchmark. A value set in the config
wins; `None` in the config means "the market's".
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
    days_per_year: int  # trading days: Qlib's 238 for A-shares, 252 US, 246 HK, 365 crypto, 260 forex (Mon-Fri)
    days_per_week: int  # what a week of the calendar holds: 5, or 7 around the clock
    short: bool  # one series: sell short on a falling forecast (else stay flat)
    note: str


FX_NOTE = "forex: 24 hours, 5 days a week, no price limit, fractional amounts unless backtest.trade_unit sets a lot"
MARKETS = {
    "cn": MarketRules(0.095, 100, 0.001, 0.0015, 5.0, 238, 5, False, "A-shares: 10% daily limit, lots of 100 shares"),
    "us": MarketRules(None, 1, 0.0005, 0.0005, 1.0, 252, 5, False, "US stocks: no price limit, whole shares"),
    "hk": MarketRules(None, 100, 0.0013, 0.0013, 5.0, 246, 5, False, "Hong Kong: no price limit, lots of 100 shares"),
    "crypto": MarketRules(None, None, 0.001, 0.001, 0.0, 365, 7, True, "crypto: around the clock, fractional amounts"),
    # Forex, Sunday 17:00 to Friday 17:00 New York: five 24-hour trading days a week. 1 bp a side is about half
    # EUR/USD's spread; set backtest.open_cost and close_cost to your broker's spread and commission.
    "fx": MarketRules(None, None, 0.0001, 0.0001, 0.0, 260, 5, True, FX_NOTE),
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
        days_per_week=preset.days_per_week,
        short=preset.short if b.short is None else b.short,
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
