"""Calendar names and their grids: `infer`, `24/7`, `forex` (also `24/5`, `fx`) and every exchange_calendars
name; the grid of a name, and the variant of it (bar label, vendor clock) that a series' bars fit best."""

from __future__ import annotations

import numpy as np

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions.forex import FOREX, ForexGrid, forex_variants
from kronos_cli.market.sessions.grids import (
    ALWAYS_OPEN,
    INFER,
    AlwaysOpen,
    BarFreq,
    ExchangeGrid,
    InferredGrid,
    SessionGrid,
    exchange_calendar,
    fit,
)

# Other spellings users try for the forex week (exchange_calendars' own 24/5 opens at midnight UTC on weekdays,
# which rejects the Sunday-evening open).
ALIASES = {"24/5": FOREX, "fx": FOREX}
OURS = (INFER, ALWAYS_OPEN, FOREX)
FIT_SAMPLE = 200_000  # the latest bar times a variant is fitted on: enough for every convention to show


def canonical_calendar(name: str) -> str:
    """The calendar a name means: forex for its aliases (any case), else the name."""
    lowered = str(name).strip().lower()
    if lowered in ALIASES or lowered in OURS:
        return ALIASES.get(lowered, lowered)
    return str(name).strip()


def _exchange_names() -> list[str]:
    import exchange_calendars as xc  # lazy: slow to import, needed only by markets that name an exchange

    return [n for n in xc.get_calendar_names() if n not in (ALWAYS_OPEN, *ALIASES)]


def calendar_names() -> list[str]:
    """Every calendar name `data.csv.calendar` accepts (besides the aliases of forex: 24/5, fx)."""
    return [*OURS, *sorted(_exchange_names())]


def is_exchange(name: str) -> bool:
    return canonical_calendar(name) not in OURS


def check_calendar_name(name: str) -> str | None:
    """None when `name` is a known calendar, else the one-line problem."""
    if not is_exchange(name) or canonical_calendar(name) in _exchange_names():
        return None
    return f"data.csv.calendar {name!r} is not a known calendar; use one of {', '.join(calendar_names())}"


def exchange_tz(name: str):
    """The time zone of an exchange's calendar (its bars are in its local time); None for ours."""
    return exchange_calendar(canonical_calendar(name)).tz if is_exchange(name) else None


def session_grid(name: str, freq: BarFreq, label: str = "start", timestamps: np.ndarray | None = None) -> SessionGrid:
    """The grid of a calendar name (forex: bars stamped in UTC); `infer` reads the sessions from `timestamps`
    (int64 ns, wall clock)."""
    name = canonical_calendar(name)
    if name == ALWAYS_OPEN:
        return AlwaysOpen(freq)
    if name == FOREX:
        return ForexGrid(freq, label)
    if name == INFER:
        if timestamps is None:
            raise KronosError("the infer calendar needs the data's timestamps")
        return InferredGrid(freq, timestamps)
    problem = check_calendar_name(name)
    if problem:
        raise KronosError(problem)
    return ExchangeGrid(name, freq, label)


def fitted_grid(name: str, freq: BarFreq, ns: np.ndarray, label: str = "auto") -> SessionGrid:
    """The grid of `name` in the convention the bar times `ns` (int64 wall-clock ns) fit best: the bar label
    (unless given) and, for forex, the vendor's clock; of equal fits, the first convention (bar starts, UTC)."""
    name = canonical_calendar(name)
    if name == INFER:
        return InferredGrid(freq, ns)
    ns = np.unique(np.asarray(ns, dtype=np.int64))[-FIT_SAMPLE:]
    if name == FOREX:
        variants = forex_variants(freq, label)
    elif name == ALWAYS_OPEN or not freq.intraday or label != "auto":
        return session_grid(name, freq, "start" if label == "auto" else label)
    else:
        variants = [session_grid(name, freq, lb) for lb in ("start", "end")]
    if len(variants) == 1 or not len(ns):
        return variants[0]
    return max(variants, key=lambda g: fit(g, ns))  # max keeps the first of equal fits
