"""The folds of a walk-forward, planned on the market's own bars: consecutive test periods over the span, each
with a validation range and a training range before it, `embargo` bars apart (as the splits of one run are).

Everything is counted in the market's bars, so a fold never starts or ends on a day the market is closed, and a
calendar length (3M) becomes the bars between two calendar dates. A last test period too short to score (fewer
bars than the prediction window) is joined to the one before it, so the folds cover the span to its end.
`plan_folds` is a pure function of the calendar and the settings; a plan that does not fit raises one line naming
the setting and the smallest (or latest) value that works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import Config, DataConfig, WalkForwardConfig
from kronos_cli.config.checks import parse_period
from kronos_cli.core.errors import KronosError
from kronos_cli.core.tables import Table
from kronos_cli.data.prep import open_source
from kronos_cli.data.splits import embargo_bars
from kronos_cli.evaluate.scores import MIN_TIMES
from kronos_cli.market.stamps import range_end


@dataclass(frozen=True)
class Fold:
    """One fold as positions [first, last] (inclusive) on the market calendar."""

    index: int  # 0-based; shown 1-based
    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    model_fold: int  # the fold whose model forecasts this one's test period (itself when it refits)

    @property
    def refit(self) -> bool:
        return self.model_fold == self.index

    @property
    def name(self) -> str:
        return f"fold{self.index + 1:02d}"

    def bars(self, part: str) -> int:
        a, b = getattr(self, part)
        return b - a + 1


@dataclass(frozen=True)
class FoldPlan:
    folds: list[Fold]
    calendar: pd.DatetimeIndex  # the market's bars of the data range
    embargo: int  # bars between train and val, and between val and test

    def stamp(self, pos: int) -> str:
        """A calendar bar as a config date: the day alone for daily bars, else the bar's time."""
        t = self.calendar[pos]
        return t.strftime("%Y-%m-%d") if self._daily else t.isoformat(sep=" ")

    @property
    def _daily(self) -> bool:
        return bool((self.calendar == self.calendar.normalize()).all())

    def dates(self, fold: Fold, part: str) -> list[str]:
        a, b = getattr(fold, part)
        return [self.stamp(a), self.stamp(b)]

    def to_json(self) -> list[dict]:
        return [
            {
                "fold": f.index + 1,
                **{part: self.dates(f, part) for part in ("train", "val", "test")},
                **{f"{part}_bars": f.bars(part) for part in ("train", "val", "test")},
                "refit": f.refit,
                "model_of_fold": f.model_fold + 1,
            }
            for f in self.folds
        ]

    def table(self) -> Table:
        t = Table(
            f"Walk-forward plan: {len(self.folds)} folds, embargo {self.embargo} bars",
            ["fold", "train", "bars", "val", "test", "bars", "model"],
            caption="bars: the market's bars (training: target bars); model: refit, or the fold whose model it reuses",
        )
        for f, j in zip(self.folds, self.to_json()):
            model = "refit" if f.refit else f"fold {f.model_fold + 1}"
            t.add(
                j["fold"],
                " .. ".join(j["train"]),
                f.bars("train"),
                " .. ".join(j["val"]),
                " .. ".join(j["test"]),
                f.bars("test"),
                model,
            )
        return t


def trading_calendar(cfg: Config, scratch: Path) -> pd.DatetimeIndex:
    """The market's bars from data.start_time to data.end_time, read from the source (no prices; a CSV source
    writes nothing there until it is read)."""
    cal, inside = open_source(cfg, scratch).calendar()
    return pd.DatetimeIndex(cal[:inside])


def _span(cal: pd.DatetimeIndex, w: WalkForwardConfig, d: DataConfig) -> tuple[int, int]:
    """Calendar positions of the span's first and last bars, checked against the data (without walkforward.end,
    the span runs to the data's last bar)."""
    start, end = pd.Timestamp(w.start or d.test_time_range[0]), pd.Timestamp(w.end) if w.end else cal[-1]
    last_day = cal[-1].strftime("%Y-%m-%d")
    if end > cal[-1] and range_end(w.end) > range_end(last_day):
        raise KronosError(f"walkforward.end {w.end} is past the data's last bar; the latest that works is {last_day}")
    if start < cal[0]:
        raise KronosError(
            f"walkforward.start {start.date()} comes before the data's first bar {cal[0].date()}; the "
            f"training range needs bars before it"
        )
    first, last = int(np.searchsorted(cal, start, "left")), int(np.searchsorted(cal, range_end(end), "right")) - 1
    if first > last:
        raise KronosError(
            f"walkforward.start..end ({start.date()}..{end.date()}) holds no bar of the market, so "
            f"there are zero folds; walkforward.end must come after walkforward.start"
        )
    return first, last


def test_starts(cal: pd.DatetimeIndex, first: int, last: int, period, anchor: pd.Timestamp) -> list[int]:
    """The first bar of each test period: every `period` bars, or the first bar on or after each calendar step
    from `anchor` (the configured start: quarters from 1 January, whichever day the market opens)."""
    if isinstance(period, int):
        return list(range(first, last + 1, period))
    starts, k = [first], 1
    while True:
        pos = int(np.searchsorted(cal, anchor + period * k, "left"))
        if pos > last:
            return starts
        if pos > starts[-1]:
            starts.append(pos)
        k += 1


