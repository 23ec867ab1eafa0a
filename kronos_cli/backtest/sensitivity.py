"""Capacity and cost sensitivity: the first signal's portfolio simulated again at other capital levels
(`backtest.capacity`) and cost multiples (`backtest.cost_multipliers`), from the signals the backtest already has.

Only the portfolio simulation reruns: the forecasts behind the signals were made (or read from the forecast
cache) once, before any level, and Qlib's quotes are loaded once per backtest range (`qlib_backtest.QlibMarket`).
A level equal to the backtest's own (the configured account, 1x the costs) is the backtest's run, not a rerun.

- Capacity: at each capital, TopkDropout with the market's rules; larger orders take larger shares of each bar's
  volume, so they pay more impact and more of them are cut by the volume cap (a lower fill rate). The capital at
  which the excess return halves is interpolated on log capital between the two levels around the first that
  earns at most half the smallest level's annualised excess return. One series has no volume cap or impact: its
  returns do not depend on the capital, so it has no capacity curve.
- Costs: every cost (open, close, the minimum and the impact coefficient) times each multiple. The break-even cost
  is the flat rate per side, in basis points of the traded value, that would take the whole backtest's summed
  return before cost (over the benchmark, and absolute) to zero at the backtest's own turnover:
  sum(return - bench) / sum(turnover) x 10,000.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kronos_cli.backtest.annualization import BarsAYear
from kronos_cli.backtest.markets import market_rules
from kronos_cli.backtest.portfolios import Portfolios, Simulator, score
from kronos_cli.config import Config
from kronos_cli.core.tables import Table, num, pct
from kronos_cli.runtime.split_forecasts import Progress

log = logging.getLogger(__name__)
BPS = 10_000
COUNTS = ["cut (cap)", "refused"]


@dataclass
class Level:
    """One simulation of the first signal's portfolio: returns are fractions (0.01 = 1%), annualised as the
    backtest's are; turnover is traded value / account value a bar; the fill rate is value dealt / value asked."""

    value: float  # the capital (the account's currency) or the multiple of the costs
    total_return: float
    annualized_return: float
    information_ratio: float
    excess_annualized: float
    excess_ir: float
    turnover: float
    fill_rate: float
    orders: int
    short_filled: int  # orders filled in part or not at all
    volume_capped: int
    refused: int  # trades refused before an order (price limit, suspension) and holdings locked
    seconds: float  # the simulation's wall time (0 for the backtest's own level)


@dataclass
class Sensitivity:
    signal: str  # the signal whose portfolio is simulated
    capacity: list[Level] = field(default_factory=list)
    costs: list[Level] = field(default_factory=list)
    halving_capital: float | None = None  # where the excess return halves; None: not within the levels
    break_even_bps: dict[str, float] = field(default_factory=dict)  # excess, absolute: bp per side
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Sensitivity:
        levels = {k: [Level(**x) for x in d.get(k, [])] for k in ("capacity", "costs")}
        return cls(**{**d, **levels})

    def tables(self) -> list[Table]:
        out = []
        if self.capacity:
            where = f"{self.halving_capital:,.0f}" if self.halving_capital else "no level within the range"
            head = f"excess return halves at a capital of {where} (account currency, interpolated on log capital)"
            out.append(_table(self, self.capacity, "capital", head))
        if self.costs:
            be = self.break_even_bps
            head = f"break-even cost {num(be['excess'], 1)} bp a side over the benchmark, {num(be['absolute'], 1)} bp"
            out.append(_table(self, self.costs, "costs", f"{head} absolute"))
        return out


def _table(s: Sensitivity, levels: list[Level], kind: str, headline: str) -> Table:
    capacity = kind == "capital"
    what = (
        "capital: the starting account, in its currency"
        if capacity
        else "costs: every cost (open, close, minimum, impact) times the multiple; break-even: the flat cost a side, "
        "in bp of the traded value, that takes the summed return before cost to zero at the 1x turnover"
    )
    t = Table(
        f"{'Capacity' if capacity else 'Cost sensitivity'} of {s.signal}: {headline}",
        [kind, "ann. return", "IR", "excess ann.", "excess IR", "turnover", "fill rate", "orders", *COUNTS],
        caption=f"{what}; returns with cost, annualised as above; IR = mean / std x sqrt(bars a year); turnover: "
        f"traded value / account value, a bar; fill rate: value dealt / value asked; cut: orders filled in part or "
        f"not at all (of them, over the volume cap); refused: trades a price limit or suspension stopped before an "
        f"order, and holdings it locked",
    )
    for x in levels:
        label = f"{x.value:,.0f}" if capacity else f"{x.value:g}x"
        t.add(
            label,
            pct(x.annualized_return),
            num(x.information_ratio, 2),
            pct(x.excess_annualized),
            num(x.excess_ir, 2),
            num(x.turnover, 3),
            pct(x.fill_rate, 1),
            f"{x.orders:,}",
            f"{x.short_filled:,} ({x.volume_capped:,})",
            f"{x.refused:,}",
        )
    return t


