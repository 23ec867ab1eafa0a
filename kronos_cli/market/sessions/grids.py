"""Bar sizes and the session grids of markets that keep one timetable: around the clock, an exchange's, or the one
seen in the data.

A grid's bars are naive wall-clock timestamps (nanosecond unit) labelled by the bar's start (09:30 is the bar from
09:30 to 09:35) or by its end (09:35 is that same bar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError

ALWAYS_OPEN = "24/7"
INFER = "infer"
NS_PER_MIN = 60 * 10**9
NS_PER_DAY = 86_400 * 10**9
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = {"day", "1day", "d", "1d", "daily"}
_UNITS = {"min": 1, "m": 1, "t": 1, "minute": 1, "minutes": 1, "h": 60, "hr": 60, "hour": 60, "hours": 60}


@dataclass(frozen=True)
class BarFreq:
    """A bar size: `minutes` per bar, or None for one bar per session (daily bars)."""

    minutes: int | None

    @property
    def intraday(self) -> bool:
        return self.minutes is not None

    @property
    def qlib(self) -> str:
        """Qlib's name for it (the calendar and feature file suffix): day, 1min, 5min, 60min."""
        return "day" if self.minutes is None else f"{self.minutes}min"

    @property
    def step(self) -> pd.Timedelta:
        return pd.Timedelta(days=1) if self.minutes is None else pd.Timedelta(minutes=self.minutes)

    def __str__(self) -> str:
        return self.qlib


@lru_cache(maxsize=64)
def parse_freq(text: str) -> BarFreq:
    """`day`, `Nmin` or `Nh` (also 1d, 5m, 5T, 1H) as a BarFreq; anything else is a one-line error."""
    t = str(text).strip().lower().replace(" ", "")
    if t in _DAY_NAMES:
        return BarFreq(None)
    m = re.fullmatch(r"(\d*)([a-z]+)", t)
    if m and m.group(2) in _UNITS:
        n = int(m.group(1) or 1) * _UNITS[m.group(2)]
        if 0 < n < 24 * 60:
            return BarFreq(n)
    raise KronosError(f"data.freq {text!r} is not a bar size; use day, Nmin (1min, 5min, 15min) or Nh (1h, 4h)")


