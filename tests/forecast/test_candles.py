"""Valid candles: every forecast bar has low <= min(open, close), high >= max(open, close), volume and amount >= 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kronos_cli.forecast import KronosPredictor
from kronos_cli.forecast.candles import plausible, repair
from kronos_cli.forecast.series import forecast_series, quantile_column
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.market.bars import FEATURES
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.sampling import Sampling
from tests.conftest import make_bars


def assert_valid(bars: np.ndarray) -> None:
    o, h, lo, c, v, a = np.moveaxis(bars, -1, 0)
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (h >= lo).all()
    assert (v >= 0).all() and (a >= 0).all()


values = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5), st.just(6)), elements=values))
def test_repaired_paths_their_mean_and_quantiles_are_valid_candles(paths):
    fixed, share = repair(paths)
    assert_valid(fixed)
    assert_valid(fixed.mean(axis=0))
    for q in (0.05, 0.5, 0.95):
        assert_valid(np.quantile(fixed, q, axis=0))
    np.testing.assert_array_equal(fixed[..., [0, 3]], paths[..., [0, 3]])  # open and close never change
    changed = (fixed != paths).any(axis=-1)
    assert share == pytest.approx(changed.mean())
    assert repair(fixed)[1] == 0.0  # a valid bar is left alone


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model_seed=st.integers(0, 2**16),
    data_seed=st.integers(0, 2**16),
    length=st.integers(20, 80),
    samples=st.integers(1, 8),
    temperature=st.floats(0.3, 2.0),
)
def test_any_random_model_forecasts_valid_candles_unless_raw(model_seed, data_seed, length, samples, temperature):
    torch.manual_seed(model_seed)
    forecaster = KronosPredictor(
        Kronos.from_preset("tiny"), KronosTokenizer.from_preset("tokenizer-tiny"), device="cpu", max_context=64
    )
    bars = make_bars(length, seed=data_seed)
    spec = ForecastSpec(6, 64, sampling=Sampling(temperature=temperature, paths=samples, seed=data_seed))
    fc = forecast_series(forecaster, bars, spec, (0.1, 0.9))
    assert_valid(fc.samples)
    for cols in (
        list(FEATURES),
        [quantile_column(f, 0.1) for f in FEATURES],
        [quantile_column(f, 0.9) for f in FEATURES],
    ):
        assert_valid(fc.table[cols].to_numpy())
    raw = forecast_series(forecaster, bars, spec, (0.1, 0.9), raw=True)
    assert raw.repaired is None and 0.0 <= fc.repaired <= 1.0
    np.testing.assert_array_equal(raw.table["close"], fc.table["close"])  # the close is the model's either way
    assert fc.repaired == pytest.approx(repair(raw.samples)[1])


@pytest.fixture(scope="module")
def tiny_forecaster():
    torch.manual_seed(0)
    return KronosPredictor(
        Kronos.from_preset("tiny"), KronosTokenizer.from_preset("tokenizer-tiny"), device="cpu", max_context=64
    )


def _assert_plausible(fc) -> None:
    prices, amounts = fc.samples[..., :4], fc.samples[..., 4:]
    assert (prices > 0).all() and (amounts >= 0).all()
    hist = fc.history[list(FEATURES)].to_numpy()
    assert (fc.samples[..., 3] >= 0.01 * hist[:, 3].mean() * (1 - 1e-6)).all()


@pytest.mark.parametrize("case", ["one bar at 1e18", "prices of 1e-30"])
def test_implausible_lookbacks_never_give_a_negative_forecast(tiny_forecaster, case):
    """A lookback with one bar at 1e18 gave forecast closes of -7.4e14; prices of 1e-30 (whose std is far below
    the normalisation's epsilon) gave negative closes. Raw or mended, prices stay positive, and the clip is said."""
    bars = make_bars(60, seed=3)
    if case == "one bar at 1e18":
        bars.loc[40, ["open", "high", "low", "close"]] = 1e18
    else:
        bars[["open", "high", "low", "close"]] *= 1e-32
    for raw in (False, True):
        fc = forecast_series(
            tiny_forecaster,
            bars,
            ForecastSpec(8, tiny_forecaster.max_context, sampling=Sampling(temperature=1.5, paths=8, seed=1)),
            raw=raw,
        )
        _assert_plausible(fc)
        assert fc.clipped > 0
        assert fc.to_json()["clipped_values"] == fc.clipped


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.floats(-25, 15), outlier=st.floats(0, 12), at=st.integers(0, 39), seed=st.integers(0, 2**16))
def test_any_scale_and_outlier_gives_positive_prices_inside_the_tokenizer_range(
    tiny_forecaster, scale, outlier, at, seed
):
    bars = make_bars(40, seed=seed)
    bars[["open", "high", "low", "close"]] *= 10.0**scale
    bars.loc[at, ["open", "high", "low", "close"]] *= 10.0**outlier
    fc = forecast_series(
        tiny_forecaster,
        bars,
        ForecastSpec(4, tiny_forecaster.max_context, sampling=Sampling(temperature=2.0, paths=4, seed=seed)),
        raw=True,
    )
    _assert_plausible(fc)
    hist = fc.history[list(FEATURES)].to_numpy(np.float32)
    top = hist.mean(axis=0) + 5 * (hist.std(axis=0) + 1e-5)
    assert (fc.samples <= top * (1 + 1e-5)).all()


def test_a_forecast_inside_the_range_is_left_bit_for_bit(tiny_forecaster):
    bars = make_bars(60, seed=5)
    paths = np.stack([bars[list(FEATURES)].to_numpy(np.float32)[-8:]] * 3)  # the lookback's own bars: in range
    out, clipped = plausible(paths, bars[list(FEATURES)].to_numpy(np.float32), 5.0)
    assert clipped == 0
    np.testing.assert_array_equal(out, paths)


def test_backtest_and_evaluate_prices_are_bounded_the_same_way():
    """The split forecasts (close paths in the model's units) that evaluate and validation score as returns."""
    from kronos_cli.forecast.windows import WindowForecasts

    z = np.array([[[0.5, -40.0, 40.0]]], np.float32)  # in range, below the floor, beyond the tokenizer's range
    fc = WindowForecasts(
        z,
        np.zeros(1, np.float32),
        np.array([100.0], np.float32),
        np.array([10.0], np.float32),
        np.array([100.0]),
        clip=5.0,
    )
    prices = fc.price_paths()[0, 0]
    assert prices[0] == np.float32(0.5) * np.float32(10.0 + 1e-5) + np.float32(100.0)  # untouched
    assert prices[1] == pytest.approx(50.0, rel=1e-5) and prices[2] == pytest.approx(150.0, rel=1e-5)
    assert fc.clipped() == 2 and (fc.return_paths() > -1).all()
    assert fc.subset(np.array([0])).clip == 5.0 and WindowForecasts.concat([fc, fc]).clipped() == 4
