"""A symbol's bars into a dataset's rows: cut into segments wherever a bar is missing, appended with their
calendar positions, and the training windows and signal origins each segment holds, per split.

A symbol's calendar positions are a slice of the calendar's (`place`); a split's windows, and its signal days, are
one run of rows found by bisection (`_segment`), so a symbol costs a few array slices.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.data.manifest import ARRAYS, ORIGIN_SPLITS, SPLITS
from kronos_cli.data.splits import SplitRange
from kronos_cli.data.store import NpyAppender
from kronos_cli.data.universe import Universe
from kronos_cli.market.bars import reconcile_candles


def segments(valid: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


@dataclasses.dataclass
class Tally:
    windows: dict[str, int] = dataclasses.field(default_factory=lambda: {s: 0 for s in SPLITS})
    origins: dict[str, int] = dataclasses.field(default_factory=lambda: {s: 0 for s in ORIGIN_SPLITS})
    target_span: dict[str, list[int]] = dataclasses.field(default_factory=lambda: {s: [] for s in SPLITS})
    origin_span: dict[str, list[int]] = dataclasses.field(default_factory=lambda: {s: [] for s in ORIGIN_SPLITS})
    short_segments: int = 0
    missing_rows: int = 0
    repaired_candles: int = 0


class Writer:
    """The arrays of a dataset being built, appended one symbol segment at a time and hashed as they are written."""

    def __init__(self, directory: Path):
        def appender(name: str) -> NpyAppender:
            return NpyAppender(directory / f"{name}.npy", *ARRAYS[name])

        self.features, self.calpos = appender("features"), appender("calpos")
        self.windows = {s: appender(f"windows_{s}") for s in SPLITS}
        self.origins = {s: appender(f"origins_{s}") for s in ORIGIN_SPLITS}
        self.calendar = appender("calendar")

    @property
    def rows(self) -> int:
        return self.features.rows

    def close(self, calendar: np.ndarray) -> dict[str, str]:
        """Write the calendar and close every array; returns each array's SHA-256 (of its data)."""
        self.calendar.append(calendar)
        arrays = {"features": self.features, "calpos": self.calpos, "calendar": self.calendar}
        arrays.update({f"windows_{s}": a for s, a in self.windows.items()})
        arrays.update({f"origins_{s}": a for s, a in self.origins.items()})
        return {name: a.close() for name, a in arrays.items()}


def _segment(
    w: Writer,
    tally: Tally,
    x: np.ndarray,
    ts: np.ndarray,
    calpos: np.ndarray,
    sym: int,
    member: np.ndarray,
    d: DataConfig,
    plan: dict[str, SplitRange],
) -> None:
    """Append one segment's rows, its training windows and its signal origins."""
    look, pred, n, row = d.lookback_window, d.predict_window, len(x), w.rows
    window = look + pred + 1
    w.features.append(x)
    w.calpos.append(calpos)
    if n >= window:
        # Window rel covers rows rel .. rel + window - 1; its targets' first and last bars rise with rel, so a
        # split's windows are one run of rel (then thinned by membership on the last lookback bar).
        first, last = ts[look : n - pred], ts[window - 1 :]
        ok = member[look - 1 : n - pred - 1] if d.universe == "point_in_time" else None
        for s, r in plan.items():
            a, b = int(np.searchsorted(first, r.lo)), int(np.searchsorted(last, r.hi, "right"))
            rel = np.arange(a, max(a, b))
            rel = rel if ok is None else rel[ok[a : max(a, b)]]
            if len(rel):
                w.windows[s].append(_pairs(row + rel, sym))
                tally.windows[s] += len(rel)
                tally.target_span[s] += [int(first[rel[0]]), int(last[rel[-1]])]
    for s in ORIGIN_SPLITS:  # signal days: rows from look - 1 on inside the split's range (the rows' ts rise)
        r = plan[s]
        a, b = max(look - 1, int(np.searchsorted(ts, r.lo))), int(np.searchsorted(ts, r.hi, "right"))
        if a >= b:
            continue
        rel = np.arange(a, b)[member[a:b] & r.origin_mask(ts[a:b], calpos[a:b], pred)]
        if len(rel):
            w.origins[s].append(_pairs(row + rel, sym))
            tally.origins[s] += len(rel)
            tally.origin_span[s] += [int(ts[rel[0]]), int(ts[rel[-1]])]


