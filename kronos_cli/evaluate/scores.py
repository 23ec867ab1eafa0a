"""The scores of one forecaster on a split's windows, in price-return units, overall and per horizon step.

Point scores (`metrics/accuracy.py`) use the predictive's mean; MASE divides by the last-close forecast's MAE;
direction counts the steps where both the forecast and the outcome moved (a Wilson 95% interval beside it); the
IC family ranks the windows of each signal time (day or bar) by the point forecast of the return at the horizon's
last bar, against the trade label (see `data/labels.py`), with a Newey-West t-statistic and a block-bootstrap
95% interval over signal times: defined where at least MIN_TIMES signal times have MIN_NAMES labelled symbols.
The time-series correlation (`metrics/ic.py`) relates the same forecast to the same label over time, within each
series: the skill measure of a market with one or two symbols.

The losses behind the Diebold-Mariano tests are each labelled window's MAE, CRPS and quantile loss (averaged over
its horizon steps), averaged over the windows of each signal time: with one series, each window's own loss.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import daily_ic, time_series_ic
from kronos_cli.metrics.probabilistic import (
    COVERAGES,
    QUANTILES,
    Predictive,
    coverage,
    coverage_error,
    intervals,
    pit_histogram,
    quantile_loss,
    weighted_quantile_loss,
)
from kronos_cli.metrics.significance import block_bootstrap_interval, newey_west_t

MIN_TIMES = 20  # signal times (days or bars) with a known label the statistics need (the IC: with MIN_NAMES each)
LOSSES = ("MAE", "CRPS", "WQL")  # the per-window losses the Diebold-Mariano tests compare


@dataclass
class ModelScores:
    label: str
    kind: str  # "model" or "baseline"
    source: str
    overall: dict[str, float]
    by_horizon: dict[str, list[float]]
    coverage: dict[str, float]
    pit: list[float]
    ic: dict[str, float]
    ic_by_month: dict[str, float]
    time_series: dict[str, float] = field(default_factory=dict)  # corr, t, windows, series (`time_series_ic`)
    losses: dict[str, pd.Series] = field(default_factory=dict, repr=False)  # per signal time, for the tests
    coverage_se: dict[str, float] = field(default_factory=dict)  # each band's standard error over signal times

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "losses"}


def _mean(x: np.ndarray, axis=None):
    with warnings.catch_warnings():  # a step or a day without any known value is NaN, as it should be
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _ic(signal: pd.Series, label: pd.Series, predict: int, interval: bool = True) -> tuple[dict, dict[str, float]]:
    """The IC family and the mean IC by month; `interval`: with the block-bootstrap 95% interval (IC_lo, IC_hi)."""
    d = daily_ic(signal, label)
    nan = float("nan")
    if len(d) < MIN_TIMES:  # too few cross-sections: no IC rather than one from a handful of days
        keys = ("IC", "Rank IC", "ICIR", "IC_t", "Rank_IC_t", *(("IC_lo", "IC_hi") if interval else ()))
        return {**dict.fromkeys(keys, nan), "times": int(len(d))}, {}
    ic = {
        "IC": float(d["IC"].mean()),
        "Rank IC": float(d["Rank IC"].mean()),
        "ICIR": float(d["IC"].mean() / d["IC"].std()) if d["IC"].std() > 0 else nan,
        "IC_t": newey_west_t(d["IC"].to_numpy(), lags=predict),
        "Rank_IC_t": newey_west_t(d["Rank IC"].to_numpy(), lags=predict),
    }
    if interval:
        ic["IC_lo"], ic["IC_hi"] = block_bootstrap_interval(d["IC"].to_numpy(), block=predict)
    ic["times"] = int(len(d))
    monthly = d["IC"].groupby(d.index.to_period("M")).mean()
    return ic, {str(k): float(v) for k, v in monthly.items()}


def _losses(per_window: dict[str, np.ndarray], times: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """Each (N, P) loss averaged over the horizon, then over the windows of each signal time (NaN: none known)."""
    return {k: pd.Series(_mean(v, axis=1), index=times).groupby(level=0).mean() for k, v in per_window.items()}


def score(
    label: str,
    kind: str,
    source: str,
    predictive: Predictive,
    obs: np.ndarray,
    trade_label: np.ndarray,
    names: np.ndarray,
    times: pd.DatetimeIndex,
    predict: int,
    headline: bool = False,
) -> ModelScores:
    """Scores of `predictive` against the realised return paths `obs` (N, P; NaN where unknown) of windows whose
    symbols are `names` and signal times `times`.

    `headline`: only the overall point scores and CRPS, the IC (without its bootstrap interval) and the
    time-series correlation, what a table of folds shows; the WQL, the scores by horizon step, the coverage, the
    PIT and the per-time losses of the tests are left empty (the same numbers either way)."""
    point = predictive.point()
    known = np.isfinite(obs)
    crps = np.where(known, predictive.crps(np.nan_to_num(obs)), np.nan)
    overall = {**return_accuracy(point, obs), "CRPS": float(_mean(crps))}
    idx = pd.MultiIndex.from_arrays([pd.DatetimeIndex(times), names], names=["datetime", "instrument"])
    signal, realised = pd.Series(point[:, -1], index=idx), pd.Series(trade_label, index=idx)
    ic, monthly = _ic(signal, realised, predict, interval=not headline)
    scores = ModelScores(label, kind, source, overall, {}, {}, [], ic, monthly)
    if not headline:
        _distribution(scores, predictive, point, crps, obs, trade_label, pd.DatetimeIndex(times), predict)
    scores.time_series = time_series_ic(signal, realised, lags=predict)
    return scores


def _distribution(
    s: ModelScores,
    predictive: Predictive,
    point: np.ndarray,
    crps: np.ndarray,
    obs: np.ndarray,
    trade_label: np.ndarray,
    times: pd.DatetimeIndex,
    predict: int,
) -> None:
    """What the record's tables and tests need beyond the headline: the WQL, the scores by horizon step, the
    coverage and its standard error, the PIT and the per-time losses."""
    known = np.isfinite(obs)
    err = np.where(known, point - obs, np.nan)
    quant = predictive.quantiles(QUANTILES)
    s.overall["WQL"] = weighted_quantile_loss(quant, obs)
    bands = intervals(predictive)
    s.by_horizon = {
        "MAE": _mean(np.abs(err), axis=0).tolist(),
        "CRPS": _mean(crps, axis=0).tolist(),
        "coverage_90": coverage(bands, obs, axis=0)["0.9"],
    }
    s.coverage, s.pit = coverage(bands, obs), pit_histogram(predictive.pit(obs)[known])
    scale = np.abs(obs[known]).mean() if known.any() else np.nan  # WQL's: its losses average to the WQL
    per_window = {"MAE": np.abs(err), "CRPS": crps, "WQL": quantile_loss(quant, obs) / scale}
    labelled = np.isfinite(trade_label)[:, None]  # the tests run over the windows whose whole future is known
    s.losses = _losses({k: np.where(labelled, v, np.nan) for k, v in per_window.items()}, times)
    s.coverage_se = coverage_error(bands, obs, np.asarray(times), lags=predict)


__all__ = ["COVERAGES", "LOSSES", "MIN_TIMES", "ModelScores", "score"]
