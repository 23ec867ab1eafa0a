"""Forecasting a CSV series: lookback selection, future timestamps (on the calendar of all its bars), mean and
quantile columns (the close's through calibrated bands when given)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import json_floats
from kronos_cli.forecast.calibrated import bar_quantiles
from kronos_cli.forecast.candles import mended, plausible
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.market.bars import FEATURES, check_history, prepare_frame, reconcile_candles
from kronos_cli.market.sessions import future_bars
from kronos_cli.market.stamps import calendar_features
from kronos_cli.metrics.recalibration import BandCorrection

log = logging.getLogger(__name__)


@dataclass
class SeriesForecast:
    history: pd.DataFrame  # the lookback rows used
    table: pd.DataFrame  # timestamps, mean columns, then one column per (feature, quantile)
    samples: np.ndarray  # (samples, pred_len, 6): valid candles unless `raw`
    quantiles: tuple[float, ...]
    repaired: float | None = None  # the share of sampled bars mended into valid candles (None: raw bars kept)
    clipped: int = 0  # sampled values outside the plausible range, clipped to it (`candles.plausible`)
    input_repaired: int = 0  # lookback bars whose high or low did not bound their body, widened to it
    calendar: str = ""  # the calendar the forecast's timestamps follow (`SessionGrid.describe`); "": bars a week
    # or more apart, which continue at their own spacing
    recalibrated: bool = False  # the close's quantiles come from calibrated bands, not the paths' own quantiles

    def close_band(self) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(label, low, high) of the close between the lowest and highest quantile asked for, if two or more."""
        if len(self.quantiles) < 2:
            return None
        lo, hi = min(self.quantiles), max(self.quantiles)
        return (
            f"q{lo:g}-q{hi:g} band",
            self.table[quantile_column("close", lo)].to_numpy(),
            self.table[quantile_column("close", hi)].to_numpy(),
        )

    def to_json(self) -> dict:
        """The forecast rows (timestamps in ISO 8601) and what they were made from."""
        values = self.table.columns.drop("timestamps")  # float32: written without float32 noise digits
        columns = dict(zip(values, json_floats(self.table[values].to_numpy().T)))
        rows = self.table.assign(timestamps=[t.isoformat() for t in self.table["timestamps"]], **columns)
        return {
            "lookback": len(self.history),
            "history_end": self.history["timestamps"].iloc[-1].isoformat(),
            "samples": int(self.samples.shape[0]),
            "quantiles": list(self.quantiles),
            "raw": self.repaired is None,
            "repaired_bars": self.repaired,
            "clipped_values": self.clipped,
            "input_bars_repaired": self.input_repaired,
            "calendar": self.calendar,
            "close_quantiles_recalibrated": self.recalibrated,
            "forecast": rows.to_dict("records"),
        }


def parse_quantiles(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        qs = tuple(float(q) for q in text.split(",") if q.strip())
    except ValueError as exc:
        raise KronosError(
            f"quantiles must be comma-separated numbers such as 0.1,0.9, got {text!r}", setting="quantiles"
        ) from exc
    bad = [q for q in qs if not 0 < q < 1]
    if bad:
        raise KronosError(f"quantiles must lie strictly between 0 and 1, got {bad}", setting="quantiles")
    return qs


def quantile_column(feature: str, q: float) -> str:
    return f"{feature}_q{round(q * 100):02d}" if abs(q * 100 - round(q * 100)) < 1e-9 else f"{feature}_q{q:g}"


def choose_lookback(rows: int, spec: ForecastSpec) -> int:
    """How many of the last rows to forecast from: the spec's `lookback` when given (at most its context), else
    the lookback the model was trained with, else every row up to the context (with a warning when the file is
    longer)."""
    lookback, trained, context = spec.lookback, spec.trained_lookback, spec.context
    if lookback is not None:
        if lookback > rows:
            raise KronosError(
                f"the bars given are {rows} rows, fewer than lookback {lookback}; lower lookback or give more history",
                setting="lookback",
            )
        if lookback > context:
            log.warning(
                "lookback %d exceeds the model's max_context %d: using the last %d rows", lookback, context, context
            )
        return min(lookback, context)
    if trained:
        n = min(trained, rows, context)
        if rows < trained:
            log.warning(
                "the CSV has %d bars, fewer than the %d the model was trained with; forecasting from %d",
                rows,
                trained,
                n,
            )
        else:
            log.info("using the last %d bars, the lookback the model was trained with (a lookback given changes it)", n)
        return n
    if rows > context:
        log.warning(
            "the bars given are %d, more than the model's context of %d: using the last %d (a lookback given chooses)",
            rows,
            context,
            context,
        )
    return min(rows, context)


def forecast_series(
    forecaster: KronosPredictor,
    bars: pd.DataFrame,
    spec: ForecastSpec,
    quantiles: Sequence[float] = (),
    progress: Callable[[int, int], None] | None = None,
    calendar: str | None = None,
    raw: bool = False,
    bad_candles: str = "repair",
    bands: BandCorrection | None = None,
) -> SeriesForecast:
    """The next `spec.horizon` bars of `bars`: the mean of the sample paths and their `quantiles`. Each path's bars
    are mended into valid candles first (`candles.repair`) unless `raw`; values outside the plausible range are
    clipped to it (`candles.plausible`), raw or not. Lookback bars that are not candles are `bad_candles`:
    "repair"ed (counted) or refused. The forecast's timestamps continue on `calendar`, else on the calendar all
    of `bars` follow (not just the lookback: the more weekends and holidays, the surer). With `bands` (a
    calibration's, `forecast/calibrated.py`), the close's quantiles are the bands'. `forecaster` is the one
    `spec` describes (`ForecastSpec.predictor`)."""
    if quantiles and spec.sampling.paths < 2:
        log.warning("quantiles from a single sample path equal the mean; use 20 sample paths or more")
    check_history(len(bars))
    n = choose_lookback(len(bars), spec)
    hist = bars.iloc[-n:].reset_index(drop=True)
    x, input_repaired = reconcile_candles(prepare_frame(hist), bad_candles, f"the lookback (the last {n} bars)")
    future, grid = future_bars(bars["timestamps"], spec.horizon, calendar)
    stamps = calendar_features(hist["timestamps"])[None], calendar_features(future)[None]
    fc = forecaster.forecast(x[None], *stamps, spec.horizon, spec.sampling, progress=progress)
    paths, clipped = plausible(fc.samples[0], x, forecaster.clip)
    paths, repaired = mended(paths, raw)
    table = pd.DataFrame(paths.mean(axis=0), columns=list(FEATURES))
    for q, qv in zip(quantiles, bar_quantiles(paths, quantiles, bands, raw)):
        for j, col in enumerate(FEATURES):
            table[quantile_column(col, q)] = qv[:, j]
    table.insert(0, "timestamps", future)
    on = grid.describe() if grid is not None else ""
    recalibrated = bands is not None and bool(quantiles)
    return SeriesForecast(hist, table, paths, tuple(quantiles), repaired, clipped, input_repaired, on, recalibrated)
