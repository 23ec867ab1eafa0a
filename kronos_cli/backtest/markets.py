"""Market rules for the backtest: presets per market (`backtest.market`), overridden by the config's values.

A preset sets the daily price limit (only A-shares have one), the lot size Qlib's exchange rounds orders to,
trading costs, market impact and the volume limit (below), the trading days a year and a week that annualise
returns (`backtest/annualization.py`), whether a single series may be sold short (`backtest/single.py`), and the
default benchmark. A value set in the config wins; `None` in the config means "the market's".

Impact and liquidity are Qlib's exchange's own: an order of value v in a bar that traded value V (its volume at
the deal price) pays `impact_cost` x (v / V)^2 of v on top of its open or close cost, and may take at most
`volume_limit` of the bar's volume (of the day's, less what was already dealt that day, for daily bars).
The stock and crypto presets take Qlib's recommended impact coefficient, 0.1 (`qlib.backtest.exchange.Exchange`:
"A recommended value is 0.1"; Zipline's `VolumeShareSlippage` uses the same quadratic form and 0.1), so an order
of 10% of a bar's volume pays 0.1 x 0.1^2 = 10 bp more; and a cap of 10% of a bar's volume, the participation
rate commonly held to be the most a fund can take without moving the price (Qlib's own example caps at 20% of
the cumulative volume, Zipline's default at 2.5% of a minute bar). Forex has neither: its bar volume is one
broker's tick count, not the market's traded amount. As in Qlib, the cap and the impact of an order at a daily
bar's open use that day's whole volume, known only at its close.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    impact_cost: float = 0.0  # Qlib's quadratic impact coefficient: impact_cost x (order / bar value)^2 of a trade
    volume_limit: float | None = None  # the largest share of a bar's volume one order may take; None: no cap

    def scaled(self, multiplier: float) -> MarketRules:
        """The same rules with every cost (open, close, minimum and impact) times `multiplier`."""
        return replace(
            self,
            open_cost=self.open_cost * multiplier,
            close_cost=self.close_cost * multiplier,
            min_cost=self.min_cost * multiplier,
            impact_cost=self.impact_cost * multiplier,
        )


FX_NOTE = "forex: 24 hours, 5 days a week, no price limit, fractional amounts unless backtest.trade_unit sets a lot"
IMPACT, VOLUME = 0.1, 0.1  # Qlib's recommended impact coefficient; a 10% participation cap (see above)
MARKETS = {
    "cn": MarketRules(
        0.095, 100, 0.001, 0.0015, 5.0, 238, 5, False, "A-shares: 10% daily limit, lots of 100 shares", IMPACT, VOLUME
    ),
    "us": MarketRules(
        None, 1, 0.0005, 0.0005, 1.0, 252, 5, False, "US stocks: no price limit, whole shares", IMPACT, VOLUME
    ),
    "hk": MarketRules(
        None, 100, 0.0013, 0.0013, 5.0, 246, 5, False, "Hong Kong: no price limit, lots of 100 shares", IMPACT, VOLUME
    ),
    "crypto": MarketRules(
        None, None, 0.001, 0.001, 0.0, 365, 7, True, "crypto: around the clock, fractional amounts", IMPACT, VOLUME
    ),
    # Forex, Sunday 17:00 to Friday 17:00 New York: five 24-hour trading days a week. 1 bp a side is about half
    # EUR/USD's spread; set backtest.open_cost and close_cost to your broker's spread and commission.
    "fx": MarketRules(None, None, 0.0001, 0.0001, 0.0, 260, 5, True, FX_NOTE),
}


def market_rules(cfg: Config) -> MarketRules:
    """The market's preset with the config's explicit values in place (a limit, lot or volume limit of 0 turns it
    off)."""
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
        impact_cost=pick("impact_cost"),
        volume_limit=pick("volume_limit", True),
    )


def benchmark_for(cfg: Config) -> str:
    """`backtest.benchmark`, else the index of a known A-share pool, else the pool's equal-weight return."""
    if cfg.backtest.benchmark:
        return cfg.backtest.benchmark
    pool = cfg.data.instrument if isinstance(cfg.data.instrument, str) else None
    if cfg.backtest.market == "cn" and cfg.data.source == "qlib" and pool in POOL_BENCHMARKS:
        return POOL_BENCHMARKS[pool]
    return EQUAL_WEIGHT
