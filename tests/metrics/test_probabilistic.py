"""Probabilistic scores and significance tests against values computed by hand on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_cli.metrics.probabilistic import (
    Ensemble,
    Normal,
    Point,
    coverage,
    intervals,
    pit_histogram,
    weighted_quantile_loss,
    wilson_interval,
)
from kronos_cli.metrics.significance import block_bootstrap_interval, diebold_mariano, long_run_variance, newey_west_t


def test_a_perfect_ensemble_scores_zero_and_covers_everything():
    obs = np.array([[0.01, -0.02], [0.03, 0.0]])
    ens = Ensemble(np.repeat(obs[:, None, :], 8, axis=1))
    assert np.allclose(ens.crps(obs), 0)
    assert np.allclose(ens.point(), obs)
    assert weighted_quantile_loss(ens.quantiles([0.1, 0.5, 0.9]), obs, (0.1, 0.5, 0.9)) == pytest.approx(0)
    assert coverage(intervals(ens), obs) == {"0.5": 1.0, "0.8": 1.0, "0.9": 1.0}
    assert np.allclose(ens.pit(obs), 0.5)  # every sample ties with the outcome


def test_crps_of_small_ensembles_and_of_a_normal_by_hand():
    # fair CRPS of {0, 2} at 1: mean |x - y| = 1, minus sum_ij |xi - xj| / (2 m (m - 1)) = 4 / 4 = 1  ->  0
    assert Ensemble(np.array([[[0.0], [2.0]]])).crps(np.array([[1.0]]))[0, 0] == pytest.approx(0.0)
    # {0, 2} at 3: mean |x - y| = 2, minus 1  ->  1
    assert Ensemble(np.array([[[0.0], [2.0]]])).crps(np.array([[3.0]]))[0, 0] == pytest.approx(1.0)
    # N(0, 1) at 0: 2 phi(0) - 1 / sqrt(pi)
    expected = 2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi)
    assert Normal(np.zeros((1, 1)), np.ones((1, 1))).crps(np.zeros((1, 1)))[0, 0] == pytest.approx(expected)


def test_a_constant_forecast_has_crps_equal_to_its_error_and_wql_equal_to_its_mase():
    obs = np.array([[0.02, -0.01, 0.04], [-0.03, 0.01, 0.0]])
    flat = Point(np.zeros_like(obs))
    assert np.allclose(flat.crps(obs), np.abs(obs))
    # every quantile is the point: 2 x pinball summed over 0.1..0.9 and averaged over levels is |y - point|
    from kronos_cli.metrics.probabilistic import QUANTILES

    assert weighted_quantile_loss(flat.quantiles(QUANTILES), obs) == pytest.approx(1.0)
    shifted = Point(np.full_like(obs, 0.01))
    wql = weighted_quantile_loss(shifted.quantiles(QUANTILES), obs)
    assert wql == pytest.approx(np.abs(obs - 0.01).sum() / np.abs(obs).sum())


def test_coverage_of_a_known_forecast():
    # 100 samples 1..100: numpy's quantiles give the 50% interval (25.75, 75.25), the 90% one (5.95, 95.05)
    samples = np.tile(np.arange(1.0, 101.0)[None, :, None], (10, 1, 1))
    obs = np.array([50, 30, 70, 10, 90, 5, 95, 0, 101, 60], dtype=float)[:, None]
    cov = coverage(intervals(Ensemble(samples)), obs)
    assert cov["0.5"] == pytest.approx(0.4)  # 50, 30, 70, 60
    assert cov["0.9"] == pytest.approx(0.7)  # and 10, 90, 95
    unknown = obs.copy()
    unknown[:5] = np.nan  # unknown outcomes are left out of the share, not counted as misses
    assert coverage(intervals(Ensemble(samples)), unknown)["0.9"] == pytest.approx(2 / 5)  # 95, 60


def test_normal_coverage_and_a_flat_pit_when_the_forecast_is_the_truth():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(20000, 1))
    normal = Normal(np.zeros_like(obs), np.ones_like(obs))
    cov = coverage(intervals(normal), obs)
    for level in (0.5, 0.8, 0.9):
        assert cov[f"{level:g}"] == pytest.approx(level, abs=0.01)
    assert np.allclose(pit_histogram(normal.pit(obs)), 0.1, atol=0.01)


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(55, 100)
    assert (lo, hi) == pytest.approx((0.452446, 0.643855), abs=1e-6)
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # NaN: no evidence


def test_newey_west_and_block_bootstrap_by_hand():
    x = np.array([1.0, -1.0, 1.0, -1.0])
    # gamma_0 = 1, gamma_1 = -3/4; lag 1: 1 + 2 (1 - 1/2) (-3/4) = 1/4
    assert long_run_variance(x, 0) == pytest.approx(1.0)
    assert long_run_variance(x, 1) == pytest.approx(0.25)
    assert block_bootstrap_interval(np.full(30, 0.2), block=5) == pytest.approx((0.2, 0.2))
    assert newey_west_t(np.full(30, 0.2) + np.linspace(-0.01, 0.01, 30), lags=2) > 10


def test_diebold_mariano_sign_and_power():
    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 0.01, 200)
    better = base * 0.8
    stat, p = diebold_mariano(better, base, horizon=5)
    assert stat < 0 and p < 0.01  # negative: the first forecast has the lower loss
    stat, p = diebold_mariano(base, better, horizon=5)
    assert stat > 0 and p < 0.01
    noise = base + rng.normal(0, 0.01, 200)
    assert diebold_mariano(noise, base + rng.normal(0, 0.01, 200), horizon=5)[1] > 0.01


def test_coverage_error_is_the_binomial_one_for_independent_windows_and_grows_with_overlap():
    """One window per signal time, independent hits: the standard error is sqrt(p (1 - p) / n); hits that come in
    runs (as overlapping horizons make them) widen it."""
    from kronos_cli.metrics.probabilistic import coverage_error

    rng = np.random.default_rng(0)
    n = 4000
    obs = rng.normal(size=(n, 1))
    bands = {"0.5": (np.full((n, 1), -0.6745), np.full((n, 1), 0.6745))}
    se = coverage_error(bands, obs, np.arange(n), lags=0)["0.5"]
    assert se == pytest.approx(np.sqrt(0.25 / n), rel=0.05)
    runs = np.repeat(rng.normal(size=(n // 10, 1)), 10, axis=0)  # each outcome repeated over 10 signal times
    assert coverage_error(bands, runs, np.arange(n), lags=10)["0.5"] > 2 * se
    both = {k: (np.tile(lo, (2, 1)), np.tile(hi, (2, 1))) for k, (lo, hi) in bands.items()}
    two = coverage_error(both, np.tile(obs, (2, 1)), np.tile(np.arange(n), 2), lags=0)["0.5"]
    assert two == pytest.approx(se, rel=1e-9)  # two symbols with the same outcomes: no new information
