"""One series and two series, the most common things people forecast, through prep, training and `kronos
evaluate`: every per-window score, coverage, PIT and the Diebold-Mariano tests over time, the time-series
correlation as the skill measure, the IC reported as not defined, and the counts in the data's own units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from tests.conftest import DEMO_SPLITS, make_bars

runner = CliRunner()
TINY = [  # tiny models trained from scratch for a few steps: enough to have a fine-tuned model and its start
    "model.tokenizer=preset:tokenizer-tiny",
    "model.predictor=preset:tiny",
    "training.epochs=1",
    "training.n_train_iter=3",
    "training.n_val_iter=1",
    "training.batch_size=8",
    "backtest.sample_count=4",
]


def _train_and_evaluate(ov: list[str]) -> dict:
    res = runner.invoke(app, ["pipeline", *ov, "--until", "train-predictor", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _check_scored_over_time(report: dict) -> None:
    """Every score of every model and baseline, the tests against every baseline, and no IC."""
    labels = [m["label"] for m in report["models"]]
    assert labels == [
        "fine-tuned",
        "initial weights",
        "last close",
        "drift",
        "hist. vol (normal)",
        "hist. vol (bootstrap)",
    ]
    for m in report["models"]:
        assert all(np.isfinite(m["overall"][k]) for k in ("MAE", "MASE", "CRPS", "WQL")), m["label"]
        assert set(m["coverage"]) == {"0.5", "0.8", "0.9"} and abs(sum(m["pit"]) - 1) < 1e-9
        assert m["ic"]["IC"] is None  # null: no cross-section
    for label in ("fine-tuned", "initial weights"):
        ts = next(m for m in report["models"] if m["label"] == label)["time_series"]
        assert -1 <= ts["corr"] <= 1 and np.isfinite(ts["t"]) and ts["windows"] == report["labelled"]
    tests = {(c["a"], c["b"], c["metric"]): c for c in report["comparisons"]}
    for metric in ("CRPS", "WQL"):
        c = tests[("fine-tuned", "hist. vol (normal)", metric)]
        assert 0 <= c["p_value"] <= 1 and c["times"] == report["times"]
    assert ("fine-tuned", "initial weights", "CRPS") in tests
    baselines = [m for m in report["models"] if m["kind"] == "baseline"]
    strongest = min(baselines, key=lambda m: m["overall"]["CRPS"])["label"]
    assert report["headline"]["fine-tuned"]["CRPS"]["baseline"] == strongest
    assert any(
        f"not defined for fewer than 3 symbols (this split has {report['symbols']}" in n for n in report["notes"]
    )
    out = Path(report["outputs"]["results"]).parent
    text = (out / "evaluation_report.txt").read_text()
    assert "TS corr" in text and "beats on CRPS" in text and "CRPS vs " in text
    assert not (out / "ic_by_month.png").exists()  # no IC to plot


def test_one_series_through_prep_training_and_evaluate(market, tmp_path):
    ov = [
        f"data.provider_uri={market}",
        f"data.dataset_path={tmp_path / 'ds'}",
        "data.instrument=[SH600000]",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={tmp_path / 'out'}",
        "run_name=one",
        "training.select_by=val_ic",  # one series: no cross-section, so skill over time chooses best_model
        "training.select_days=8",
        "training.select_samples=2",
        *TINY,
    ]
    report = _train_and_evaluate(ov)
    log = tmp_path / "out" / "models" / "one" / "predictor" / "logs" / "metrics.jsonl"
    epochs = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "epoch"]
    assert epochs and all(-1 <= r["val_ic"] <= 1 for r in epochs)  # was NaN: best_model never chosen by skill
    assert report["symbols"] == 1 and report["time_unit"] == "day" and report["ic_times"] == 0
    assert report["times"] == report["labelled"] >= 150  # one series: one window a day
    _check_scored_over_time(report)


def test_two_hourly_series_through_prep_training_and_evaluate(tmp_path):
    bars = tmp_path / "bars"
    bars.mkdir()
    for seed, name in enumerate(("EURUSD", "GBPUSD")):
        make_bars(1200, freq="h", seed=seed).to_csv(bars / f"{name}.csv", index=False)
    ov = [
        "data.source=csv",
        f"data.csv.path={bars}",
        "data.csv.calendar=24/7",
        "data.freq=1h",
        f"data.dataset_path={tmp_path / 'ds'}",
        "data.lookback_window=48",
        "data.predict_window=6",
        "data.start_time=2024-01-01",
        "data.end_time=2024-02-20",
        "data.train_time_range=[2024-01-01,2024-02-04]",
        "data.val_time_range=[2024-02-05,2024-02-11]",
        "data.test_time_range=[2024-02-12,2024-02-20]",
        f"output_dir={tmp_path / 'out'}",
        "run_name=two",
        *TINY,
    ]
    report = _train_and_evaluate(ov)
    assert report["symbols"] == 2 and report["time_unit"] == "1h bar"
    assert report["labelled"] == 2 * report["times"]  # both series every hour
    _check_scored_over_time(report)
    text = (Path(report["outputs"]["results"]).parent / "evaluation_report.txt").read_text()
    assert f"over {report['times']} 1h bars" in text and "losses per 1h bar" in text and " days" not in text
