"""Bands fitted on validation (`metrics/recalibration.py`), on ensembles whose miscalibration is known: drawn too
narrow by a known factor from a known distribution, the bands find the factor and hold their nominal coverage on
fresh windows."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_cli.metrics.probabilistic import COVERAGES, Ensemble, Point, coverage, intervals
from kronos_cli.metrics.recalibration import TARGET, BandCorrection, Recalibrated, fit_bands, meets_target, path_counts

FACTOR = 3.0  # the outcomes' spread over the paths'


def narrow(rng, windows: int, paths: int, steps: int = 3, df: float | None = None):
    """Paths (N, S, P) drawn FACTOR times too narrow around each window's own centre and volatility (growing with
    the horizon), and the outcomes (N, P): normal, or Student t with `df` degrees of freedom."""
    vol = rng.uniform(0.005, 0.03, (windows, 1)) * np.sqrt(np.arange(1, steps + 1))
    centre = rng.normal(0, 0.01, (windows, 1))

    def draw(*shape):
        return rng.standard_t(df, shape) if df else rng.normal(0, 1, shape)

    obs = centre + vol * draw(windows, steps)
    paths = centre[:, None] + vol[:, None] / FACTOR * draw(windows, paths, steps)
    return paths, obs


def test_bands_find_the_factor_by_which_the_paths_are_too_narrow():
    rng = np.random.default_rng(0)
    paths, obs = narrow(rng, 4000, 200)
    bands = fit_bands(paths, obs)
    z = bands.residual_quantiles([0.1587, 0.5, 0.8413], 200, 3)  # the normal's -1, 0, +1 standard deviations
    assert z[1] == pytest.approx(0, abs=0.15)
    assert (z[2] - z[0]) / 2 == pytest.approx(FACTOR, rel=0.06)


@pytest.mark.parametrize("paths, df", [(5, None), (16, None), (5, 4.0)])
def test_bands_fitted_on_validation_hold_nominal_coverage_on_fresh_windows(paths, df):
    rng = np.random.default_rng(1)
    val_paths, val_obs = narrow(rng, 3000, paths, df=df)
    test_paths, test_obs = narrow(rng, 3000, paths, df=df)
    before = coverage(intervals(Ensemble(test_paths)), test_obs)
    assert before["0.9"] < 0.6 and not meets_target(before)
    bands = fit_bands(val_paths, val_obs)
    after = coverage(intervals(Recalibrated(test_paths, bands)), test_obs)
    assert all(abs(after[f"{level:g}"] - level) < 0.03 for level in COVERAGES), after
    assert meets_target(after)
    assert np.nanmean(Recalibrated(test_paths, bands).crps(test_obs)) < np.nanmean(Ensemble(test_paths).crps(test_obs))
    pit = Recalibrated(test_paths, bands).pit(test_obs)
    assert np.histogram(pit, bins=10, range=(0, 1))[0].min() / pit.size > 0.08  # flat


def test_bands_for_fewer_paths_are_fitted_from_the_first_paths_and_chosen_by_count():
    rng = np.random.default_rng(2)
    paths, obs = narrow(rng, 2000, 16)
    bands = fit_bands(paths, obs)
    assert path_counts(16) == (2, 3, 4, 6, 8, 12, 16) and tuple(sorted(bands.tables)) == path_counts(16)
    assert path_counts(4) == (2, 3, 4) and path_counts(2) == (2,) and path_counts(1) == ()
    # a spread from fewer paths is noisier: its residuals have heavier tails
    assert bands.tables[2][0, -1] > bands.tables[4][0, -1] > bands.tables[16][0, -1]
    assert (
        bands.table(5) is bands.tables[4] and bands.table(100) is bands.tables[16] and bands.table(1) is bands.tables[2]
    )
    # 4 of the paths, read with the bands of 4, hold the coverage too
    fresh_paths, fresh_obs = narrow(rng, 2000, 4)
    assert meets_target(coverage(intervals(Recalibrated(fresh_paths, bands)), fresh_obs))


def test_bands_are_the_same_for_returns_and_for_prices():
    rng = np.random.default_rng(3)
    paths, obs = narrow(rng, 500, 8)
    bands = fit_bands(paths, obs)
    last_close = rng.uniform(10, 200, 500)[:, None, None]
    in_prices = bands.quantiles(last_close * (1 + paths), [0.05, 0.5, 0.95])
    np.testing.assert_allclose(in_prices, last_close[None, :, :, 0] * (1 + bands.quantiles(paths, [0.05, 0.5, 0.95])))
    # steps beyond the fitted horizon take the last step's bands
    longer = np.concatenate([paths, paths[..., -1:]], axis=-1)
    np.testing.assert_allclose(bands.quantiles(longer, [0.9])[..., -1], bands.quantiles(paths, [0.9])[..., -1])


def test_a_window_whose_paths_agree_keeps_a_zero_width_band_and_scores_as_a_point():
    rng = np.random.default_rng(4)
    paths, obs = narrow(rng, 300, 4)
    bands = fit_bands(paths, obs)
    same = np.repeat(paths[:, :1], 4, axis=1)  # every path the first
    q = Recalibrated(same, bands).quantiles([0.05, 0.95])
    np.testing.assert_allclose(q[0], q[1])
    np.testing.assert_allclose(Recalibrated(same, bands).crps(obs), Point(same[:, 0]).crps(obs), rtol=1e-9)
    assert fit_bands(same, obs) is None  # no spread, no residuals to fit
    assert fit_bands(paths[:, :1], obs) is None  # one path has no spread


def test_bands_round_trip_through_json_and_bad_ones_are_refused():
    rng = np.random.default_rng(5)
    paths, obs = narrow(rng, 300, 4)
    bands = fit_bands(paths, obs)
    again = BandCorrection.from_json(bands.to_json())
    np.testing.assert_allclose(again.quantiles(paths, [0.1, 0.9]), bands.quantiles(paths, [0.1, 0.9]), atol=1e-5)
    assert again.describe() == {"windows": 300, "paths": [2, 3, 4], "steps": 3}
    bad = bands.to_json()
    bad["paths"]["4"][0] = bad["paths"]["4"][0][::-1]
    with pytest.raises(ValueError, match="must not decrease"):
        BandCorrection.from_json(bad)
    with pytest.raises(ValueError, match="levels"):
        BandCorrection.from_json({**bands.to_json(), "levels": [0.5, 0.2]})


def test_the_target_is_each_band_within_five_points():
    assert TARGET == 0.05
    assert meets_target({"0.5": 0.46, "0.8": 0.84, "0.9": 0.86})
    assert not meets_target({"0.5": 0.5, "0.8": 0.8, "0.9": 0.84})
    assert not meets_target({"0.5": float("nan"), "0.8": 0.8, "0.9": 0.9})
