"""The timestamps of the bars after a series: at its bar size, on its market's calendar (named, or inferred from
all the bars given)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions.calendars import canonical_calendar, fitted_grid
from kronos_cli.market.sessions.grids import INFER, NS_PER_DAY, NS_PER_MIN, BarFreq, SessionGrid
from kronos_cli.market.sessions.infer import infer_calendar

WIDE_BAR_DAYS = 6  # a most common step of this many days or more: weekly bars or wider (daily bars step 1-4 days)


def future_bars(
    history, n: int, calendar: str | None = None, label: str = "auto"
) -> tuple[pd.DatetimeIndex, SessionGrid | None]:
    """`n` bar timestamps after `history`, at its bar size (its most common step), and the grid they follow (None
    for bars a week or more apart, which continue on their own calendar).

    On `calendar` when given (an exchange_calendars name, 24/7 or forex, in the convention the history fits): the
    next session's first bar after a close, no bar in a lunch break. Otherwise on the calendar the history's bars
    follow (`infer.infer_calendar`): 24/7, the forex week, a known exchange's sessions and holidays, or the sessions
    seen (its times of day on the weekdays it trades). Pass all the bars there are: the more weekends and holidays
    they span, the better the calendar is known. Time-zone-aware history is continued in its wall-clock time and
    keeps its zone.
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
        return _in_zone(pd.DatetimeIndex(_wide_future(ns, step, n).as_unit("ns"), name=idx.name), idx.tz), None
    freq = BarFreq(None) if step >= NS_PER_DAY else BarFreq(max(1, round(step / NS_PER_MIN)))
    if freq.intraday and step % NS_PER_MIN:
        raise KronosError("bars must be whole minutes apart (or daily) to continue their timestamps")
    if calendar and canonical_calendar(calendar) != INFER:
        grid = fitted_grid(calendar, freq, ns, label)
    else:
        grid = infer_calendar(freq, ns)
    future = grid.after(pd.Timestamp(ns[-1]), n).as_unit("ns")
    return _in_zone(pd.DatetimeIndex(future, name=idx.name), idx.tz), grid


def future_timestamps(history, n: int, calendar: str | None = None, label: str = "auto") -> pd.DatetimeIndex:
    """The timestamps of `future_bars`."""
    return future_bars(history, n, calendar, label)[0]


def _in_zone(future: pd.DatetimeIndex, tz) -> pd.DatetimeIndex:
    """Wall-clock stamps back in the history's zone, if it had one."""
    return future if tz is None else future.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")


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
