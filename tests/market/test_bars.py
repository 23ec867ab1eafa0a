"""Input bars checked as candles: repaired (counted) or refused."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kronos_cli.market.bars import reconcile_candles


@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.just(6)), elements=st.floats(1e-6, 1e6)))
def test_repaired_input_bars_are_candles_and_valid_ones_are_left_alone(x):
    fixed, count = reconcile_candles(x, "repair")
    o, h, lo, c = fixed[:, 0], fixed[:, 1], fixed[:, 2], fixed[:, 3]
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (h >= lo).all()
    assert count == int(((x[:, 1] < np.maximum(x[:, 0], x[:, 3])) | (x[:, 2] > np.minimum(x[:, 0], x[:, 3]))).sum())
    np.testing.assert_array_equal(fixed[:, [0, 3, 4, 5]], x[:, [0, 3, 4, 5]])
    again, none = reconcile_candles(fixed, "refuse")
    assert none == 0 and again is fixed
