"""The scores of one forecaster on a split's windows, in price-return units, overall and per horizon step.

Point scores (`metrics/accuracy.py`) use the predictive's mean; MASE divides by the last-close forecast's MAE;
direction counts the steps where both the forecast and the outcome moved (a Wilson 95% interval beside it); the
IC family ranks the windows of each day by the point forecast of the return at the horizon's last bar, against
the trade label (see `data/labels.py`), with a Newey-West t-statistic and a block-bootstrap 95% interval over
days.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import daily_ic
from kronos_cli.metrics.probabilistic import (
    COVERAGES,
    QUANTILES,
    Predictive,
    coverage,
    intervals,
    pit_histogram,
    weighted_quantile_loss,
)
from kronos_cli.metrics.significance import block_bootstrap_interval, newey_west_t

MIN_DAYS = 20  # days with a known label (and at least 3 names) the statistics need


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
    daily_loss: dict[str, pd.Series] = field(default_factory=dict, repr=False)  # for the significance tests

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "daily_loss"}


def _mean(x: np.ndarray, axis=None):
    with warnings.catch_warnings():  # a step or a day without any known value is NaN, as it should be
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _ic(point_end: np.ndarray, label: np.ndarray, names: np.ndarray, days: pd.DatetimeIndex, predict: int) -> tuple:
    idx = pd.MultiIndex.from_arrays([days, names], names=["datetime", "instrument"])
    d = daily_ic(pd.Series(point_end, index=idx), pd.Series(label, index=idx))
    if d.empty:
        return {
            "IC": float("nan"),
            "Rank IC": float("nan"),
            "ICIR": float("nan"),
            "IC_t": float("nan"),
            "Rank_IC_t": float("nan"),
            "IC_lo": float("nan"),
            "IC_hi": float("nan"),
            "days": 0,
        }, {}
    lo, hi = block_bootstrap_interval(d["IC"].to_numpy(), block=predict)
    ic = {
        "IC": float(d["IC"].mean()),
        "Rank IC": float(d["Rank IC"].mean()),
        "ICIR": float(d["IC"].mean() / d["IC"].std()) if d["IC"].std() > 0 else float("nan"),
        "IC_t": newey_west_t(d["IC"].to_numpy(), lags=predict),
        "Rank_IC_t": newey_west_t(d["Rank IC"].to_numpy(), lags=predict),
        "IC_lo": lo,
        "IC_hi": hi,
        "days": int(len(d)),
    }
    monthly = d["IC"].groupby(d.index.to_period("M")).mean()
    return ic, {str(k): float(v) for k, v in monthly.items()}


def score(
    label: str,
    kind: str,
    source: str,
    predictive: Predictive,
    obs: np.ndarray,
    trade_label: np.ndarray,
    names: np.ndarray,
    days: pd.DatetimeIndex,
    predict: int,
) -> ModelScores:
    """Scores of `predictive` against the realised return paths `obs` (N, P; NaN where unknown)."""
    point = predictive.point()
    err = np.where(np.isfinite(obs), point - obs, np.nan)
    crps = np.where(np.isfinite(obs), predictive.crps(np.nan_to_num(obs)), np.nan)
    quant = predictive.quantiles(QUANTILES)
    overall = {**return_accuracy(point, obs), "CRPS": float(_mean(crps)), "WQL": weighted_quantile_loss(quant, obs)}
    bands = intervals(predictive)
    cover = coverage(bands, obs)
    by_h = {
        "MAE": _mean(np.abs(err), axis=0).tolist(),
        "CRPS": _mean(crps, axis=0).tolist(),
        "coverage_90": coverage(bands, obs, axis=0)["0.9"],
    }
    ic, monthly = _ic(point[:, -1], trade_label, names, days, predict)
    day_index = pd.DatetimeIndex(days)
    daily = {
        "MAE": pd.Series(_mean(np.abs(err), axis=1), index=day_index).groupby(level=0).mean(),
        "CRPS": pd.Series(_mean(crps, axis=1), index=day_index).groupby(level=0).mean(),
    }
    return ModelScores(
        label,
        kind,
        source,
        overall,
        by_h,
        cover,
        pit_histogram(predictive.pit(obs)[np.isfinite(obs)]),
        ic,
        monthly,
        daily,
    )


__all__ = ["COVERAGES", "MIN_DAYS", "ModelScores", "score"]
