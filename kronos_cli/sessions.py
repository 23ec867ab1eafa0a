"""Which bars a market has: bar sizes, and the expected bar grid of a market's calendar.

A missing bar is a bar the market should have had and did not; lunch breaks, nights, weekends and holidays are
not gaps. The grid comes from one of:
- an exchange's calendar from the maintained `exchange_calendars` library (`XSHG`, `XNYS`, `XHKG`, ...): its
  sessions, lunch breaks and early closes, in the exchange's local time;
- `24/7`: every bar around the clock (crypto);
- `infer`: the sessions seen in the data: the days on which any symbol has a bar, and on each day the times of
  day seen on at least half of the days, between that day's first and last bar (so early closes are kept).

Intraday bars are labelled by their start (09:30 is the bar from 09:30 to 09:35) or by their end (09:35 is that
same bar), `bar_label: start | end`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from kronos_cli.errors import KronosError

ALWAYS_OPEN = "24/7"
INFER = "infer"
NS_PER_MIN = 60 * 10**9
NS_PER_DAY = 86_400 * 10**9
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


def calendar_names() -> list[str]:
    """Every calendar name `data.csv.calendar` accepts."""
    import exchange_calendars as xc  # lazy: slow to import, needed only by markets that name an exchange

    return [INFER, ALWAYS_OPEN, *sorted(n for n in xc.get_calendar_names() if n != ALWAYS_OPEN)]


def check_calendar_name(name: str) -> str | None:
    """None when `name` is a known calendar, else the one-line problem."""
    if name in (INFER, ALWAYS_OPEN):
        return None
    import exchange_calendars as xc  # lazy: as above

    if name in xc.get_calendar_names():
        return None
    return f"data.csv.calendar {name!r} is not a known calendar; use one of {', '.join(calendar_names())}"


class SessionGrid:
    """The bars a market should have. `bars(start, end)`: the expected bar timestamps (naive, local wall clock,
    nanosecond unit); `after(last, n)`: the n bars after `last` (for forecast timestamps)."""

    name: str
    freq: BarFreq

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


class AlwaysOpen(SessionGrid):
    """Around the clock: every bar from midnight on, every day."""

    def __init__(self, freq: BarFreq):
        self.name, self.freq = ALWAYS_OPEN, freq

    def bars(self, start, end):
        lo = pd.Timestamp(start).floor(self.freq.step) if self.freq.intraday else pd.Timestamp(start).normalize()
        if lo < pd.Timestamp(start):
            lo += self.freq.step
        return pd.date_range(lo, pd.Timestamp(end), freq=self.freq.step).as_unit("ns")


class ExchangeGrid(SessionGrid):
    """An exchange's sessions from `exchange_calendars`: daily bars on its sessions; intraday bars every
    `freq` from each session's open (and from the end of its lunch break) to its close, early closes included."""

    def __init__(self, name: str, freq: BarFreq, label: str = "start"):
        self.name, self.freq, self.label = name, freq, label

    def _calendar(self, start: pd.Timestamp, end: pd.Timestamp):
        import exchange_calendars as xc  # lazy: slow to import
        from exchange_calendars.errors import CalendarError  # lazy: as above

        try:
            return xc.get_calendar(self.name, start=start.normalize(), end=end.normalize())
        except (ValueError, CalendarError) as exc:
            raise KronosError(
                f"the {self.name} calendar does not cover {start:%Y-%m-%d}..{end:%Y-%m-%d}: {exc}"
            ) from None

    def bars(self, start, end):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        cal = self._calendar(start - pd.Timedelta(days=1), end + pd.Timedelta(days=1))
        sessions = cal.sessions
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
        if not self.freq.intraday:
            return f"inferred ({self.freq}, {len(self.days)} trading days seen)"
        t = pd.to_datetime(self.times, unit="ns")
        return f"inferred ({self.freq}, {len(self.times)} bars a day from {t[0]:%H:%M} to {t[-1]:%H:%M})"


def session_grid(name: str, freq: BarFreq, label: str = "start", timestamps: np.ndarray | None = None) -> SessionGrid:
    """The grid of a calendar name; `infer` reads the sessions from `timestamps` (int64 ns, wall clock)."""
    if name == ALWAYS_OPEN:
        return AlwaysOpen(freq)
    if name == INFER:
        if timestamps is None:
            raise KronosError("the infer calendar needs the data's timestamps")
        return InferredGrid(freq, timestamps)
    problem = check_calendar_name(name)
    if problem:
        raise KronosError(problem)
    return ExchangeGrid(name, freq, label)


