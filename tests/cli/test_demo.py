"""`kronos demo` runs the whole job on the embedded default (reduced size here)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kronos_cli.cli.app import app


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--json", "training.n_train_iter=10",
                                   "training.epochs=1"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["backtest"]["test_windows"] > 1000
    assert set(report["backtest"]["portfolio"]) == {"last", "mean", "max", "min"}
    assert (out / "outputs" / "backtest_results" / "demo" / "performance_plot.png").is_file()
    assert (out / "outputs" / "models" / "demo" / "predictor" / "checkpoints" / "best_model" / "model.safetensors").is_file()
    # a second run reuses the market and the prepared dataset
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--json", "training.n_train_iter=10",
                                   "training.epochs=1"])
    assert res.exit_code == 0
    # training is deterministic, so the weights and hence the forecast cache key are the same
    assert json.loads(res.stdout)["backtest"]["reused_forecast_chunks"] > 0
