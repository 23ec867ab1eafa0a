"""Calendar features of bar timestamps: the predictor's stamps (minute, hour, weekday, day, month)."""

from __future__ import annotations

import numpy as np
import pandas as pd

STAMP_COLUMNS = ("minute", "hour", "weekday", "day", "month")  # the order the predictor embeds them
STAMP_SIZES = (60, 24, 7, 32, 13)  # how many values each stamp column takes: the rows of its embedding table
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
