"""Calendar features of bar timestamps (the model's stamps) and future timestamps that continue a series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.errors import KronosError

STAMP_COLUMNS = ("minute", "hour", "weekday", "day", "month")


def time_stamps(timestamps) -> np.ndarray:
    """(T, 5) float32 array of minute, hour, weekday (Monday = 0), day, month."""
    idx = pd.DatetimeIndex(timestamps)
    return np.stack([idx.minute, idx.hour, idx.day_of_week, idx.day, idx.month], axis=-1).astype(np.float32)


def future_timestamps(history, n: int) -> pd.DatetimeIndex:
    """`n` timestamps after `history` that keep its spacing.

    The step is the most common gap. Bars only fall on weekdays seen in the history (daily bars skip
    weekends), and intraday bars only inside the time-of-day span seen in the history (a session's bars
    continue on the next trading day instead of through the night).
    """
    idx = pd.DatetimeIndex(history)
    if len(idx) < 2:
        raise KronosError("at least two timestamps are needed to infer the bar spacing")
    gaps = idx[1:] - idx[:-1]
    step = pd.Series(gaps).mode().iloc[0]
    if step <= pd.Timedelta(0):
        raise KronosError("timestamps must be strictly increasing")
    weekdays = set(idx.day_of_week)
    if idx[-1] - idx[0] < pd.Timedelta(days=7):  # too short to have seen every trading weekday
        weekdays |= {0, 1, 2, 3, 4}
    intraday = step < pd.Timedelta(days=1)
    tod = idx - idx.normalize()
    lo, hi = tod.min(), tod.max()
    out: list[pd.Timestamp] = []
    t = idx[-1]
    guard = 0
    while len(out) < n:
        t = t + step
        guard += 1
        if guard > 1000 * n + 10000:
            raise KronosError("could not continue the timestamps; pass the future timestamps explicitly")
        if t.weekday() not in weekdays:
            continue
        if intraday:
            offset = t - t.normalize()
            if offset > hi:  # past the session: jump to the next day's first bar
                t = t.normalize() + pd.Timedelta(days=1) + lo - step
                continue
            if offset < lo:
                t = t.normalize() + lo - step
                continue
        out.append(t)
    return pd.DatetimeIndex(out, name=idx.name)
