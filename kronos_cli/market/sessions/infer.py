"""Which calendar a series' bars follow, read from the bars themselves: around the clock, the forex week, a known
exchange's sessions (its holidays and early closes), or else the sessions seen in the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions.calendars import fitted_grid
from kronos_cli.market.sessions.forex import FOREX
from kronos_cli.market.sessions.grids import (
    NS_PER_DAY,
    AlwaysOpen,
    BarFreq,
    InferredGrid,
    SessionGrid,
    exchange_calendar,
    fit,
    weekday,
)

# The exchanges whose holidays are recognised in daily or intraday bars, tried in this order (an exchange that
# shares every holiday in the bars with an earlier one is not chosen over it).
EXCHANGES = ("XNYS", "XSHG", "XHKG", "XTKS", "XLON", "XETR", "XTSE", "XASX")
ON_GRID = 0.99  # the share of the bars on a grid for it to fit them (a stray bar or two aside)
FILLED = 0.9  # the share of a grid's bars that must hold one: a grid much larger than the data does not fit


def weekend_gap(ns: np.ndarray, grid_ns: np.ndarray) -> tuple[int, float] | None:
    """How many of a grid's weekend bars (Saturday and Sunday, wall clock) hold no bar of `ns`, and their share
    of them; None when the grid has no weekend bar."""
    weekend = grid_ns[weekday(grid_ns) >= 5]
    if not len(weekend):
        return None
    empty = int((~np.isin(weekend, ns)).sum())
    return empty, empty / len(weekend)


def closes_on_weekends(freq: BarFreq, ns: np.ndarray) -> bool | None:
    """Whether the market of these sorted bar times closes on weekends: most of the weekend bars an always-open
    market would have between the first and the last are missing. None when no weekend lies between them."""
    around = AlwaysOpen(freq).bars(pd.Timestamp(ns[0]), pd.Timestamp(ns[-1])).asi8
    gap = weekend_gap(ns, around)
    return None if gap is None else gap[1] > 0.5


def _fits(grid: SessionGrid, ns: np.ndarray) -> bool:
    on, filled = fit(grid, ns)
    return on >= ON_GRID and filled >= FILLED


def infer_calendar(freq: BarFreq, ns: np.ndarray) -> SessionGrid:
    """The calendar the bar times `ns` (int64 wall-clock ns) follow: 24/7 when they fill the weekends; the forex
    week (in the vendor's clock) when intraday bars over a day or more fill it; a known exchange whose holidays are
    the weekdays the bars skip; else the sessions seen (`infer`). A span without a weekend is taken to close on
    weekends."""
    ns = np.unique(np.asarray(ns, dtype=np.int64))
    if len(ns) < 2:
        return InferredGrid(freq, ns)
    closed = closes_on_weekends(freq, ns)
    if closed is False:
        always = AlwaysOpen(freq)
        return always if _fits(always, ns) else InferredGrid(freq, ns)
    if freq.intraday and ns[-1] - ns[0] >= NS_PER_DAY:  # within a day, any session looks like the forex week's
        forex = fitted_grid(FOREX, freq, ns)
        if _fits(forex, ns):
            return forex
    return _exchange(freq, ns) or InferredGrid(freq, ns)


def _exchange(freq: BarFreq, ns: np.ndarray) -> SessionGrid | None:
    """The first of EXCHANGES whose sessions the bars' days follow best: every day with a bar is a session, all
    but a few sessions have one, and most weekdays without a bar are its holidays (at least one must be)."""
    days = np.unique(ns // NS_PER_DAY)
    span = np.arange(days[0], days[-1] + 1)
    holes = span[(weekday(span * NS_PER_DAY) < 5) & ~np.isin(span, days)]
    if not len(holes) or (weekday(days * NS_PER_DAY) >= 5).any():
        return None
    best, best_score = None, 0
    for name in EXCHANGES:
        sessions = _session_days(name, days[0], days[-1])
        if sessions is None or np.isin(days, sessions).mean() < ON_GRID:
            continue
        missed = len(sessions) - int(np.isin(sessions, days).sum())
        holidays = int((~np.isin(holes, sessions)).sum())
        if holidays * 2 >= len(holes) and missed <= 0.05 * len(sessions) and holidays - missed > best_score:
            best, best_score = name, holidays - missed
    if best is None:
        return None
    grid = fitted_grid(best, freq, ns)
    return grid if not freq.intraday or _fits(grid, ns) else None


def _session_days(name: str, first: int, last: int) -> np.ndarray | None:
    """The day numbers (days since 1970) of an exchange's sessions from `first` to `last`; None where its
    calendar does not reach."""
    lo, hi = pd.Timestamp(first * NS_PER_DAY), pd.Timestamp(last * NS_PER_DAY)
    try:
        sessions = exchange_calendar(name, lo, hi).sessions
    except KronosError:
        return None
    days = pd.DatetimeIndex(sessions).as_unit("ns").asi8 // NS_PER_DAY
    return days[(days >= first) & (days <= last)]
