"""Valid candles: every forecast bar has low <= min(open, close), high >= max(open, close), volume and amount >= 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kronos_cli.bars import FEATURES
from kronos_cli.forecast import KronosPredictor
from kronos_cli.forecast.candles import repair
from kronos_cli.forecast.series import forecast_series, quantile_column
from kronos_cli.model import Kronos, KronosTokenizer
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
    kw = dict(samples=samples, temperature=temperature, seed=data_seed, quantiles=(0.1, 0.9))
    fc = forecast_series(forecaster, bars, 6, **kw)
    assert_valid(fc.samples)
    for cols in (
        list(FEATURES),
        [quantile_column(f, 0.1) for f in FEATURES],
        [quantile_column(f, 0.9) for f in FEATURES],
    ):
        assert_valid(fc.table[cols].to_numpy())
    raw = forecast_series(forecaster, bars, 6, raw=True, **kw)
    assert raw.repaired is None and 0.0 <= fc.repaired <= 1.0
    np.testing.assert_array_equal(raw.table["close"], fc.table["close"])  # the close is the model's either way
    assert fc.repaired == pytest.approx(repair(raw.samples)[1])
