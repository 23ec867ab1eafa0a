"""One series: trade the sign of its forecast, long when it points up and short or flat when it points down, in a
documented bar-by-bar simulation with the market's costs, beside buy and hold of the same series.

TopkDropout ranks a pool and has nothing to rank in one series, and Qlib's exchange holds no negative amounts, so
the strategy is simulated here, on the same prices and timing as Qlib's backtest:
- the signal of bar t sets the position of bar t+1: +1 above zero, -1 (short) or 0 (flat) below, 0 at zero or
  where the series has no signal (it is not in the pool then);
- a position changes at bar t+1's deal price (`backtest.deal_price`, the bar's open by default) into the account's
  whole equity, and is then held, not rebalanced, until the sign changes;
- a buy pays `open_cost` and a sale `close_cost` of the traded value, at least `min_cost`; a new position is
  equity / (1 + that rate), so that it and its cost fit in the equity, as Qlib sizes an order; amounts are
  fractional and there is no price limit (the market's lot and limit are Qlib exchange rules left out here);
- a bar with no deal price (a suspension) trades nothing (the change waits, and is counted as a refused trade),
  and a bar with no close keeps the last close;
- there is no volume cap and no market impact (Qlib exchange rules, like the lot and limit), so the capital
  does not change the returns and a capacity curve does not apply; cost multipliers do (`backtest/sensitivity.py`).
Holding a series long, this is Qlib's executor bar for bar (`tests/backtest/test_single.py`). Each bar reports
what Qlib's portfolio report does: `return` before cost, `cost` (costs over the equity at the last close),
`turnover` (traded value over that equity) and `bench`, buy and hold's return after its one purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.backtest.fills import Fills, series_fills


@dataclass(frozen=True)
class Costs:
    open_cost: float  # of a buy's value
    close_cost: float  # of a sale's value
    min_cost: float  # per trade, in the account's currency
    account: float  # the starting equity


def sign_positions(signal: pd.Series, bars: pd.DatetimeIndex, short: bool) -> np.ndarray:
    """The position of every bar: the sign of the previous bar's signal (+1, -1 or 0 when `short` is off; 0 where
    there is none)."""
    side = np.sign(signal.reindex(bars).to_numpy(dtype=float))
    side = np.nan_to_num(side, nan=0.0)
    if not short:
        side = np.maximum(side, 0.0)
    return np.r_[0.0, side[:-1]]


def simulate(positions: np.ndarray, deal: np.ndarray, close: np.ndarray, costs: Costs) -> pd.DataFrame:
    """Per bar: return before cost, cost, turnover, the amount held and its weight at the close, the value traded
    and whether a change of position waited for want of a deal price (1 while flat, 2 while holding), of holding
    `positions` (fractions of equity: +1, 0, -1) entered at `deal` prices and valued at `close` prices."""
    out = np.zeros((len(positions), 7))  # return before cost, cost, turnover, amount, weight, traded, waiting
    cash, qty, held, mark, equity = costs.account, 0.0, 0.0, np.nan, costs.account
    for s, want in enumerate(positions):
        fee = traded = waiting = 0.0
        if want != held and not np.isfinite(deal[s]):
            waiting = 2.0 if held else 1.0
        elif want != held:
            rate = costs.open_cost if want > held else costs.close_cost
            target = want * (cash + qty * deal[s]) / (deal[s] * (1 + rate))  # its cost fits in the equity
            traded = abs(target - qty) * deal[s]
            fee = max(traded * rate, costs.min_cost)
            cash -= (target - qty) * deal[s] + fee
            qty, held = target, want
        if np.isfinite(close[s]) or not np.isfinite(mark):
            mark = close[s] if np.isfinite(close[s]) else deal[s]  # a suspended bar keeps the last close
        value = qty * mark if qty else 0.0
        now = cash + value
        weight = value / now if qty else 0.0
        out[s] = (now + fee) / equity - 1, fee / equity, traded / equity, qty, weight, traded, waiting
        equity = now
    return pd.DataFrame(out, columns=["return", "cost", "turnover", "amount", "weight", "traded", "waiting"])


def sign_strategy(
    signal: pd.Series, prices: pd.DataFrame, deal_price: str, costs: Costs, short: bool
) -> tuple[pd.DataFrame, pd.DataFrame, Fills]:
    """The sign strategy's report on `prices` (open and close per bar, indexed by datetime) with buy and hold as
    its `bench`, the position at each bar's close (datetime, amount, weight; short: negative) and its fills."""
    bars = pd.DatetimeIndex(prices.index)
    deal, close = prices[deal_price].to_numpy(dtype=float), prices["close"].to_numpy(dtype=float)
    sim = simulate(sign_positions(signal, bars, short), deal, close, costs).set_index(bars)
    hold = simulate(np.ones(len(bars)), deal, close, costs)
    report = sim[["return", "cost", "turnover"]].assign(bench=(hold["return"] - hold["cost"]).to_numpy())
    held = sim.loc[sim["amount"] != 0, ["amount", "weight"]].rename_axis("datetime").reset_index()
    return report, held, series_fills(sim["traded"].to_numpy(), sim["waiting"].to_numpy())
