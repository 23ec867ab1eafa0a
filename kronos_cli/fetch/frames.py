"""Fetched bars in one shape, and joining a new download onto what is stored: the overlap must match.

A source's bars are a DataFrame indexed by wall-clock time (the exchange's local time; UTC for crypto), sorted and
unique, with the columns `COLUMNS`: adjusted open, high, low, close, volume (in shares or coins; adjusted volume
is the raw volume divided by the factor, as Qlib's), amount (in the quote currency) and `factor`, the adjusted
price over the raw price (Qlib's `$factor`; 1 where the source does not adjust).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.market.bars import FEATURES, amount_from_volume

COLUMNS = (*FEATURES, "factor")
RTOL = 1e-5  # a stored value read back (float32 in a Qlib provider, shortest decimals in a CSV) matches within this
OVERLAP_BARS = 5  # stored bars downloaded again with the tail, to check that the source has not revised them


def bar_frame(index, open_, high, low, close, volume, amount=None, factor=None) -> pd.DataFrame:
    """The canonical frame from column arrays (amount from volume when the source gives none; factor 1)."""
    prices = np.column_stack([open_, high, low, close]).astype(np.float64)
    volume = np.asarray(volume, dtype=np.float64)
    amount = amount_from_volume(prices, volume) if amount is None else np.asarray(amount, dtype=np.float64)
    factor = np.ones(len(volume)) if factor is None else np.asarray(factor, dtype=np.float64)
    df = pd.DataFrame(
        np.column_stack([prices, volume, amount, factor]), index=pd.DatetimeIndex(index).as_unit("ns"), columns=COLUMNS
    )
    df.index.name = "timestamps"
    df = df[~df.index.duplicated(keep="last")].sort_index()
    return df[np.isfinite(df["close"].to_numpy())]


@dataclass(frozen=True)
class Revision:
    """Stored bars that the source now reports differently (a split or dividend adjusted since, or a corrected
    print): how many, and the first of them."""

    bars: int
    when: pd.Timestamp
    column: str
    stored: float
    now: float | None  # None: the source no longer has that bar

    def describe(self) -> str:
        now = "gone" if self.now is None else f"{self.now:.6g}"
        first = f"{self.when} {self.column} {self.stored:.6g} -> {now}"
        return f"{self.bars} stored bar(s) revised by the source, first {first}"


def revision(stored: pd.DataFrame, new: pd.DataFrame) -> Revision | None:
    """Whether the stored bars that `new` covers again are the same (within RTOL), else the first difference."""
    if stored.empty or new.empty:
        return None
    lo, hi = max(stored.index[0], new.index[0]), stored.index[-1]
    old = stored.loc[(stored.index >= lo) & (stored.index <= hi)]
    if old.empty:
        return None
    now = new.reindex(old.index)
    a, b = old[list(COLUMNS)].to_numpy(), now[list(COLUMNS)].to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~np.isclose(a, b, rtol=RTOL, atol=1e-8) & ~(np.isnan(a) & np.isnan(b))
    rows = bad.any(axis=1)
    if not rows.any():
        return None
    i = int(np.argmax(rows))
    j = int(np.argmax(bad[i]))
    value = None if np.isnan(b[i, j]) and now.iloc[i].isna().all() else float(b[i, j])
    return Revision(int(rows.sum()), old.index[i], COLUMNS[j], float(a[i, j]), value)


def tail_after(stored: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """The bars of `new` after the last stored one."""
    return new if stored is None or stored.empty else new.loc[new.index > stored.index[-1]]
