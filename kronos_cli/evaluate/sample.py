"""What a split gives the statistics, counted before anything is forecast: its windows, the labelled ones, the
symbols and signal times (days or bars, by the data's frequency) they cover, and whether a cross-section exists.

Every score, the coverage, the PIT and the Diebold-Mariano tests need MIN_TIMES signal times with a known future,
whatever the number of symbols (one series is the most common thing people forecast); the cross-sectional IC
also needs MIN_NAMES symbols with a known label at each of MIN_TIMES signal times, and is reported as not defined
otherwise (the time-series correlation measures skill instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.evaluate.scores import MIN_TIMES
from kronos_cli.market.sessions import parse_freq
from kronos_cli.metrics.ic import MIN_NAMES


@dataclass(frozen=True)
class SplitSample:
    windows: int  # (signal time, symbol) windows of the split
    labelled: int  # of which the future is known
    symbols: int  # symbols with a labelled window
    times: int  # signal times with a labelled window: what the tests run over
    ic_times: int  # signal times with at least MIN_NAMES labelled symbols: what the IC needs
    time_unit: str  # what one signal time is: "day", or "1h bar", "5min bar"

    @property
    def cross_section(self) -> bool:
        return self.ic_times >= MIN_TIMES

    def ic_note(self) -> str | None:
        """Why the leaderboard has no IC, or None when it has one."""
        if self.cross_section:
            return None
        if self.symbols < MIN_NAMES:
            return (
                f"cross-sectional IC: not defined for fewer than {MIN_NAMES} symbols (this split has "
                f"{self.symbols} with a known future); skill is the time-series correlation (TS corr) instead"
            )
        return (
            f"cross-sectional IC: not defined, only {counted(self.ic_times, self.time_unit)} have {MIN_NAMES} or "
            f"more symbols with a known label (it needs {MIN_TIMES}); skill is the time-series correlation instead"
        )


def time_unit(freq: str) -> str:
    """What one signal time of data at `freq` is called: a day, or an N-minute / N-hour bar."""
    minutes = parse_freq(freq).minutes
    if minutes is None:
        return "day"
    return f"{minutes // 60}h bar" if minutes % 60 == 0 else f"{minutes}min bar"


def counted(n: int, unit: str) -> str:
    """`n` of `unit` in words: 1 day, 180 days, 617 1h bars, 2 symbols."""
    return f"{n:,} {unit}{'' if n == 1 else 's'}"


def split_sample(names: np.ndarray, origin_ns: np.ndarray, known: np.ndarray, freq: str, split: str) -> SplitSample:
    """The counts of a split's windows (symbol, signal time, whether its label is known), or a one-line error when
    there are too few signal times with a known future for the statistics."""
    per_time = pd.Series(known, index=pd.to_datetime(origin_ns)).groupby(level=0).sum()
    sample = SplitSample(
        windows=len(known),
        labelled=int(known.sum()),
        symbols=int(pd.unique(names[known]).size),
        times=int((per_time >= 1).sum()),
        ic_times=int((per_time >= MIN_NAMES).sum()),
        time_unit=time_unit(freq),
    )
    if sample.times < MIN_TIMES:
        had = f"{counted(sample.labelled, 'labelled window')} of {counted(sample.symbols, 'symbol')}"
        raise KronosError(
            f"the {split} split has {counted(sample.times, sample.time_unit)} with a known future ({had}); the "
            f"scores and their significance tests need at least {MIN_TIMES}, whatever the number of symbols. Widen "
            f"data.{split}_time_range (a window's future is known once the data has data.predict_window bars after "
            f"it), or evaluate the other split"
        )
    return sample
