"""The leak detector: on a synthetic market with nothing to predict (`--signal none`, a martingale), no model or
baseline shows a cross-sectional IC whose t-statistic exceeds 3 in absolute value. Any look-ahead in data
preparation, labels or forecasting would show up here as skill. (The planted market's side of the proof, the
fine-tuned model beating the last close, is asserted on `kronos demo` in tests/cli/test_demo.py.)"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.configs import shipped

runner = CliRunner()


@pytest.mark.slow
def test_on_a_martingale_no_model_or_baseline_has_a_significant_ic(tmp_path):
    market = tmp_path / "market"
    assert runner.invoke(app, ["demo-data", str(market), "--signal", "none"]).exit_code == 0
    truth = json.loads((market / "kronos_market.json").read_text())
    assert truth["oracle"]["5d"]["IC"] == 0 and truth["oracle"]["5d"]["MASE"] == 1
    ov = [
        "-c",
        str(shipped("demo.yaml")),
        f"data.provider_uri={market}",
        f"data.dataset_path={tmp_path / 'ds'}",
        f"output_dir={tmp_path / 'out'}",
        "backtest.sample_count=8",
    ]
    res = runner.invoke(app, ["pipeline", *ov, "--until", "train-predictor", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    ts = {m["label"]: m["ic"]["IC_t"] for m in report["models"] if m["ic"]["IC_t"] is not None}  # null: no IC
    assert {"fine-tuned", "initial weights", "drift", "hist. vol (bootstrap)"} <= set(ts)
    assert all(abs(t) < 3 for t in ts.values()), ts
    assert report["times"] >= 150 and report["time_unit"] == "day"
