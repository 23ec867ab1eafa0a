"""`kronos evaluate --tune-sampling`: the chosen temperature and top_p land in the run's sampling.json, which
evaluate, signals, predict and serve then use; a sampling.json tuned for other weights is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.forecast.calibrated import Calibration
from kronos_cli.metrics.recalibration import LEVELS, BandCorrection
from kronos_cli.model import Kronos
from kronos_cli.serve.schema import ForecastRequest
from kronos_cli.serve.service import Limits, describe_sampling, prepare, respond
from tests.conftest import DEMO_SPLITS, make_bars

runner = CliRunner()


@pytest.fixture
def run(prepared, tiny_checkpoints, tmp_path):
    """A run whose fine-tuned best models are the tiny checkpoints."""
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    for stage, src in (("tokenizer", tok), ("predictor", model)):
        shutil.copytree(src, tmp_path / "models" / "tune" / stage / "checkpoints" / "best_model")
    ov = [
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={tmp_path}",
        "run_name=tune",
        "model.tokenizer=preset:tokenizer-tiny",
        "model.predictor=preset:tiny",
        "backtest.sample_count=4",
        "evaluate.tune_windows=64",
        "evaluate.tune_temperatures=[0.3,1.5]",
        "evaluate.tune_top_ps=[1.0]",
    ]
    return ov, tmp_path / "models" / "tune" / "predictor"


def test_tuned_sampling_is_written_and_read_by_every_command(run, tmp_path):
    ov, predictor_dir = run
    res = runner.invoke(app, ["evaluate", *ov, "--tune-sampling", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    tuning = report["tuning"]
    grid = {(g["temperature"], g["top_p"]) for g in tuning["grid"]}
    assert grid == {(0.3, 1.0), (1.5, 1.0), (0.6, 0.9)}  # the grid and the configured setting
    chosen = min(tuning["grid"], key=lambda g: g["calibrated"]["CRPS"])  # the lowest CRPS after the bands
    assert tuning["chosen"] == chosen and tuning["before"]["temperature"] == 0.6
    saved = json.loads((predictor_dir / "sampling.json").read_text())
    assert (saved["temperature"], saved["top_p"], saved["split"]) == (chosen["temperature"], chosen["top_p"], "val")
    assert saved["version"] == 2 and sorted(saved["bands"]["paths"]) == ["2", "3", "4"]  # fitted per path count
    assert report["sampling"]["temperature"] == chosen["temperature"]  # the evaluation used it
    labels = [m["label"] for m in report["models"]]
    assert labels[:3] == ["fine-tuned", "fine-tuned, calibrated", "initial weights"]  # bands: their weights' only
    assert report["calibrated"] == {"fine-tuned, calibrated": "fine-tuned"}

    calibrated = [*ov, "backtest.sampling=calibrated"]
    sig = runner.invoke(app, ["signals", *calibrated, "--device", "cpu", "--json"])
    assert sig.exit_code == 0, sig.output

    # predict --sampling FILE draws exactly what the same temperature and top_p given as flags draw
    make_bars(80).to_csv(tmp_path / "bars.csv", index=False)
    best = predictor_dir / "checkpoints" / "best_model"
    tok = tmp_path / "models" / "tune" / "tokenizer" / "checkpoints" / "best_model"
    common = ["predict", str(tmp_path / "bars.csv"), "--tokenizer", str(tok), "--model", str(best)]
    common += ["--pred-len", "3", "--samples", "4", "--seed", "5", "--device", "cpu"]
    by_file = runner.invoke(app, [*common, "--sampling", str(predictor_dir / "sampling.json")])
    by_flags = runner.invoke(
        app, [*common, "--temperature", str(chosen["temperature"]), "--top-p", str(chosen["top_p"])]
    )
    assert by_file.exit_code == 0 and by_flags.exit_code == 0, by_file.output + by_flags.output
    assert by_file.stdout == by_flags.stdout

    # retraining replaces the weights: the run's sampling.json no longer applies, and says so
    torch.manual_seed(3)
    Kronos.from_preset("tiny").save_pretrained(best)
    stale = runner.invoke(app, ["evaluate", *calibrated, "--device", "cpu"])
    assert stale.exit_code == 2 and "calibrated for other weights" in stale.output, stale.output
    # a file passed by hand to another model still runs, with a warning
    warned = runner.invoke(app, [*common, "--sampling", str(predictor_dir / "sampling.json")])
    assert warned.exit_code == 0 and "calibrated for other weights" in warned.output


def test_calibrated_sampling_without_a_file_or_with_a_bad_one_is_one_line(run, tmp_path):
    ov, predictor_dir = run
    res = runner.invoke(app, ["evaluate", *ov, "backtest.sampling=calibrated", "--device", "cpu"])
    assert res.exit_code == 2 and "--tune-sampling" in res.output, res.output
    bad = tmp_path / "sampling.json"
    bad.write_text('{"temperature": "hot"}')
    make_bars(40).to_csv(tmp_path / "bars.csv", index=False)
    out = runner.invoke(app, ["predict", str(tmp_path / "bars.csv"), "--sampling", str(bad), "--pred-len", "2"])
    assert out.exit_code == 2 and "not a sampling.json" in out.output, out.output


def test_the_server_fills_in_its_calibrated_sampling_only_where_a_request_gives_none():
    bars = [{"timestamp": str(t), "open": 1, "high": 1.1, "low": 0.9, "close": 1} for t in make_bars(20)["timestamps"]]
    defaults = Calibration(0.4, 0.7, "x")
    plain = prepare(ForecastRequest(bars=bars, pred_len=2), Limits(), 64, calibration=defaults)
    assert (plain.job.sampling.temperature, plain.job.sampling.top_p) == (0.4, 0.7)
    chosen = prepare(ForecastRequest(bars=bars, pred_len=2, temperature=1.2), Limits(), 64, calibration=defaults)
    assert (chosen.job.sampling.temperature, chosen.job.sampling.top_p) == (1.2, 0.7)
    reference = prepare(ForecastRequest(bars=bars, pred_len=2), Limits(), 64)
    assert (reference.job.sampling.temperature, reference.job.sampling.top_p) == (1.0, 0.9)


def test_the_server_reads_its_answers_close_quantiles_through_the_files_bands():
    frame = make_bars(20)
    bars = [
        {"timestamp": str(r.timestamps), "open": r.open, "high": r.high, "low": r.low, "close": r.close}
        for r in frame.itertuples()
    ]
    bands = BandCorrection(LEVELS.copy(), {2: 3 * norm.ppf(LEVELS)[None, :]}, windows=100)  # 3x too narrow, normal
    described = describe_sampling(Calibration(0.4, 0.7, "x", bands=bands))
    assert described["bands"] == {"windows": 100, "paths": [2], "steps": 1} and described["source"] == "calibrated: x"
    p = prepare(ForecastRequest(bars=bars, pred_len=3, samples=8, quantiles=[0.1, 0.9]), Limits(), 64)
    close = frame["close"].iloc[-1] * (1 + np.random.default_rng(0).normal(0, 0.004, (8, 3)))
    paths = np.stack([close, close * 1.002, close * 0.998, close, np.ones_like(close), close], axis=-1)
    plain, banded = respond(p, paths.astype(np.float32), 5.0), respond(p, paths.astype(np.float32), 5.0, bands)
    assert banded["bars"] == plain["bars"]  # the mean is the model's
    got = np.array([[b["close"] for b in banded["quantiles"][q]] for q in ("0.1", "0.9")])
    want = close.mean(axis=0) + 3 * close.std(axis=0) * norm.ppf([0.1, 0.9])[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for q in ("0.1", "0.9"):  # wider than the paths' own, and each quantile bar a valid candle
        for b, a in zip(banded["quantiles"][q], plain["quantiles"][q]):
            assert b["low"] <= min(b["open"], b["close"]) and b["high"] >= max(b["open"], b["close"])
            assert (b["close"] < a["close"]) if q == "0.1" else (b["close"] > a["close"])


@pytest.mark.slow
def test_after_tune_sampling_the_test_splits_bands_hold_their_levels(run):
    """The calibration target on the test suite's market: bands fitted on the validation split only, and the test
    split's 50/80/90% bands each within 5 points of their level, where the tiny model's paths held under 10%."""
    ov, _ = run
    ov = [*ov, "evaluate.tune_windows=1024", "evaluate.tune_temperatures=[1.0]"]
    res = runner.invoke(app, ["evaluate", *ov, "--tune-sampling", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["split"] == "test" and report["calibrated"] == {"fine-tuned, calibrated": "fine-tuned"}
    rows = {m["label"]: m["coverage"] for m in report["models"]}
    before, after = rows["fine-tuned"], rows["fine-tuned, calibrated"]
    assert all(before[level] < 0.1 for level in before), before
    assert all(abs(after[level] - float(level)) <= 0.05 for level in ("0.5", "0.8", "0.9")), after
    tuning = report["tuning"]  # on validation: before, and after (the windows the bands were fitted on)
    assert tuning["before"]["0.9"] < 0.1 and abs(tuning["chosen"]["calibrated"]["0.9"] - 0.9) <= 0.02
    text = Path(report["outputs"]["report"]).read_text()
    assert "Coverage on the test split before and after calibration" in text
    assert "fine-tuned, calibrated" in text and "fitted on the validation split only" in text
