"""Pool membership over time: which symbols are in the universe on which days.

A membership span is a pair of dates; a symbol is a member on every bar whose date lies inside one of its
spans (both ends included). Qlib's pool files carry these spans (`SYMBOL<TAB>start<TAB>end`, a line per span);
a list of symbols or a CSV source makes every symbol a member throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_cli.market.stamps import range_end

Span = tuple[pd.Timestamp, pd.Timestamp]


@dataclass
class Universe:
    spans: dict[str, list[Span]] = field(default_factory=dict)  # symbol -> membership spans, sorted

    @classmethod
    def always(cls, symbols: list[str], start, end) -> Universe:
        """Every symbol a member from start to end."""
        span = (pd.Timestamp(start), pd.Timestamp(end))
        return cls({s: [span] for s in symbols})

    def symbols(self) -> list[str]:
        return sorted(self.spans)

    def member_mask(self, symbol: str, timestamps_ns: np.ndarray) -> np.ndarray:
        """Whether `symbol` is a member at each timestamp (ns); the end date of a span includes that day."""
        ts = np.asarray(timestamps_ns, dtype=np.int64)
        mask = np.zeros(len(ts), dtype=bool)
        for start, end in self.spans.get(symbol, []):
            lo, hi = pd.Timestamp(start).normalize().value, range_end(pd.Timestamp(end).normalize()).value
            if len(ts) and lo <= ts.min() and ts.max() <= hi:  # a span over every bar (a CSV symbol's own)
                return np.ones(len(ts), dtype=bool)
            mask |= (ts >= lo) & (ts <= hi)
        return mask

    def describe(self, symbol: str) -> list[list[str]]:
        return [[f"{a:%Y-%m-%d}", f"{b:%Y-%m-%d}"] for a, b in self.spans.get(symbol, [])]