def _before(cal: pd.DatetimeIndex, end: int, period, floor: int = 0) -> int:
    """The first bar of a range of `period` ending at bar `end` (bars, or a calendar length), not before `floor`."""
    if isinstance(period, int):
        return max(floor, end - period + 1)
    return max(floor, int(np.searchsorted(cal, cal[end] - period, "right")))


def _ranges(cal: pd.DatetimeIndex, test_start: int, w: WalkForwardConfig, e: int) -> tuple[tuple, tuple]:
    """(train, val) positions [first, last] before a test period starting at bar `test_start` (possibly empty)."""
    val_end, vp = test_start - e - 1, parse_period(w.val_period)
    if isinstance(vp, int) or val_end < 0:
        val_start = val_end - (vp if isinstance(vp, int) else 1) + 1
    else:
        val_start = int(np.searchsorted(cal, cal[test_start] - vp, "left"))
    train_end, tw = val_start - e - 1, parse_period(w.train_window) if w.train_window != "expanding" else None
    if tw is None or train_end < 0:
        return (0, train_end), (val_start, val_end)
    if isinstance(tw, int):
        return (max(0, train_end - tw + 1), train_end), (val_start, val_end)
    return (int(np.searchsorted(cal, cal[val_start] - tw, "left")), train_end), (val_start, val_end)


def _fits(cal: pd.DatetimeIndex, test_start: int, w: WalkForwardConfig, d: DataConfig, e: int) -> bool:
    (t0, t1), (v0, v1) = _ranges(cal, test_start, w, e)
    return v1 - v0 + 1 >= d.predict_window + 1 and t1 - t0 + 1 >= d.lookback_window + d.predict_window + 1


def _test_periods(cal: pd.DatetimeIndex, w: WalkForwardConfig, d: DataConfig) -> list[tuple[int, int]]:
    """[first, last] bars of each test period; a last one shorter than the prediction window joins the one before."""
    first, last = _span(cal, w, d)
    anchor = pd.Timestamp(w.start or d.test_time_range[0])
    starts = test_starts(cal, first, last, parse_period(w.test_period), anchor)
    ends = [s - 1 for s in starts[1:]] + [last]
    pred = d.predict_window
    if len(starts) > 1 and ends[-1] - starts[-1] + 1 < pred:
        starts, ends = starts[:-1], [*ends[:-2], ends[-1]]
    short = min(b - a + 1 for a, b in zip(starts, ends))
    if short < pred:
        raise KronosError(
            f"walkforward.test_period {w.test_period} gives a test period of {short} bars, fewer than "
            f"data.predict_window ({pred}) whose forecasts it scores; the smallest that works is {pred} bars"
        )
    span = ends[-1] - starts[0] + 1
    if span < MIN_TIMES + pred:
        raise KronosError(
            f"walkforward.start..end covers {span} bars; the stitched scores need at least {MIN_TIMES + pred} "
            f"(their tests, and the labels {pred} bars ahead): the latest walkforward.start that works is "
            f"{cal[max(0, ends[-1] - MIN_TIMES - pred + 1)].date()}"
        )
    return list(zip(starts, ends))


def _check_fold(cal: pd.DatetimeIndex, fold: Fold, w: WalkForwardConfig, d: DataConfig, e: int) -> None:
    look, pred = d.lookback_window, d.predict_window
    if fold.bars("val") < pred + 1:
        raise KronosError(
            f"walkforward.val_period {w.val_period} gives fold {fold.index + 1} {max(fold.bars('val'), 0)} validation "
            f"bars; the smallest that works is {pred + 1} bars (one window's targets)"
        )
    if fold.bars("train") >= look + pred + 1:
        return
    if w.train_window != "expanding" and fold.train[0] > 0:
        raise KronosError(
            f"walkforward.train_window {w.train_window} gives fold {fold.index + 1} {fold.bars('train')} training "
            f"bars, fewer than data.lookback_window + data.predict_window + 1; the smallest that works is "
            f"{look + pred + 1} bars"
        )
    ok = next((p for p in range(fold.test[0], len(cal)) if _fits(cal, p, w, d, e)), None)
    earliest = f"the earliest that works is {cal[ok].date()}" if ok is not None else "the data is too short"
    raise KronosError(
        f"walkforward.start {cal[fold.test[0]].date()} leaves fold {fold.index + 1} {max(fold.bars('train'), 0)} "
        f"training bars before its validation range and embargo, fewer than data.lookback_window + "
        f"data.predict_window + 1 ({look + pred + 1}); {earliest}"
    )


def plan_folds(cal: pd.DatetimeIndex, w: WalkForwardConfig, d: DataConfig) -> FoldPlan:
    """The folds over `cal` (the market's bars of the data range), or one line naming what does not fit."""
    e = embargo_bars(d) if w.embargo is None else w.embargo
    cal, folds = pd.DatetimeIndex(cal).as_unit("ns"), []
    for i, test in enumerate(_test_periods(cal, w, d)):
        train, val = _ranges(cal, test[0], w, e)
        fold = Fold(i, train, val, test, i - i % w.refit_every)
        _check_fold(cal, fold, w, d, e)
        folds.append(fold)
    return FoldPlan(folds, cal, e)
