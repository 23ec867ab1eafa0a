"""A CSV series' forecast as JSON: the float32 values as written, without float32 noise digits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kronos_cli.forecast.series import SeriesForecast


def test_json_rows_carry_the_float32_values_as_their_shortest_decimals():
    close = np.array([42.648735, 1 / 3], dtype=np.float32)
    table = pd.DataFrame({"timestamps": pd.date_range("2024-01-01", periods=2), "close": close})
    fc = SeriesForecast(history=table, table=table, samples=np.zeros((1, 2, 6), np.float32), quantiles=())
    rows = fc.to_json()["forecast"]
    assert json.dumps([r["close"] for r in rows]) == "[42.648735, 0.33333334]"  # not 42.64873504638672
    np.testing.assert_array_equal(np.array([r["close"] for r in rows], dtype=np.float32), close)
    assert rows[0]["timestamps"] == "2024-01-01T00:00:00" and list(rows[0]) == ["timestamps", "close"]