def _pairs(rows: np.ndarray, sym: int) -> np.ndarray:
    """(n, 2) int64: each row beside the symbol's index."""
    out = np.empty((len(rows), 2), dtype=np.int64)
    out[:, 0], out[:, 1] = rows, sym
    return out


def place(calendar: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Each bar's position in the market calendar (int32, as stored): a slice of it where the bars are a run of its
    bars (a CSV source's always are), else looked up. Every bar is one of the calendar's (a source's bars are on
    its calendar), whose time and stamps the dataset gives the row."""
    a = int(np.searchsorted(calendar, ns[0])) if len(ns) else 0
    if np.array_equal(calendar[a : a + len(ns)], ns):
        return np.arange(a, a + len(ns), dtype=np.int32)
    calpos = np.searchsorted(calendar, ns)
    assert (calendar[np.minimum(calpos, len(calendar) - 1)] == ns).all(), "bars off the market calendar"
    return calpos.astype(np.int32)


def _valid(x: np.ndarray) -> np.ndarray:
    """Rows whose values are all finite, prices positive, volume and amount not negative (column by column:
    numpy reduces along a row of six slowly), after a look at the extremes, which vouch for most series whole
    (NaN fails each comparison; the whole array's extremes first: a column's, strided, take five times longer)."""
    with np.errstate(invalid="ignore"):
        if len(x) and x.max() < np.inf and (x.min() > 0 or (x[:, :4].min() > 0 and x[:, 4:].min() >= 0)):
            return np.ones(len(x), dtype=bool)
        ok = np.ones(len(x), dtype=bool)
        for i in range(x.shape[1]):
            ok &= ((x[:, i] > 0) if i < 4 else (x[:, i] >= 0)) & (x[:, i] < np.inf)
    return ok


def append_symbol(
    w: Writer,
    tally: Tally,
    name: str,
    ns: np.ndarray,
    x: np.ndarray,
    sym: int,
    calendar: np.ndarray,
    universe: Universe,
    d: DataConfig,
    plan: dict[str, SplitRange],
) -> dict:
    """Append a symbol's kept segments (its bars `x` (T, 6) at `ns`); returns its manifest entry, or
    {"reason": ...} when nothing is kept."""
    x = np.asarray(x, dtype=np.float32)  # the values as the dataset stores them, checked as such
    valid = _valid(x)
    tally.missing_rows += len(x) - int(valid.sum())
    named = pd.DatetimeIndex(ns[valid]) if d.bad_candles == "refuse" else None  # for the refusal's message
    if valid.all():
        x, repaired = reconcile_candles(x, d.bad_candles, name, named)  # a copy where it repairs: x is the source's
    else:
        x = x.copy()
        x[valid], repaired = reconcile_candles(x[valid], d.bad_candles, name, named)
    tally.repaired_candles += repaired
    segs = segments(valid)
    kept = [(a, b) for a, b in segs if b - a >= d.lookback_window]
    tally.short_segments += len(segs) - len(kept)
    if not kept:
        longest = max((b - a for a, b in segs), default=0)
        return {
            "reason": "no bars in range"
            if not valid.any()
            else f"no run of {d.lookback_window} consecutive bars (longest {longest})"
        }
    calpos = place(calendar, ns)
    member = universe.member_mask(name, ns)
    first_row = w.rows
    for a, b in kept:
        _segment(w, tally, x[a:b], ns[a:b], calpos[a:b], sym, member[a:b], d, plan)
    return {
        "name": name,
        "first_row": first_row,
        "rows": w.rows - first_row,
        "segments": len(kept),
        "first": str(pd.Timestamp(ns[kept[0][0]])),
        "last": str(pd.Timestamp(ns[kept[-1][1] - 1])),
        "members": universe.describe(name),
    }
