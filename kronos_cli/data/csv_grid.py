"""The calendar's side of an import: the grid the bars fit (its bar label), each bar's place on it (a bar off
the grid, a bar size that does not match `data.freq`, a calendar that opens the weekends the data closes are
one-line errors naming the calendar that fits), and short gaps filled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data.csv_files import Series
from kronos_cli.market.sessions import (
    NS_PER_DAY,
    BarFreq,
    InferredGrid,
    SessionGrid,
    bars_per_day,
    canonical_calendar,
    fitted_grid,
    infer_calendar,
    weekend_gap,
)


def check_bar_size(s: Series, freq: BarFreq) -> None:
    """Consecutive bars of one day are `freq` apart (or a multiple of it: a missing bar)."""
    if not freq.intraday or len(s.ns) < 2:
        if not freq.intraday and len(s.ns) > 1 and (np.diff(s.ns) == 0).any():
            i = int(np.argmax(np.diff(s.ns) == 0)) + 1
            raise KronosError(
                f"{s.where} lines {s.lines[i - 1]} and {s.lines[i]} are two bars on {pd.Timestamp(s.ns[i]):%Y-%m-%d}"
                f" but data.freq is day: intraday bars? set data.freq to their bar size"
            )
        return
    steps, step = np.diff(s.ns), freq.step.value
    # Only the few steps that are not one bar (nights, lunch breaks, missing bars) are looked at closely.
    off = np.flatnonzero(steps != step)
    odd = off[(s.ns[off + 1] // NS_PER_DAY) == (s.ns[off] // NS_PER_DAY)]  # ... within a day
    if not len(odd):  # the usual file: no sizes to count
        return
    ones = len(steps) - len(off) - int(s.ns[-1] // NS_PER_DAY - s.ns[0] // NS_PER_DAY)  # fewest one-bar steps in a day
    if len(odd) >= ones and np.unique(steps[odd], return_counts=True)[1].max() >= ones:  # one bar may not be the
        # most common step within a day
        common = _most_common_step(s.ns, steps)
        if common != freq.step:
            raise KronosError(
                f"{s.where} holds bars {_minutes(common)} apart (its most common step) but data.freq is {freq}; set "
                f"data.freq to the file's bar size"
            )
    bad = odd[steps[odd] % step != 0]
    if len(bad):
        i = int(bad[0]) + 1
        raise KronosError(
            f"{s.where} line {s.lines[i]}: the bar at {pd.Timestamp(s.ns[i])} comes {_minutes(steps[i - 1])} after "
            f"the one before, not a multiple of {freq}: mixed bar sizes; keep one bar size per file"
        )


def _most_common_step(ns: np.ndarray, steps: np.ndarray) -> pd.Timedelta:
    """The most common step between bars of the same day (the smallest of equally common ones)."""
    sizes, counts = np.unique(steps[(ns[1:] // NS_PER_DAY) == (ns[:-1] // NS_PER_DAY)], return_counts=True)
    return pd.Timedelta(int(sizes[np.argmax(counts)]), "ns")


def _minutes(ns) -> str:
    return f"{pd.Timedelta(int(getattr(ns, 'value', ns)), 'ns').total_seconds() / 60:g}min"


def choose_label(d: DataConfig, freq: BarFreq, ns: np.ndarray) -> tuple[str, SessionGrid]:
    """The calendar's grid in the convention the bars fit (the bar label unless the config names it; for forex,
    the vendor's clock), and its bar label."""
    grid = fitted_grid(d.csv.calendar, freq, ns, d.csv.bar_label)
    return grid.label, grid


def fitting_calendar(freq: BarFreq, seen: np.ndarray, used: SessionGrid) -> str | None:
    """What to set for data that does not fit the calendar `used`: the calendar the bar times `seen` fit
    (`sessions.infer_calendar`: 24/7, forex, a known exchange, else what `infer` finds); None when that is `used`."""
    found = infer_calendar(freq, seen)
    if canonical_calendar(found.name) == canonical_calendar(used.name):
        return None
    if isinstance(found, InferredGrid):
        return f"set data.csv.calendar to infer (it finds {found.describe()})"
    return f"the data fits {found.describe()}: set data.csv.calendar to {found.name} (or infer)"


def check_on_grid(s: Series, grid_ns: np.ndarray, grid: SessionGrid, seen: np.ndarray | None = None) -> np.ndarray:
    """Each bar's position on the grid; a bar off it is a one-line error saying which calendar the bar times
    `seen` (all the data's, else the series') fit."""
    first = int(np.searchsorted(grid_ns, s.ns[0])) if len(s.ns) else 0
    if np.array_equal(grid_ns[first : first + len(s.ns)], s.ns):  # a run of the grid's bars: no bar missing
        return np.arange(first, first + len(s.ns))
    pos = np.searchsorted(grid_ns, s.ns)
    ok = (pos < len(grid_ns)) & (grid_ns[np.minimum(pos, len(grid_ns) - 1)] == s.ns)
    if not ok.all():
        i = int(np.argmax(~ok))
        hint = fitting_calendar(grid.freq, s.ns if seen is None else seen, grid)
        raise KronosError(
            f"{s.where} line {s.lines[i]}: a bar at {pd.Timestamp(s.ns[i])} is not a bar of the {grid.describe()} "
            f"calendar (at night, on a holiday or weekend, in a lunch break, or off the bar size); "
            + (hint or "the rest of the data fits that calendar: fix or drop that line, or set data.csv.bar_label")
        )
    return pos


def check_weekends(grid: SessionGrid, grid_ns: np.ndarray, seen: np.ndarray) -> None:
    """A calendar that opens the weekends the data closes (24/7 for forex or stocks) would count every weekend
    as missing bars: a one-line error naming the calendar that fits instead (none: the missing bars count)."""
    gap = weekend_gap(seen, grid_ns)
    per_day = bars_per_day(pd.DatetimeIndex(grid_ns))
    if gap is None or gap[1] <= 0.75 or gap[0] < max(4, 2 * per_day):  # a few empty weekends: ordinary gaps
        return
    hint = fitting_calendar(grid.freq, seen, grid)
    if hint is not None:
        raise KronosError(
            f"the data closes on weekends, which the {grid.describe()} calendar (data.csv.calendar) would count as "
            f"missing bars ({gap[0]:,} weekend bars in the data's span); {hint}"
        )


def fill_short_gaps(values: np.ndarray, limit: int) -> int:
    """Fill runs of at most `limit` missing rows in place: OHLC at the last close, zero volume and amount."""
    missing = np.isnan(values[:, 3])
    if limit <= 0 or not missing.any():
        return 0
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    filled = 0
    for a, b in zip(edges[0::2], edges[1::2]):
        if b - a <= limit and a > 0:
            values[a:b, :4] = values[a - 1, 3]
            values[a:b, 4:] = 0.0
            filled += b - a
    return filled
