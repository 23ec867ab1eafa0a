"""A symbol's bars into a dataset's rows: cut into segments wherever a bar is missing, appended with their
calendar positions and stamps, and the training windows and signal origins each segment holds, per split.

The market's stamps are computed once for its calendar and sliced for each symbol (`Market.place`); a split's
windows are one run of start rows found by bisection (`_segment`), so a symbol costs a few array slices.
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
from kronos_cli.market.stamps import calendar_features


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
    """The arrays of a dataset being built, appended one symbol segment at a time."""

    def __init__(self, directory: Path):
        def appender(name: str) -> NpyAppender:
            return NpyAppender(directory / f"{name}.npy", *ARRAYS[name])

        self.features, self.stamps = appender("features"), appender("stamps")
        self.timestamps, self.calpos = appender("timestamps"), appender("calpos")
        self.windows = {s: appender(f"windows_{s}") for s in SPLITS}
        self.origins = {s: appender(f"origins_{s}") for s in ORIGIN_SPLITS}

    @property
    def rows(self) -> int:
        return self.features.rows

    def close(self) -> None:
        for a in (
            self.features,
            self.stamps,
            self.timestamps,
            self.calpos,
            *self.windows.values(),
            *self.origins.values(),
        ):
            a.close()


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
    stamps: np.ndarray,
) -> None:
    """Append one segment's rows (`stamps`: the calendar features of the segment's bars), its training windows
    and its signal origins."""
    look, pred, n, row = d.lookback_window, d.predict_window, len(x), w.rows
    window = look + pred + 1
    w.features.append(x)
    w.stamps.append(stamps)
    w.timestamps.append(ts)
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
    rel = np.arange(look - 1, n)
    for s in ORIGIN_SPLITS:
        sel = member[rel] & plan[s].origin_mask(ts[rel], calpos[rel], pred)
        if sel.any():
            w.origins[s].append(_pairs(row + rel[sel], sym))
            tally.origins[s] += int(sel.sum())
            tally.origin_span[s] += [int(ts[rel][sel][0]), int(ts[rel][sel][-1])]


def _pairs(rows: np.ndarray, sym: int) -> np.ndarray:
    """(n, 2) int64: each row beside the symbol's index."""
    out = np.empty((len(rows), 2), dtype=np.int64)
    out[:, 0], out[:, 1] = rows, sym
    return out


@dataclasses.dataclass
class Market:
    """The market's calendar (int64 ns) and the calendar features of its bars, computed once."""

    calendar: np.ndarray
    stamps: np.ndarray

    def place(self, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each bar's calendar position and stamps: slices of the calendar's where the bars are a run of its bars
        (a CSV source's always are), else looked up (computed for bars off the calendar)."""
        a = int(np.searchsorted(self.calendar, ns[0])) if len(ns) else 0
        if np.array_equal(self.calendar[a : a + len(ns)], ns):
            return np.arange(a, a + len(ns)), self.stamps[a : a + len(ns)]
        calpos = np.searchsorted(self.calendar, ns)
        at = np.minimum(calpos, len(self.calendar) - 1)
        if (self.calendar[at] == ns).all():
            return calpos, self.stamps[at]
        return calpos, calendar_features(pd.DatetimeIndex(ns)).astype(np.int8)


def _valid(x: np.ndarray) -> np.ndarray:
    """Rows whose values are all finite, prices positive, volume and amount not negative (column by column:
    numpy reduces along a row of six slowly)."""
    with np.errstate(invalid="ignore"):
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
    market: Market,
    universe: Universe,
    d: DataConfig,
    plan: dict[str, SplitRange],
) -> dict:
    """Append a symbol's kept segments (its bars `x` (T, 6) at `ns`); returns its manifest entry, or
    {"reason": ...} when nothing is kept."""
    x = np.array(x, dtype=np.float32)  # the values as the dataset stores them, checked as such
    valid = _valid(x)
    tally.missing_rows += len(x) - int(valid.sum())
    named = pd.DatetimeIndex(ns[valid]) if d.bad_candles == "refuse" else None  # for the refusal's message
    if valid.all():
        x, repaired = reconcile_candles(x, d.bad_candles, name, named)
    else:
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
    calpos, stamps = market.place(ns)
    member = universe.member_mask(name, ns)
    first_row = w.rows
    for a, b in kept:
        _segment(w, tally, x[a:b], ns[a:b], calpos[a:b], sym, member[a:b], d, plan, stamps[a:b])
    return {
        "name": name,
        "first_row": first_row,
        "rows": w.rows - first_row,
        "segments": len(kept),
        "first": str(pd.Timestamp(ns[kept[0][0]])),
        "last": str(pd.Timestamp(ns[kept[-1][1] - 1])),
        "members": universe.describe(name),
    }
