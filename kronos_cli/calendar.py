"""Calendar features of bar timestamps (the predictor's stamps) and future timestamps that continue a series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.errors import KronosError

STAMP_COLUMNS = ("minute", "hour", "weekday", "day", "month")  # the order the predictor embeds them
NS_PER_DAY = 86_400 * 10**9


def range_end(end) -> pd.Timestamp:
    """The last instant of a range that ends at `end`: a date without a time names that whole day."""
    t = pd.Timestamp(end)
    return t + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if t == t.normalize() else t


def _wall_ns(timestamps) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """int64 nanoseconds of the wall-clock times (a timezone is dropped, the local time kept) and the index."""
    idx = pd.DatetimeIndex(timestamps)
    wall = idx.tz_localize(None) if idx.tz is not None else idx
    return wall.values.astype("datetime64[ns]").view(np.int64), idx


def calendar_features(timestamps) -> np.ndarray:
    """(T, 5) float32 array of the stamp columns: minute, hour, weekday (Monday = 0), day, month."""
    ns, _ = _wall_ns(timestamps)
    days = ns // NS_PER_DAY
    tod = ns - days * NS_PER_DAY
    d = days.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    day = (d - m.astype("datetime64[D]")).astype(np.int64) + 1
    month = m.astype(np.int64) % 12 + 1
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return np.stack([tod // 60_000_000_000 % 60, tod // 3_600_000_000_000, weekday, day, month], axis=-1).astype(
        np.float32
    )


def future_timestamps(history, n: int) -> pd.DatetimeIndex:
    """`n` timestamps after `history` that keep its spacing.

    The step is the most common gap. Bars only fall on weekdays seen in the history (daily bars skip
    weekends), and intraday bars only inside the time-of-day span seen in the history (a session's bars
    continue on the next trading day instead of through the night). Timezone-aware history is continued in
    its wall-clock time.
    """
    ns, idx = _wall_ns(history)
    if len(ns) < 2:
        raise KronosError("at least two timestamps are needed to infer the bar spacing")
    gaps, counts = np.unique(np.diff(ns), return_counts=True)
    step = int(gaps[np.argmax(counts)])  # the most common gap; the smallest of equally common ones
    if step <= 0:
        raise KronosError("timestamps must be strictly increasing")
    days = ns // NS_PER_DAY
    weekdays = {int(w) for w in (days + 3) % 7}
    if ns[-1] - ns[0] < 7 * NS_PER_DAY:  # too short to have seen every trading weekday
        weekdays |= {0, 1, 2, 3, 4}
    intraday = step < NS_PER_DAY
    tod = ns - days * NS_PER_DAY
    lo, hi = int(tod.min()), int(tod.max())
    out: list[int] = []
    t = int(ns[-1])
    guard = 0
    while len(out) < n:
        t += step
        guard += 1
        if guard > 1000 * n + 10000:
            raise KronosError("could not continue the timestamps; pass the future timestamps explicitly")
        day = t // NS_PER_DAY
        if (day + 3) % 7 not in weekdays:
            continue
        if intraday:
            offset = t - day * NS_PER_DAY
            if offset > hi:  # past the session: jump to the next day's first bar
                t = (day + 1) * NS_PER_DAY + lo - step
                continue
            if offset < lo:
                t = day * NS_PER_DAY + lo - step
                continue
        out.append(t)
    future = pd.DatetimeIndex(np.array(out, dtype="datetime64[ns]"), name=idx.name)
    if idx.tz is not None:
        future = future.tz_localize(idx.tz, ambiguous=False, nonexistent="shift_forward")
    return future
