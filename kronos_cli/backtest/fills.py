"""What a portfolio simulation could not trade: orders Qlib's exchange filled in part or not at all (volume cap,
cash or lot), and trades the strategy wanted but could not send (a price limit or a suspension), counted per run.

TopkDropout asks Qlib's exchange whether a symbol is tradable before it sends an order, and skips it when not: a
buy it wanted is then refused without an order, and a holding stays locked (it could not be sold that bar). Orders
it did send are matched with Qlib's order indicators: the amount asked and the amount dealt. An order dealt in
part or not at all is put down to the volume cap when it asked for more than the cap (the share of the bar's
volume, `backtest.volume_limit`), else to cash or rounding to the lot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

PRICE_LIMIT, SUSPENSION = "price limit", "suspension"
REL_TOL = 1e-9  # an amount dealt this close to the amount asked is a full fill (float rounding of adjusted shares)


@dataclass
class Fills:
    orders: int = 0  # orders sent to the exchange
    filled: int = 0  # filled in full
    partial: int = 0  # filled in part
    unfilled: int = 0  # not filled at all
    volume_capped: int = 0  # of the partial and unfilled: asked for more than the volume cap
    ordered_value: float = 0.0  # amount asked x the deal price, summed, in the account's currency
    filled_value: float = 0.0  # amount dealt x the deal price, summed
    refused_buys: dict[str, int] = field(default_factory=dict)  # wanted, not sent: by reason (limit, suspension)
    locked_holdings: dict[str, int] = field(default_factory=dict)  # (bar, held symbol) that could not be sold

    @property
    def fill_rate(self) -> float:
        """The value dealt over the value asked, of the orders sent (NaN without orders)."""
        return self.filled_value / self.ordered_value if self.ordered_value else float("nan")

    def to_json(self) -> dict:
        return {**asdict(self), "fill_rate": self.fill_rate}


def count_fills(orders: pd.DataFrame, refusals: pd.DataFrame) -> Fills:
    """`orders`: datetime, instrument, amount, deal_amount, price, cap (NaN: no cap); `refusals`: datetime,
    instrument, reason, held (whether it was held at the bar's start)."""
    asked, dealt = orders["amount"].to_numpy(float), orders["deal_amount"].to_numpy(float)
    price = np.nan_to_num(orders["price"].to_numpy(float))
    full = dealt >= asked * (1 - REL_TOL)
    none = dealt <= asked * REL_TOL
    short = ~full
    capped = short & (asked > orders["cap"].to_numpy(float) * (1 + REL_TOL))  # NaN cap: False
    held = refusals["held"].to_numpy(bool) if len(refusals) else np.zeros(0, bool)
    return Fills(
        orders=len(orders),
        filled=int(full.sum()),
        partial=int((short & ~none).sum()),
        unfilled=int(none.sum()),
        volume_capped=int(capped.sum()),
        ordered_value=float((asked * price).sum()),
        filled_value=float((dealt * price).sum()),
        refused_buys=_by_reason(refusals[~held]) if len(refusals) else {},
        locked_holdings=_by_reason(refusals[held]) if len(refusals) else {},
    )


def _by_reason(rows: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in rows["reason"].value_counts().sort_index().items()}


def series_fills(traded: np.ndarray, waiting: np.ndarray) -> Fills:
    """One series' sign strategy: every trade fills in full (fractional amounts, no cap; `traded`: the value of each
    bar's trade); a change of position that waited for a bar with a deal price (a suspension; `waiting`: 1 while
    flat, 2 while holding) is refused, counted once per bar it waited."""
    n, value = int((traded > 0).sum()), float(traded.sum())
    refused, locked = int((waiting == 1).sum()), int((waiting == 2).sum())
    return Fills(
        orders=n,
        filled=n,
        ordered_value=value,
        filled_value=value,
        refused_buys={SUSPENSION: refused} if refused else {},
        locked_holdings={SUSPENSION: locked} if locked else {},
    )
