"""`kronos signals`: the ranked signal table of one day, read straight from the market data.

For a day t (default: the last bar the data has), every pool member on t with `lookback_window` consecutive bars
ending on t is forecast with the backtest's sampling and per-window seed, so the numbers equal the backtest's
for that day; the next bars' stamps come from the market calendar, projected past its end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.config import Config, DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data.prep import market_calendar
from kronos_cli.data.qlib_source import open_provider
from kronos_cli.data.rows import segments
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.forecast.signals import check_signals, signal_table
from kronos_cli.forecast.windows import window_seed
from kronos_cli.market.bars import FEATURES
from kronos_cli.market.stamps import calendar_features
from kronos_cli.records.runs import ModelPair
from kronos_cli.runtime.distributed import Launch
from kronos_cli.runtime.sharding import forecast_batch_everywhere
from kronos_cli.runtime.split_forecasts import sampling_of

FAR_FUTURE = "2262-01-01"  # read whatever the source has (pandas' last representable year)


@dataclass
class DaySignals:
    date: pd.Timestamp
    table: pd.DataFrame  # rank, instrument, one column per signal (and <name>_ret), best first
    members: int  # pool members on the day
    skipped: int  # members without lookback_window consecutive bars ending that day
    ranked_by: str

    def to_json(self) -> dict:
        return {
            "date": f"{self.date}",
            "ranked_by": self.ranked_by,
            "members": self.members,
            "skipped": self.skipped,
            "signals": self.table.assign(datetime=self.table["datetime"].astype(str)).to_dict(orient="records"),
        }


def _pick_day(calendar: np.ndarray, bars: int, date: str | None, look: int) -> int:
    """The calendar position of `date` ('latest' or None: the last market bar)."""
    if date in (None, "latest"):
        pos = bars - 1
    else:
        try:
            day = pd.Timestamp(date)
        except ValueError as exc:
            raise KronosError(
                f"date {date!r} cannot be read; use YYYY-MM-DD (YYYY-MM-DD HH:MM for a bar of a day) or latest",
                setting="date",
            ) from exc
        pos = int(np.searchsorted(calendar[:bars], day.value))
        if pos >= bars or calendar[pos] != day.value:
            last = pd.Timestamp(calendar[bars - 1])
            raise KronosError(
                f"date {date} is not a trading day (or bar) of the data, which ends {last}; pick one, or date latest",
                setting="date",
            )
    if pos + 1 < look:
        raise KronosError(f"date {date} has fewer than data.lookback_window ({look}) bars before it", setting="date")
    return pos


def _windows(d: DataConfig, calendar: np.ndarray, pos: int) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Members on the day with a full lookback: their names, raw bars (B, L, 6), stamps (B, L + P, 5), and how
    many members the day has."""
    look, pred = d.lookback_window, d.predict_window
    window = dataclasses.replace(
        d, start_time=str(pd.Timestamp(calendar[pos - look + 1])), end_time=str(pd.Timestamp(calendar[pos]))
    )
    source = open_provider(window)
    universe, day = source.universe(), np.array([calendar[pos]])
    members = [s for s in universe.symbols() if universe.member_mask(s, day)[0]]
    future = calendar_features(calendar[pos + 1 : pos + 1 + pred])
    names, xs, stamps = [], [], []
    for chunk in source.chunks(members):
        for name, df in chunk:
            x = df[list(FEATURES)].to_numpy(dtype=np.float64) if len(df) else np.zeros((0, len(FEATURES)))
            valid = np.isfinite(x).all(axis=1) & (x[:, :4] > 0).all(axis=1) & (x[:, 4:] >= 0).all(axis=1)
            segs = segments(valid)
            ns = pd.DatetimeIndex(df.index).as_unit("ns").asi8
            if not segs or segs[-1][1] - segs[-1][0] < look or ns[segs[-1][1] - 1] != calendar[pos]:
                continue
            a, b = segs[-1][1] - look, segs[-1][1]
            names.append(name)
            xs.append(np.ascontiguousarray(x[a:b], dtype=np.float32))
            hist = calendar_features(pd.DatetimeIndex(df.index[a:b])).astype(np.int8).astype(np.float32)
            stamps.append(np.concatenate([hist, future]))
    if not names:
        return names, np.zeros((0, look, len(FEATURES)), np.float32), np.zeros((0, look + pred, 5)), len(members)
    return names, np.stack(xs), np.stack(stamps), len(members)


def day_signals(
    cfg: Config, pair: ModelPair, forecaster: KronosPredictor, date: str | None = None, launch: Launch | None = None
) -> DaySignals:
    b, d = cfg.backtest, cfg.data
    check_signals(b.signals)
    everything = dataclasses.replace(d, end_time=FAR_FUTURE)
    calendar, info = market_calendar(open_provider(everything), d.predict_window)
    pos = _pick_day(calendar, info["bars"], date, d.lookback_window)
    names, x, stamps, members = _windows(everything, calendar, pos)
    if not names:
        raise KronosError(
            f"no pool member has {d.lookback_window} consecutive bars ending "
            f"{pd.Timestamp(calendar[pos]):%Y-%m-%d}; pick another date",
            setting="date",
        )
    sampling = sampling_of(cfg)
    seeds = [window_seed(sampling.seed, n, calendar[pos]) for n in names]
    fc = forecast_batch_everywhere(pair, forecaster, x, stamps, seeds, sampling, d.predict_window, launch)
    table = signal_table(fc, np.full(len(names), calendar[pos]), np.array(names), b.signals, returns=True)
    key = b.signals[0]
    table = table.sort_values([key, "instrument"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return DaySignals(pd.Timestamp(calendar[pos]), table, members, members - len(names), key)
