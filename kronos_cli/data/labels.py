"""What actually happened after each signal day, from raw (unclipped) prices; NaN where the future is unknown.

Timing, for a signal computed at the close of bar t (its origin):
- the label is the return a position opened on the next bar can capture: the deal price (open or close) of
  bar t+1 to the deal price of bar t+1+P, P being the predict window. Qlib's TopkDropout trades a signal of
  bar t on bar t+1 at that price, so the IC label is what the strategy can earn over P bars;
- the realised path is close(t+h) / close(t) - 1 for h = 1..P, what the forecast's close path predicts.
Bars are the market calendar's: a stock without a bar there (suspended, delisted, not yet known) gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins
from kronos_cli.market.bars import FEATURES

CLOSE = FEATURES.index("close")


@dataclass(frozen=True)
class Realised:
    label: np.ndarray  # (N,) deal(t+1+P) / deal(t+1) - 1
    path: np.ndarray  # (N, P) close(t+h) / close(t) - 1
    convention: str

    @property
    def known(self) -> np.ndarray:
        return np.isfinite(self.label)


def _price_at(arrays: DatasetArrays, symbols: np.ndarray, positions: np.ndarray, column: int) -> np.ndarray:
    rows = arrays.rows_at(symbols, positions)
    out = np.full(len(rows), np.nan)
    hit = rows >= 0
    out[hit] = np.asarray(arrays.features[rows[hit], column], dtype=np.float64)
    return out


def realised(arrays: DatasetArrays, origins: Origins, predict: int, deal_price: str = "open") -> Realised:
    deal = FEATURES.index(deal_price)
    pos = np.asarray(arrays.calpos[origins.rows])
    entry = _price_at(arrays, origins.symbols, pos + 1, deal)
    exit_ = _price_at(arrays, origins.symbols, pos + 1 + predict, deal)
    last = np.asarray(arrays.features[origins.rows, CLOSE], dtype=np.float64)
    path = np.stack([_price_at(arrays, origins.symbols, pos + h, CLOSE) for h in range(1, predict + 1)], axis=1)
    convention = (
        f"{deal_price} of the bar after the signal day to the {deal_price} {predict} bars later "
        f"(what a trade on the next bar at {deal_price} captures); raw prices, not clipped"
    )
    return Realised(exit_ / entry - 1, path / last[:, None] - 1, convention)
