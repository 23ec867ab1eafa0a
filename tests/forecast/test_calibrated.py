"""A calibration's sampling.json (`forecast/calibrated.py`): its bands widen the close's quantiles of `kronos
predict --sampling` exactly as they say, quantile bars stay valid candles, and a file written before bands (version
1) still gives its temperature and top_p."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.calibrated import bar_quantiles, read_sampling, write_sampling
from kronos_cli.forecast.series import forecast_series
from kronos_cli.market.bars import FEATURES
from kronos_cli.metrics.recalibration import LEVELS, BandCorrection
from kronos_cli.model.sampling import Sampling
from kronos_cli.records.runs import load_pair

runner = CliRunner()
OPEN, HIGH, LOW, CLOSE = (FEATURES.index(f) for f in ("open", "high", "low", "close"))
WIDEN = 3.0


def wide_bands() -> BandCorrection:
    """Bands that read every ensemble as WIDEN times too narrow and normal: quantile q is mean + WIDEN x std x z_q
    (one fitted step, so every step of a longer forecast takes it)."""
    return BandCorrection(LEVELS.copy(), {2: WIDEN * norm.ppf(LEVELS)[None, :]}, windows=500)


def test_a_sampling_json_without_bands_still_loads(tmp_path):
    old = tmp_path / "sampling.json"  # as version 1 wrote it
    old.write_text(json.dumps({"temperature": 0.8, "top_p": 0.9, "CRPS": 0.01, "split": "val", "weights": {}}))
    calibrated = read_sampling(old)
    assert (calibrated.temperature, calibrated.top_p, calibrated.bands) == (0.8, 0.9, None)
    new = write_sampling(tmp_path / "new.json", {"temperature": 0.8, "top_p": 0.9}, wide_bands())
    assert json.loads(new.read_text())["version"] == 2
    np.testing.assert_allclose(read_sampling(new).bands.tables[2], wide_bands().tables[2], atol=1e-6)


def test_broken_bands_are_one_line(tmp_path):
    bad = tmp_path / "sampling.json"
    bands = wide_bands().to_json()
    bands["paths"]["2"] = [[1.0, 0.0]]
    bad.write_text(json.dumps({"temperature": 0.8, "top_p": 0.9, "bands": bands}))
    with pytest.raises(KronosError, match="not a sampling.json"):
        read_sampling(bad)


def test_bands_set_the_close_quantiles_and_quantile_bars_stay_candles():
    rng = np.random.default_rng(0)
    close = 100 + rng.normal(0, 1, (8, 4))  # 8 paths, 4 steps
    paths = np.ones((8, 4, len(FEATURES)), np.float32)  # volume and amount 1
    paths[..., OPEN], paths[..., HIGH], paths[..., LOW], paths[..., CLOSE] = close, close + 0.5, close - 0.5, close
    q = bar_quantiles(paths, [0.05, 0.5, 0.95], wide_bands(), raw=False)
    mean, std = close.mean(axis=0), close.std(axis=0)
    np.testing.assert_allclose(q[:, :, CLOSE], mean + WIDEN * std * norm.ppf([0.05, 0.5, 0.95])[:, None], rtol=1e-5)
    assert (q[..., HIGH] >= q[..., CLOSE]).all() and (q[..., LOW] <= q[..., CLOSE]).all()  # lifted and lowered
    plain = bar_quantiles(paths, [0.05, 0.5, 0.95], None, raw=False)
    np.testing.assert_array_equal(plain, [np.quantile(paths, q, axis=0).astype(paths.dtype) for q in (0.05, 0.5, 0.95)])
    assert plain.dtype == q.dtype == np.float32  # as the paths: predict and serve write the same numbers
    assert bar_quantiles(paths, [], wide_bands(), raw=False).shape == (0, 4, len(FEATURES))


def test_forecast_series_reads_the_close_quantiles_through_the_bands(bars, tiny_checkpoints):
    tok, model = tiny_checkpoints
    pair = load_pair(None, str(tok), str(model))
    spec = pair.resolve(horizon=7, sampling=Sampling(temperature=1.0, top_p=1.0, paths=6, seed=5), device="cpu")
    forecaster = pair.forecaster(spec)
    plain = forecast_series(forecaster, bars, spec, quantiles=(0.1, 0.9))
    banded = forecast_series(forecaster, bars, spec, quantiles=(0.1, 0.9), bands=wide_bands())
    pd.testing.assert_series_equal(plain.table["close"], banded.table["close"])  # the mean path is the model's
    pd.testing.assert_series_equal(plain.table["open_q90"], banded.table["open_q90"])
    close = banded.samples[..., CLOSE]
    expected = close.mean(axis=0) + WIDEN * close.std(axis=0) * norm.ppf(0.9)
    np.testing.assert_allclose(banded.table["close_q90"], expected, rtol=1e-5)
    assert banded.recalibrated and banded.to_json()["close_quantiles_recalibrated"] and not plain.recalibrated


def test_predict_with_a_sampling_file_carrying_bands_widens_the_close_band(tmp_path, bars_csv, tiny_checkpoints):
    tok, model = tiny_checkpoints
    write_sampling(tmp_path / "sampling.json", {"temperature": 1.0, "top_p": 1.0}, wide_bands())
    args = ["predict", str(bars_csv), "--tokenizer", str(tok), "--model", str(model), "--device", "cpu"]
    args += ["--pred-len", "5", "--samples", "6", "--seed", "2", "--quantiles", "0.1,0.9"]
    out = {}
    for name, extra in (("file", ["--sampling", str(tmp_path / "sampling.json")]), ("flags", ["--temperature", "1"])):
        res = runner.invoke(app, [*args, *extra, "--top-p", "1", "--output", str(tmp_path / f"{name}.csv")])
        assert res.exit_code == 0, res.output
        out[name] = pd.read_csv(tmp_path / f"{name}.csv")
    pd.testing.assert_series_equal(out["file"]["close"], out["flags"]["close"])  # the same paths
    width = {k: (t["close_q90"] - t["close_q10"]).to_numpy() for k, t in out.items()}
    assert (width["file"] > width["flags"]).all()
