"""The time-series correlation of a forecast with its label and its HAC t-statistic, on constructed data with
known answers: the sandwich by hand (with `arch`'s Newey-West), the iid limit, and the size of the test when
overlapping labels make neighbouring windows correlated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.metrics.ic import time_series_ic
from kronos_cli.metrics.probabilistic import quantile_loss, weighted_quantile_loss
from kronos_cli.metrics.significance import long_run_variance


def _series(signal: np.ndarray, label: np.ndarray, names: list[str] | None = None) -> tuple[pd.Series, pd.Series]:
    """One series (or one per name, each over the same hours) as the (datetime, instrument) pairs IC functions take."""
    names = names or ["BTC"]
    n = len(signal) // len(names)
    times = np.tile(pd.date_range("2024-01-01", periods=n, freq="h").values, len(names))
    idx = pd.MultiIndex.from_arrays([times, np.repeat(names, n)], names=["datetime", "instrument"])
    return pd.Series(signal, index=idx), pd.Series(label, index=idx)


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def test_one_series_gives_pearson_and_the_newey_west_t_by_hand():
    rng = np.random.default_rng(3)
    x = np.convolve(rng.normal(size=404), np.ones(5), "valid")  # overlapping 5-bar sums, like a 5-bar label
    y = 0.3 * x + np.convolve(rng.normal(size=404), np.ones(5), "valid") * 2
    got = time_series_ic(*_series(x, y), lags=5)
    assert got["corr"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert got["windows"] == 400 and got["series"] == 1
    zx, zy = _standardised(x), _standardised(y)
    scores = zx * (zy - got["corr"] * zx)  # the regression's scores: they sum to zero
    se = np.sqrt(len(x) * long_run_variance(scores, 5) / (zx @ zx) ** 2)
    assert got["t"] == pytest.approx(got["corr"] / se, rel=1e-9)


def test_two_series_pool_their_correlations_and_sum_scores_per_time():
    rng = np.random.default_rng(4)
    n = 300
    xa, xb = rng.normal(size=n), rng.normal(size=n) * 5 + 2  # another level and spread: standardised away
    ya, yb = 0.5 * xa + rng.normal(size=n), -0.1 * xb + rng.normal(size=n)
    got = time_series_ic(*_series(np.r_[xa, xb], np.r_[ya, yb], ["A", "B"]), lags=3)
    ca, cb = np.corrcoef(xa, ya)[0, 1], np.corrcoef(xb, yb)[0, 1]
    assert got["corr"] == pytest.approx((ca + cb) / 2, abs=1e-12) and got["series"] == 2
    za, zb = _standardised(xa), _standardised(xb)
    per_time = za * (_standardised(ya) - got["corr"] * za) + zb * (_standardised(yb) - got["corr"] * zb)
    se = np.sqrt(n * long_run_variance(per_time, 3) / (za @ za + zb @ zb) ** 2)  # Driscoll-Kraay
    assert got["t"] == pytest.approx(got["corr"] / se, rel=1e-9)


def test_iid_pairs_give_the_textbook_t():
    rng = np.random.default_rng(5)
    n, rho = 20_000, 0.2
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    got = time_series_ic(*_series(x, y), lags=0)
    assert got["corr"] == pytest.approx(rho, abs=0.015)
    assert got["t"] == pytest.approx(got["corr"] * np.sqrt(n / (1 - got["corr"] ** 2)), rel=0.05)


def test_overlapping_labels_need_the_lags():
    """Forecast and label independent, both 10-bar sums of fresh noise (overlapping windows): with 10 lags |t| >
    1.96 in about 12% of 300-window samples (Newey-West is somewhat oversized in small samples; 5% is nominal),
    with none in nearly half."""
    rng = np.random.default_rng(6)
    rejected = {0: 0, 10: 0}
    for _ in range(200):
        x = np.convolve(rng.normal(size=309), np.ones(10), "valid")
        y = np.convolve(rng.normal(size=309), np.ones(10), "valid")
        for lags in rejected:
            rejected[lags] += abs(time_series_ic(*_series(x, y), lags=lags)["t"]) > 1.96
    assert rejected[10] / 200 < 0.16 and rejected[0] / 200 > 0.35


def test_a_constant_forecast_has_no_correlation():
    got = time_series_ic(*_series(np.zeros(50), np.arange(50.0)), lags=2)
    assert got["corr"] != got["corr"] and got["t"] != got["t"] and got["windows"] == 0


def test_quantile_loss_of_a_point_is_its_error_and_sums_to_the_wql():
    rng = np.random.default_rng(7)
    obs = rng.normal(0, 0.02, (30, 4))
    obs[0, 2] = np.nan
    point = np.full((9, 30, 4), 0.001)
    loss = quantile_loss(point, obs)
    assert np.isnan(loss[0, 2]) and np.allclose(loss[np.isfinite(obs)], np.abs(obs - 0.001)[np.isfinite(obs)])
    spread = np.sort(rng.normal(0, 0.02, (9, 30, 4)), axis=0)
    assert np.nansum(quantile_loss(spread, obs)) / np.nansum(np.abs(obs)) == pytest.approx(
        weighted_quantile_loss(spread, obs)
    )
    assert weighted_quantile_loss(np.zeros((9, 30, 4)), obs) == pytest.approx(1.0)  # the last close's
