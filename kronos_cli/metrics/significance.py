"""Whether a difference is more than noise, for daily series that overlap in time (a P-day label makes
consecutive days' values correlated): Newey-West standard errors and circular block bootstrap intervals (both
from `arch`), and the Diebold-Mariano test with the Harvey-Leybourne-Newbold correction on top of them."""

from __future__ import annotations

import numpy as np
from arch.bootstrap import CircularBlockBootstrap
from arch.covariance.kernel import Bartlett
from scipy.stats import t as student_t


def long_run_variance(x: np.ndarray, lags: int) -> float:
    """Newey-West (Bartlett kernel) long-run variance: gamma_0 + 2 sum_k (1 - k/(lags+1)) gamma_k."""
    x = np.asarray(x, dtype=float)
    lags = max(0, min(lags, len(x) - 1))
    return float(max(np.squeeze(Bartlett(x, bandwidth=lags, force_int=True).cov.long_run), 0.0))


def newey_west_t(x: np.ndarray, lags: int) -> float:
    """The mean of x over its Newey-West standard error."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan")
    se = np.sqrt(long_run_variance(x, lags) / n)
    return float(x.mean() / se) if se > 0 else float("nan")


def block_bootstrap_interval(
    x: np.ndarray, block: int, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean of x from a circular block bootstrap (blocks keep the serial correlation)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    boot = CircularBlockBootstrap(max(1, min(block, n)), x, seed=seed)
    lo, hi = boot.conf_int(np.mean, reps=resamples, method="percentile", size=level).ravel()
    return float(lo), float(hi)


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the test that forecasts A and B have equal expected loss, for aligned
    daily losses; negative statistics favour A. The variance of the loss differential is Newey-West with
    `horizon - 1` lags, and the statistic carries the Harvey-Leybourne-Newbold small-sample correction, read
    against Student's t with n - 1 degrees of freedom."""
    d = np.asarray(loss_a, dtype=float) - np.asarray(loss_b, dtype=float)
    d = d[np.isfinite(d)]
    n, h = len(d), max(1, horizon)
    if n < 3:
        return float("nan"), float("nan")
    var = long_run_variance(d, h - 1) / n
    if var <= 0:
        return float("nan"), float("nan")
    stat = d.mean() / np.sqrt(var)
    stat *= np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return float(stat), float(2 * student_t.sf(abs(stat), df=n - 1))


def ratio_standard_error(hits: np.ndarray, counts: np.ndarray, lags: int) -> float:
    """The Newey-West standard error of a share sum(hits) / sum(counts) whose parts come one signal time at a time
    (hits and counts per time, in time order), by the delta method: the share's error is the long-run variance of
    hits_t - share x counts_t over the mean count. Overlapping horizons make neighbouring times' hits correlated,
    which `lags` covers; a share from 200 windows of one series can sit 5 points from its expectation by chance."""
    hits, counts = np.asarray(hits, dtype=float), np.asarray(counts, dtype=float)
    keep = counts > 0
    hits, counts = hits[keep], counts[keep]
    if len(counts) < 2:
        return float("nan")
    share = hits.sum() / counts.sum()
    return float(np.sqrt(long_run_variance(hits - share * counts, lags) / len(counts)) / counts.mean())