def bars_per_day(grid: pd.DatetimeIndex) -> float:
    """The median number of bars per calendar date of a grid (1 for daily bars)."""
    if not len(grid):
        return 1.0
    _, counts = np.unique(grid.as_unit("ns").asi8 // NS_PER_DAY, return_counts=True)
    return float(np.median(counts))


def future_timestamps(history, n: int, calendar: str | None = None, label: str = "auto") -> pd.DatetimeIndex:
    """`n` bar timestamps after `history`, at its bar size (its most common step).

    On `calendar` (an exchange_calendars name or 24/7) when given: the next session's first bar after a close,
    no bar in a lunch break. Otherwise on the sessions seen in the history (`infer`): its times of day (a lunch
    break stays empty) on the weekdays it trades (daily bars skip weekends unless the history has them).
    Time-zone-aware history is continued in its wall-clock time and keeps its zone.
    """
    idx = pd.DatetimeIndex(history)
    ns = (idx.tz_localize(None) if idx.tz is not None else idx).as_unit("ns").asi8  # wall-clock time
    if len(ns) < 2:
        raise KronosError("at least two timestamps are needed to infer the bar spacing")
    gaps, counts = np.unique(np.diff(ns), return_counts=True)
    step = int(gaps[np.argmax(counts)])  # the most common gap; the smallest of equally common ones
    if step <= 0:
        raise KronosError("timestamps must be strictly increasing")
    if step >= WIDE_BAR_DAYS * NS_PER_DAY:  # weekly, monthly, quarterly, yearly bars: their own calendar
        return _in_zone(pd.DatetimeIndex(_wide_future(ns, step, n).as_unit("ns"), name=idx.name), idx.tz)
    freq = BarFreq(None) if step >= NS_PER_DAY else BarFreq(max(1, round(step / NS_PER_MIN)))
    if freq.intraday and step % NS_PER_MIN:
        raise KronosError("bars must be whole minutes apart (or daily) to continue their timestamps")
    if calendar and calendar != INFER:
        grid = session_grid(calendar, freq, _label(calendar, freq, ns, label))
    else:
        grid = InferredGrid(freq, ns)
    future = grid.after(pd.Timestamp(ns[-1]), n).as_unit("ns")
    return _in_zone(pd.DatetimeIndex(future, name=idx.name), idx.tz)


def _in_zone(future: pd.DatetimeIndex, tz) -> pd.DatetimeIndex:
    """Wall-clock stamps back in the history's zone, if it had one."""
    return future if tz is None else future.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")


WIDE_BAR_DAYS = 6  # a most common step of this many days or more: weekly bars or wider (daily bars step 1-4 days)


def _wide_future(ns: np.ndarray, step: int, n: int) -> pd.DatetimeIndex:
    """`n` stamps after bars a week or more apart, on their own calendar: what pandas infers from the last bars
    (W-FRI, MS, QE-DEC, YE-DEC, ...); else whole months from the typical gap (at month ends or starts when the
    bars are, else the last bar's day of the month); else the step itself."""
    recent = pd.DatetimeIndex(ns[-25:])
    start = recent[-1]
    inferred = pd.infer_freq(recent) if len(recent) >= 3 else None
    months = round(step / NS_PER_DAY / 30.44)
    if inferred is not None:
        offset = inferred
    elif months < 1:
        offset = pd.Timedelta(step)
    elif recent.is_month_end.all():
        offset = pd.offsets.MonthEnd(months)
    elif recent.is_month_start.all():
        offset = pd.offsets.MonthBegin(months)
    else:  # counted from the last bar each time, so the 31st does not drift to the 30th
        return pd.DatetimeIndex([start + pd.DateOffset(months=months * k) for k in range(1, n + 1)])
    return pd.date_range(start, periods=n + 1, freq=offset)[1:]


def _label(calendar: str, freq: BarFreq, ns: np.ndarray, label: str) -> str:
    """The bar label the history fits (start or end of the bar), unless one is given."""
    if label != "auto" or not freq.intraday:
        return "start" if label == "auto" else label
    lo, hi = pd.Timestamp(ns.min()), pd.Timestamp(ns.max())
    fits = {lb: np.isin(ns, session_grid(calendar, freq, lb).bars(lo, hi).asi8).mean() for lb in ("start", "end")}
    return max(fits, key=fits.get)