def sensitivity(
    cfg: Config, indexed: pd.DataFrame, sim: Simulator, traded: Portfolios, year: BarsAYear, progress: Progress | None
) -> Sensitivity | None:
    """The capacity and cost curves of the first signal, or None when neither is asked for."""
    b = cfg.backtest
    if not (b.capacity or b.cost_multipliers):
        return None
    name, rules = b.signals[0], market_rules(cfg)
    out = Sensitivity(signal=name)
    capital = sorted(set(b.capacity)) if sim.series is None else []
    if b.capacity and sim.series is not None:
        out.notes.append(
            f"no capacity curve: one series ({sim.series}) is simulated with no volume cap or impact, so its "
            f"returns do not depend on the capital"
        )
    todo = [("capital", c) for c in capital] + [("costs", m) for m in sorted(set(b.cost_multipliers))]
    for i, (kind, value) in enumerate(todo):
        if progress:
            progress(i, len(todo), f"{kind} {value:g} of {name}")
        if (kind == "capital" and value == b.account) or (kind == "costs" and value == 1):
            level = _level(value, traded.stats[name], traded.fills[name].to_json(), 0.0)  # the backtest's own
        else:
            t0 = time.perf_counter()
            account, scaled = (value, rules) if kind == "capital" else (b.account, rules.scaled(value))
            report, _, fills = sim.run(indexed[name], scaled, account)
            level = _level(value, score(report, year, b.accumulation), fills.to_json(), time.perf_counter() - t0)
        (out.capacity if kind == "capital" else out.costs).append(level)
    if progress:
        progress(len(todo), len(todo), "sensitivity done")
    out.halving_capital = halving_capital(out.capacity)
    if out.costs:
        out.break_even_bps = break_even_bps(traded.bars[name])
    return out


def _level(value: float, stats: dict, fills: dict, seconds: float) -> Level:
    w, e = stats["with_cost"], stats["excess_with_cost"]
    nan = float("nan")
    return Level(
        value=float(value),
        total_return=w.get("total_return", nan),
        annualized_return=w.get("annualized_return", nan),
        information_ratio=w.get("information_ratio", nan),
        excess_annualized=e.get("annualized_return", nan),
        excess_ir=e.get("information_ratio", nan),
        turnover=w.get("turnover", nan),
        fill_rate=fills["fill_rate"],
        orders=fills["orders"],
        short_filled=fills["partial"] + fills["unfilled"],
        volume_capped=fills["volume_capped"],
        refused=sum(fills["refused_buys"].values()) + sum(fills["locked_holdings"].values()),
        seconds=round(seconds, 3),
    )


def halving_capital(levels: list[Level]) -> float | None:
    """The capital at which the annualised excess return falls to half the smallest level's, interpolated on log
    capital; None when the smallest level earns no excess return or no level falls that far."""
    if not levels or not levels[0].excess_annualized > 0:
        return None
    half = levels[0].excess_annualized / 2
    for lo, hi in zip(levels, levels[1:]):
        if hi.excess_annualized <= half:
            share = (lo.excess_annualized - half) / (lo.excess_annualized - hi.excess_annualized)
            return float(10 ** (math.log10(lo.value) + share * (math.log10(hi.value) - math.log10(lo.value))))
    return None


def break_even_bps(bars: pd.DataFrame) -> dict[str, float]:
    """The flat cost per side (bp of the traded value) that takes the summed return before cost to zero at the
    backtest's turnover: over the benchmark (`excess`) and absolute."""
    traded = float(bars["turnover"].sum())
    if not traded > 0:
        return {"excess": float("nan"), "absolute": float("nan")}
    excess = float(np.nansum(bars["return"] - bars["bench"]))
    return {"excess": excess / traded * BPS, "absolute": float(np.nansum(bars["return"])) / traded * BPS}
