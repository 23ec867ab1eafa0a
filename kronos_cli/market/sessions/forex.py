"""The forex week: open from Sunday 17:00 to Friday 17:00 New York time, following New York's daylight saving, in
the clock and bar label a data vendor stamps its bars with.

The open is 21:00 UTC in the US summer and 22:00 UTC in its winter. Vendors stamp bars in UTC (Dukascopy,
OANDA), in New York time, in "New York close" broker time (New York + 7 hours: UTC+2, UTC+3 in the US summer, so
the week runs Monday 00:00 to Friday 24:00; MetaTrader brokers) or in broker time that follows the EU's summer time
instead, at the bar's start or its end. Bars wider than an hour are aligned to midnight of that clock or to the
week's open. Daily bars are the New York-close trading days, Monday to Friday; some UTC vendors add the Sunday
evening's short bar. A grid holds every bar that overlaps the open week.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.market.sessions.grids import NS_PER_DAY, BarFreq, SessionGrid

FOREX = "forex"
NEW_YORK = "America/New_York"
OPEN_TIME = pd.Timedelta(hours=17)  # Sunday 17:00 New York opens the week, Friday 17:00 closes it
# Open to close is always 120 hours: New York changes its clocks on a Sunday at 02:00, while the market is shut.
WEEK = pd.Timedelta(days=5)


@dataclass(frozen=True)
class StampZone:
    """The clock a vendor stamps its bars with: a time zone's wall clock, shifted by whole hours."""

    text: str
    tz: str
    shift_hours: int = 0

    def wall(self, instants: pd.DatetimeIndex) -> np.ndarray:
        """Naive wall-clock nanoseconds of time-zone-aware instants on this clock."""
        local = instants.tz_convert(self.tz).tz_localize(None) + pd.Timedelta(hours=self.shift_hours)
        return local.as_unit("ns").asi8


ZONES = (
    StampZone("UTC", "UTC"),
    StampZone("New York time", NEW_YORK),
    StampZone("New York close time (UTC+2, UTC+3 in US summer time)", NEW_YORK, 7),
    StampZone("broker time on EU summer time (UTC+2, UTC+3 in EU summer time)", "Europe/Athens"),
)


class ForexGrid(SessionGrid):
    """The forex week's bars on one vendor's clock (`zone`), stamped at the bar's start or end, wide bars aligned
    to `align` (midnight of that clock, or the week's open); daily bars Monday to Friday (and Sunday: `sundays`)."""

    def __init__(
        self,
        freq: BarFreq,
        label: str = "start",
        zone: StampZone = ZONES[0],
        align: str = "midnight",
        sundays: bool = False,
    ):
        self.name, self.freq, self.label, self.zone, self.align, self.sundays = FOREX, freq, label, zone, align, sundays

    def bars(self, start, end):
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        sundays = pd.date_range((start - pd.Timedelta(days=8)).normalize(), end + pd.Timedelta(days=8), freq="W-SUN")
        if not self.freq.intraday:
            first = 0 if self.sundays else 1
            days = (sundays.as_unit("ns").asi8[:, None] + np.arange(first, 6)[None, :] * NS_PER_DAY).ravel()
            out = pd.DatetimeIndex(days.astype("datetime64[ns]"))
            return out[(out >= start.normalize()) & (out <= end)]
        opens = (sundays + OPEN_TIME).tz_localize(NEW_YORK)
        a, b = self.zone.wall(opens), self.zone.wall(opens + WEEK)
        step = self.freq.minutes * 60 * 10**9
        parts = []
        for lo, hi in zip(a, b):
            first = lo if self.align == "open" else lo - (lo % NS_PER_DAY) % step
            parts.append(np.arange(first, hi, step))
        ns = np.concatenate(parts) + (step if self.label == "end" else 0)
        out = pd.DatetimeIndex(ns.astype("datetime64[ns]"))
        return out[(out >= start) & (out <= end)]

    def describe(self) -> str:
        if not self.freq.intraday:
            return f"{FOREX} (day, {'Sun' if self.sundays else 'Mon'}-Fri)"
        aligned = ", aligned to the Sunday open" if self.align == "open" else ""
        return f"{FOREX} ({self.freq}, {self.zone.text}, stamped at the bar {self.label}{aligned})"


def forex_variants(freq: BarFreq, label: str = "auto") -> list[ForexGrid]:
    """Every vendor convention of the forex week at this bar size (and `label`, unless auto), the most common
    first: UTC before the brokers' clocks, bar starts before bar ends."""
    if not freq.intraday:
        return [ForexGrid(freq), ForexGrid(freq, sundays=True)]
    labels = ("start", "end") if label == "auto" else (label,)
    aligns = ("midnight", "open") if freq.minutes > 60 else ("midnight",)  # an hour or less: the same bars
    return [ForexGrid(freq, lb, zone, align) for zone in ZONES for lb in labels for align in aligns]
