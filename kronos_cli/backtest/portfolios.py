"""The portfolios a backtest trades, one per signal, and their scores: Qlib's TopkDropout over a pool, or the sign
of the forecast on a single series against its buy and hold (`single`); a warning where costs exceed the gross
return."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from kronos_cli.backtest import qlib_backtest
from kronos_cli.backtest.annualization import BarsAYear
from kronos_cli.backtest.fills import Fills
from kronos_cli.backtest.markets import MarketRules, market_rules
from kronos_cli.backtest.single import Costs, sign_strategy
from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.metrics.portfolio import portfolio_stats
from kronos_cli.runtime.split_forecasts import Progress

log = logging.getLogger(__name__)
TOPK = "TopkDropout"


@dataclass
class Portfolios:
    strategy: str  # what traded: TopkDropout, or long/short (long/flat) on the forecast's sign
    rules: str  # the strategy's rules in words
    benchmark: str
    stats: dict[str, dict[str, dict[str, float]]]  # signal -> with_cost, without_cost, excess_..., qlib_risk_...
    bars: dict[str, pd.DataFrame]  # signal -> per bar: return (before cost), cost, bench, turnover
    positions: pd.DataFrame
    bench_stats: dict[str, float]
    backtest_range: list[str]
    notes: list[str]
    fills: dict[str, Fills]  # signal -> orders filled, in part, refused


Run = Callable[[pd.Series, MarketRules, float], tuple[pd.DataFrame, pd.DataFrame, Fills]]


@dataclass
class Simulator:
    """One signal's portfolio over the backtest range, with given market rules (costs) and capital: `run(signal,
    rules, account)` gives the bar report, the positions and the fills. Built once; every signal and every
    capacity or cost level of a backtest runs through it."""

    strategy: str
    rules: str  # in words
    benchmark: str
    start: pd.Timestamp
    end: pd.Timestamp
    notes: list[str]
    run: Run
    series: str | None = None  # one series traded on its sign (no volume cap or impact: capacity does not apply)


def widest_pool(keys: pd.MultiIndex) -> int:
    """The most symbols with a signal on one bar, of (datetime, instrument) keys."""
    return int(keys.get_level_values("datetime").value_counts().max()) if len(keys) else 0


def check_topk(cfg: Config, symbols: int) -> None:
    """TopkDropout needs more symbols than it holds: holding all of them, it can only sell `n_drop` and buy them
    back a bar later, paying costs for nothing."""
    b = cfg.backtest
    if b.topk >= symbols:
        raise KronosError(
            f"backtest.topk={b.topk} holds every one of the {symbols} symbols that have a signal on a bar, so "
            f"TopkDropout could only sell backtest.n_drop={b.n_drop} of them and buy them back, paying costs for "
            f"nothing; set backtest.topk below {symbols} (topk=1 n_drop=1 for two symbols) or add symbols"
        )


def one_series(cfg: Config, keys: pd.MultiIndex, start: pd.Timestamp, end: pd.Timestamp) -> str | None:
    """The symbol, when the (datetime, instrument) signals between `start` and `end` are of one symbol (traded on
    its forecast's sign); else None (TopkDropout), checked to have more symbols than it holds."""
    when = keys.get_level_values("datetime")
    inside = keys[(when >= start) & (when <= end)]
    names = inside.get_level_values("instrument").unique()
    if len(names) == 1:
        return str(names[0])
    check_topk(cfg, widest_pool(inside))
    return None


def simulator(cfg: Config, indexed: pd.DataFrame, bench: str) -> Simulator:
    """TopkDropout through Qlib's exchange over the backtest range, or the sign strategy on one series."""
    b = cfg.backtest
    start, end, notes = qlib_backtest.trading_range(cfg, indexed.index.get_level_values("datetime").unique())
    series = one_series(cfg, indexed.index, start, end)
    if series is not None:
        return _sign_simulator(cfg, series, start, end, notes)
    market = qlib_backtest.QlibMarket(cfg, start, end, bench)
    rules = f"Qlib's TopkDropout: topk {b.topk}, n_drop {b.n_drop}, hold_thresh {b.hold_thresh}"
    return Simulator(TOPK, rules, bench, start, end, notes, market.run)


def trade(
    cfg: Config,
    indexed: pd.DataFrame,
    bench: str,
    year: BarsAYear,
    progress: Progress | None = None,
    sim: Simulator | None = None,
) -> Portfolios:
    """Every signal's portfolio with the market's rules and `backtest.account`, scored with `year` and
    `backtest.accumulation`, through `sim` (built here when None)."""
    b, rules = cfg.backtest, market_rules(cfg)
    sim = sim or simulator(cfg, indexed, bench)
    stats, bars, positions, fills, notes = {}, {}, [], {}, list(sim.notes)
    for i, name in enumerate(b.signals):
        if progress:
            progress(i, len(b.signals), f"{sim.strategy} backtest of {name}")
        report, held, fills[name] = sim.run(indexed[name], rules, b.account)
        stats[name] = score(report, year, b.accumulation)
        bars[name] = pd.DataFrame({c: report[c] for c in ("return", "cost", "bench", "turnover")})
        positions.append(held.assign(signal=name))
        notes += [w for w in [cost_warning(name, stats[name], sim.strategy)] if w]
    if progress:
        progress(len(b.signals), len(b.signals), f"{sim.strategy} backtests done")
    bench_bars = next(iter(bars.values()))["bench"] if bars else pd.Series(dtype=float)
    return Portfolios(
        strategy=sim.strategy,
        rules=sim.rules,
        benchmark=sim.benchmark,
        stats=stats,
        bars=bars,
        positions=pd.concat(positions, ignore_index=True) if positions else pd.DataFrame(),
        bench_stats=portfolio_stats(bench_bars, periods=year.bars, accumulation=b.accumulation),
        backtest_range=[qlib_backtest.stamp(sim.start), qlib_backtest.stamp(sim.end)],
        notes=notes,
        fills=fills,
    )


def _sign_simulator(cfg: Config, name: str, start: pd.Timestamp, end: pd.Timestamp, notes: list[str]) -> Simulator:
    """The sign strategy on one series, its rules in words, buy and hold as its benchmark, and a note when a
    configured benchmark is left unused."""
    b, short = cfg.backtest, market_rules(cfg).short
    prices = qlib_backtest.series_prices(cfg, name, start, end)
    strategy = f"long/{'short' if short else 'flat'} on the forecast's sign"
    words = (
        f"one series ({name}): long when the signal of the bar before is above zero, "
        f"{'short' if short else 'flat'} below it (backtest.short), traded at the {b.deal_price} and held "
        f"until the sign changes; simulated bar by bar with the market's costs, fractional amounts, no price "
        f"limit, volume cap or impact, as TopkDropout has nothing to rank in one series"
    )
    if b.benchmark:
        notes = [*notes, f"backtest.benchmark {b.benchmark} is not used: one series is compared with its buy and hold"]

    def run(signal: pd.Series, rules: MarketRules, account: float) -> tuple[pd.DataFrame, pd.DataFrame, Fills]:
        mine = signal.xs(name, level="instrument")  # other symbols may have signals outside the range
        costs = Costs(rules.open_cost, rules.close_cost, rules.min_cost, account)
        report, held, fills = sign_strategy(mine, prices, b.deal_price, costs, rules.short)
        return report, held.assign(instrument=name)[["datetime", "instrument", "amount", "weight"]], fills

    return Simulator(strategy, words, f"buy and hold {name}", start, end, notes, run, series=name)


def score(report: pd.DataFrame, year: BarsAYear, accumulation: str) -> dict[str, dict[str, float]]:
    """A portfolio report's statistics with and without cost, absolute and over the benchmark, and Qlib's risk
    analysis of the excess (Qlib's summed convention, whatever `accumulation` says)."""
    net, excess = report["return"] - report["cost"], report["return"] - report["bench"]

    def stats(r: pd.Series, turnover: pd.Series | None = None) -> dict[str, float]:
        return portfolio_stats(r, turnover, year.bars, accumulation)

    return {
        "with_cost": stats(net, report["turnover"]),
        "without_cost": stats(report["return"], report["turnover"]),
        "excess_with_cost": stats(excess - report["cost"]),
        "excess_without_cost": stats(excess),
        "qlib_risk_excess_with_cost": qlib_backtest.qlib_risk(excess - report["cost"], year.bars),
        "qlib_risk_excess_without_cost": qlib_backtest.qlib_risk(excess, year.bars),
    }


def cost_warning(name: str, stats: dict[str, dict[str, float]], strategy: str) -> str | None:
    """A warning, logged and returned, when the costs of trading take more than the strategy made before them."""
    net, gross = stats["with_cost"], stats["without_cost"]
    if not net or not gross:
        return None
    drag = gross["total_return"] - net["total_return"]
    if drag <= 0 or drag <= abs(gross["total_return"]):
        return None
    fix = (
        "hold longer (a larger backtest.hold_thresh, a smaller backtest.n_drop)"
        if strategy == TOPK
        else "each change of the forecast's sign trades the whole account"
    )
    text = (
        f"{name}: trading costs of {drag:.2%} exceed the gross return of {gross['total_return']:+.2%} "
        f"({net['total_return']:+.2%} after costs), with {net.get('turnover', float('nan')):.2f} of the account "
        f"traded a bar on average; {fix}, or check backtest.open_cost and close_cost"
    )
    log.warning(text)
    return text