def weekday(ns: np.ndarray) -> np.ndarray:
    """Monday = 0 ... Sunday = 6 of wall-clock nanoseconds (1970-01-01 was a Thursday)."""
    return (np.asarray(ns) // NS_PER_DAY + 3) % 7


class SessionGrid:
    """The bars a market should have. `bars(start, end)`: the expected bar timestamps (naive, local wall clock,
    nanosecond unit); `after(last, n)`: the n bars after `last` (for forecast timestamps)."""

    name: str
    freq: BarFreq
    label: str = "start"

    def bars(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        raise NotImplementedError

    def after(self, last: pd.Timestamp, n: int) -> pd.DatetimeIndex:
        """The next n bars after `last`, looking ahead far enough for n bars."""
        span = self.freq.step * n * 3 + pd.Timedelta(days=14)
        for _ in range(6):
            ahead = self.bars(last, last + span)
            ahead = ahead[ahead > last]
            if len(ahead) >= n:
                return ahead[:n]
            span *= 4
        raise KronosError(f"the {self.name} calendar has no {n} bars after {last}; pass the future timestamps")

    def describe(self) -> str:
        return f"{self.name} ({self.freq})"


def fit(grid: SessionGrid, ns: np.ndarray) -> tuple[float, float]:
    """How well sorted unique bar times fit a grid: (the share of them on it, the share of its bars between the
    first and the last that hold one)."""
    on_grid = grid.bars(pd.Timestamp(ns[0]), pd.Timestamp(ns[-1])).asi8
    on = np.isin(ns, on_grid)
    return float(on.mean()), float(on.sum() / len(on_grid)) if len(on_grid) else 0.0


class AlwaysOpen(SessionGrid):
    """Around the clock: every bar from midnight on, every day."""

    def __init__(self, freq: BarFreq):
        self.name, self.freq = ALWAYS_OPEN, freq

    def bars(self, start, end):
        lo = pd.Timestamp(start).floor(self.freq.step) if self.freq.intraday else pd.Timestamp(start).normalize()
        if lo < pd.Timestamp(start):
            lo += self.freq.step
        return pd.date_range(lo, pd.Timestamp(end), freq=self.freq.step).as_unit("ns")


def exchange_calendar(name: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None):
    """The `exchange_calendars` calendar of `name` covering start..end: its default span (about twenty years back
    to one ahead, built once) when that covers them (or none are given), else one built for them."""
    import exchange_calendars as xc  # lazy: slow to import, needed only by markets that name an exchange
    from exchange_calendars.errors import CalendarError  # lazy: as above

    try:
        cal = _default_calendar(name)
        if start is None or end is None:
            return cal
        if cal.first_session <= start.normalize() and end.normalize() <= cal.last_session:
            return cal
        return xc.get_calendar(name, start=start.normalize(), end=end.normalize())
    except (ValueError, CalendarError) as exc:
        span = f" {start:%Y-%m-%d}..{end:%Y-%m-%d}" if start is not None and end is not None else ""
        raise KronosError(f"the {name} calendar does not cover{span}: {exc}") from None


@lru_cache(maxsize=32)
def _default_calendar(name: str):
    import exchange_calendars as xc  # lazy: as above

    return xc.get_calendar(name)


class ExchangeGrid(SessionGrid):
    """An exchange's sessions from `exchange_calendars`: daily bars on its sessions; intraday bars every
    `freq` from each session's open (and from the end of its lunch break) to its close, early closes included."""

    def __init__(self, name: str, freq: BarFreq, label: str = "start"):
        self.name, self.freq, self.label = name, freq, label

    def bars(self, start, end):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        lo, hi = start - pd.Timedelta(days=1), end + pd.Timedelta(days=1)
        cal = exchange_calendar(self.name, lo, hi)
        sessions = cal.sessions[(cal.sessions >= lo.normalize()) & (cal.sessions <= hi.normalize())]
        if not self.freq.intraday:
            days = pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz else sessions).as_unit("ns")
            return days[(days >= start.normalize()) & (days <= end)]
        sched = cal.schedule.loc[sessions]
        local = {c: _local_ns(sched[c], cal.tz) for c in ("open", "break_start", "break_end", "close")}
        step = self.freq.minutes * NS_PER_MIN
        parts = []
        for i in range(len(sched)):
            pieces = [(local["open"][i], local["close"][i])]
            if local["break_start"][i] > 0 and local["break_end"][i] > 0:
                pieces = [(local["open"][i], local["break_start"][i]), (local["break_end"][i], local["close"][i])]
            for a, b in pieces:
                starts = np.arange(a, b, step)
                parts.append(starts + step if self.label == "end" else starts)
        ns = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        out = pd.DatetimeIndex(ns.astype("datetime64[ns]"))
        return out[(out >= start) & (out <= end)]


def _local_ns(col: pd.Series, tz) -> np.ndarray:
    """Exchange-local wall-clock nanoseconds of a schedule column (0 where NaT: no lunch break)."""
    idx = pd.DatetimeIndex(col)
    ok = ~idx.isna()
    out = np.zeros(len(idx), dtype=np.int64)
    if ok.any():
        local = idx[ok].tz_convert(tz).tz_localize(None) if idx.tz is not None else idx[ok]
        out[ok] = local.as_unit("ns").asi8
    return out


class InferredGrid(SessionGrid):
    """The sessions seen in the data: the days with any bar, and on each of them the common times of day
    between that day's first and last bar; later days continue on the weekdays and times seen."""

    def __init__(self, freq: BarFreq, timestamps: np.ndarray):
        self.name, self.freq = INFER, freq
        ns = np.unique(np.asarray(timestamps, dtype=np.int64))
        if not len(ns):
            raise KronosError("no bars to infer the market's sessions from")
        days = ns // NS_PER_DAY
        self.days, first = np.unique(days, return_index=True)
        last = np.r_[first[1:], len(ns)] - 1
        self.day_first, self.day_last = ns[first] - self.days * NS_PER_DAY, ns[last] - self.days * NS_PER_DAY
        tod, counts = np.unique(ns - days * NS_PER_DAY, return_counts=True)
        self.times = tod[counts * 2 >= len(self.days)] if freq.intraday else np.zeros(1, dtype=np.int64)
        if not len(self.times):
            self.times = tod
        weekdays = {int(w) for w in (self.days + 3) % 7}
        if self.days[-1] - self.days[0] < 7:  # too short to have seen every trading weekday
            weekdays |= {0, 1, 2, 3, 4}
        self.weekdays = sorted(weekdays)
        # The data may start or stop inside a session: its first and last day run the whole session.
        self.day_first[0], self.day_last[-1] = self.times.min(), self.times.max()

    def bars(self, start, end):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        last_day = int(self.days[-1])
        days = self.days
        lo_t, hi_t = self.day_first, self.day_last
        end_day = end.value // NS_PER_DAY
        if end_day > last_day:  # beyond the data: the weekdays seen, every time of the session
            extra = np.arange(last_day + 1, end_day + 1)
            extra = extra[np.isin((extra + 3) % 7, self.weekdays)]
            days = np.r_[days, extra]
            lo_t = np.r_[lo_t, np.full(len(extra), self.times.min())]
            hi_t = np.r_[hi_t, np.full(len(extra), self.times.max())]
        grid = days[:, None] * NS_PER_DAY + self.times[None, :]
        keep = (self.times[None, :] >= lo_t[:, None]) & (self.times[None, :] <= hi_t[:, None])
        if not self.freq.intraday:
            grid, keep = days[:, None] * NS_PER_DAY, np.ones((len(days), 1), dtype=bool)
        ns = grid[keep]
        out = pd.DatetimeIndex(np.sort(ns).astype("datetime64[ns]"))
        return out[(out >= start) & (out <= end)]

    def describe(self) -> str:
        days = weekday_text(self.weekdays)
        if not self.freq.intraday:
            return f"inferred ({self.freq}, {days}, {len(self.days)} trading days seen)"
        t = pd.to_datetime(self.times, unit="ns")
        return f"inferred ({self.freq}, {days}, {len(self.times)} bars a day from {t[0]:%H:%M} to {t[-1]:%H:%M})"


def weekday_text(weekdays) -> str:
    """Weekdays (Monday = 0) as runs of names: Mon-Fri, Sun; Mon-Sun."""
    runs: list[list[int]] = []
    for w in sorted(set(weekdays)):
        if runs and w == runs[-1][-1] + 1:
            runs[-1].append(w)
        else:
            runs.append([w])
    return ", ".join(WEEKDAYS[r[0]] if len(r) == 1 else f"{WEEKDAYS[r[0]]}-{WEEKDAYS[r[-1]]}" for r in runs)


def bars_per_day(grid: pd.DatetimeIndex) -> float:
    """The median number of bars per calendar date of a grid (1 for daily bars)."""
    if not len(grid):
        return 1.0
    _, counts = np.unique(grid.as_unit("ns").asi8 // NS_PER_DAY, return_counts=True)
    return float(np.median(counts))
