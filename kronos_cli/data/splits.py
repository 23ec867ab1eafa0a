"""Where each split's windows may look: its target range, minus the embargo after the split before it.

Splits come in time order (train, val, test) and never overlap (the config refuses that). Windows belong to a
split by the bars they forecast. Between consecutive splits `embargo` market bars (default: the predict window)
belong to no split, so no window or label of one split touches the bars the next one is scored on; val's
signal days also stop where their label would leave the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data.manifest import SPLITS
from kronos_cli.market.stamps import range_end


@dataclass(frozen=True)
class SplitRange:
    name: str
    lo: int  # ns: the earliest target (and signal day) allowed, after the embargo
    hi: int  # ns: the latest target allowed
    hi_pos: int  # calendar index of the last market bar at or before hi
    embargoed: int  # market bars at the range's start left out by the embargo
    final: bool  # the last split: its signal days run to the end of the data, labels or not

    def origin_mask(self, ts: np.ndarray, calpos: np.ndarray, predict: int) -> np.ndarray:
        """Signal days of this split: inside the range, and for an earlier split with the label inside it too
        (entry on the next bar, exit `predict` bars after that)."""
        inside = (ts >= self.lo) & (ts <= self.hi)
        return inside if self.final else inside & (calpos + 1 + predict <= self.hi_pos)

    def describe(self) -> dict:
        return {
            "effective_start": str(pd.Timestamp(self.lo)),
            "end": str(pd.Timestamp(self.hi)),
            "embargoed_bars": self.embargoed,
        }


def embargo_bars(d: DataConfig) -> int:
    return d.predict_window if d.embargo is None else d.embargo


def plan_splits(d: DataConfig, calendar: np.ndarray) -> dict[str, SplitRange]:
    """The effective range of every split on the market calendar (ns, the market's own bars only)."""
    e = embargo_bars(d)
    out: dict[str, SplitRange] = {}
    prev_hi_pos = None
    for i, split in enumerate(SPLITS):
        a, b = getattr(d, f"{split}_time_range")
        lo, hi = pd.Timestamp(a).value, range_end(b).value
        first = int(np.searchsorted(calendar, lo, side="left"))
        embargoed = 0
        if prev_hi_pos is not None and first <= prev_hi_pos + e:
            embargoed, first = prev_hi_pos + e + 1 - first, prev_hi_pos + e + 1
        hi_pos = int(np.searchsorted(calendar, hi, side="right")) - 1
        if first >= len(calendar) or first > hi_pos:
            if embargoed:
                raise KronosError(
                    f"data.embargo of {e} bars leaves no bar of the {split} split ({a}..{b}); lower data.embargo "
                    f"or widen data.{split}_time_range"
                )
            raise KronosError(f"data.{split}_time_range {a}..{b} holds no bar of the market calendar; adjust it")
        out[split] = SplitRange(split, int(calendar[first]), hi, hi_pos, embargoed, i == len(SPLITS) - 1)
        prev_hi_pos = hi_pos
    return out
