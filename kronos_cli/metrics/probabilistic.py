"""Scores of predictive distributions of returns: CRPS (scoringrules), weighted quantile loss, interval
coverage and the probability integral transform, for sample paths, normal forecasts and point forecasts.

Every predictive covers (N windows, P horizon steps); observations are (N, P) and NaN where unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scoringrules as sr
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from kronos_cli.metrics.significance import ratio_standard_error

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
COVERAGES = (0.5, 0.8, 0.9)  # central intervals


@dataclass
class Ensemble:
    """Sample paths (N, S, P); the CRPS uses the fair estimator (unbiased whatever the number of samples) in its
    probability-weighted-moment form, which gives the same values in O(S log S) instead of O(S^2)."""

    samples: np.ndarray

    def point(self) -> np.ndarray:
        """The mean path, as Kronos averages its sample paths (with a few dozen paths the sample mean is a less
        noisy estimate of the centre than the sample median, on MAE too)."""
        return self.samples.mean(axis=1)

    def quantiles(self, qs) -> np.ndarray:
        return np.quantile(self.samples, qs, axis=1)

    def crps(self, obs: np.ndarray) -> np.ndarray:
        if self.samples.shape[1] < 2:  # one sample: the CRPS of a point forecast
            return np.abs(self.samples[:, 0] - obs)
        return np.asarray(sr.crps_ensemble(obs, self.samples, m_axis=1, estimator="pwm"))

    def pit(self, obs: np.ndarray) -> np.ndarray:
        below = (self.samples < obs[:, None]).mean(axis=1)
        equal = (self.samples == obs[:, None]).mean(axis=1)
        return below + equal / 2


@dataclass
class Normal:
    """A normal forecast of each step: mean (N, P) and standard deviation (N, P)."""

    mu: np.ndarray
    sigma: np.ndarray

    def point(self) -> np.ndarray:
        return self.mu

    def quantiles(self, qs) -> np.ndarray:
        return np.stack([norm.ppf(q, self.mu, self.sigma) for q in np.atleast_1d(qs)])

    def crps(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(sr.crps_normal(obs, self.mu, self.sigma))

    def pit(self, obs: np.ndarray) -> np.ndarray:
        return norm.cdf(obs, self.mu, self.sigma)


@dataclass
class Point:
    """A point forecast (N, P): its CRPS is the absolute error, every quantile is the point."""

    value: np.ndarray

    def point(self) -> np.ndarray:
        return self.value

    def quantiles(self, qs) -> np.ndarray:
        return np.stack([self.value] * len(np.atleast_1d(qs)))

    def crps(self, obs: np.ndarray) -> np.ndarray:
        return np.abs(self.value - obs)

    def pit(self, obs: np.ndarray) -> np.ndarray:
        return np.where(obs > self.value, 1.0, np.where(obs < self.value, 0.0, 0.5))


Predictive = Ensemble | Normal | Point


def quantile_loss(quantiles: np.ndarray, obs: np.ndarray, qs=QUANTILES) -> np.ndarray:
    """Per entry: 2 x the quantile (pinball) losses averaged over the levels, NaN where obs is unknown; quantiles
    (Q, ...) match obs (...). A point forecast's is its absolute error (every quantile is the point)."""
    known = np.isfinite(obs)
    y = np.where(known, obs, 0.0)
    total = sum(np.asarray(sr.quantile_score(y, quantiles[i], q)) for i, q in enumerate(qs))
    return np.where(known, 2 * total / len(qs), np.nan)


def weighted_quantile_loss(quantiles: np.ndarray, obs: np.ndarray, qs=QUANTILES) -> float:
    """2 x the quantile (pinball) losses summed over quantile levels and entries, over the sum of |obs|, averaged
    over the levels (the WQL of GluonTS and Chronos; the last close's is 1); quantiles (Q, ...) match obs (...)."""
    scale = np.abs(obs[np.isfinite(obs)]).sum()
    return float(np.nansum(quantile_loss(quantiles, obs, qs)) / scale) if scale > 0 else float("nan")


def intervals(predictive: Predictive, levels=COVERAGES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The central interval (low, high), each (N, P), of every nominal level."""
    bounds = predictive.quantiles([p for level in levels for p in ((1 - level) / 2, (1 + level) / 2)])
    return {f"{level:g}": (bounds[2 * i], bounds[2 * i + 1]) for i, level in enumerate(levels)}


def coverage(bands: dict[str, tuple[np.ndarray, np.ndarray]], obs: np.ndarray, axis=None) -> dict[str, object]:
    """The share of known observations inside each interval (nominal level -> observed share), over all entries
    or along `axis` (0: per horizon step)."""
    known = np.isfinite(obs)
    out = {}
    for level, (lo, hi) in bands.items():
        inside = ((obs >= lo) & (obs <= hi) & known).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = inside / known.sum(axis=axis)
        out[level] = share.tolist() if axis is not None else float(share)
    return out


def coverage_error(
    bands: dict[str, tuple[np.ndarray, np.ndarray]], obs: np.ndarray, times: np.ndarray, lags: int
) -> dict[str, float]:
    """The standard error of each band's coverage (nominal level -> points of share), over signal times `times`
    (N,) with Newey-West `lags` (`significance.ratio_standard_error`): how far the coverage can sit from its
    expectation by chance alone."""
    known = np.isfinite(obs)
    order, groups = np.unique(np.asarray(times), return_inverse=True)
    counts = np.bincount(groups, weights=known.sum(axis=1), minlength=len(order))
    out = {}
    for level, (lo, hi) in bands.items():
        inside = ((obs >= lo) & (obs <= hi) & known).sum(axis=1)
        out[level] = ratio_standard_error(np.bincount(groups, weights=inside, minlength=len(order)), counts, lags)
    return out


def pit_histogram(pit: np.ndarray, bins: int = 10) -> list[float]:
    """Shares of the PIT values in `bins` equal bins of [0, 1] (flat when the forecast is calibrated)."""
    values = pit[np.isfinite(pit)]
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return (counts / max(len(values), 1)).tolist()


def wilson_interval(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (statsmodels)."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(hits, n, alpha=1 - level, method="wilson")
    return float(lo), float(hi)
