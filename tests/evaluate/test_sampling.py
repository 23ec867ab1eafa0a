"""`kronos evaluate --tune-sampling`: the chosen temperature and top_p land in the run's sampling.json, which
evaluate, signals, predict and serve then use; a sampling.json tuned for other weights is caught."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.model import Kronos
from kronos_cli.serve.schema import ForecastRequest
from kronos_cli.serve.service import Limits, SamplingDefaults, prepare
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
    chosen = min(tuning["grid"], key=lambda g: g["CRPS"])
    assert tuning["chosen"] == chosen and tuning["before"]["temperature"] == 0.6
    saved = json.loads((predictor_dir / "sampling.json").read_text())
    assert (saved["temperature"], saved["top_p"], saved["split"]) == (chosen["temperature"], chosen["top_p"], "val")
    assert report["sampling"]["temperature"] == chosen["temperature"]  # the evaluation used it

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
    defaults = SamplingDefaults(0.4, 0.7, "calibrated: x")
    plain = prepare(ForecastRequest(bars=bars, pred_len=2), Limits(), 64, sampling=defaults)
    assert (plain.job.params.temperature, plain.job.params.top_p) == (0.4, 0.7)
    chosen = prepare(ForecastRequest(bars=bars, pred_len=2, temperature=1.2), Limits(), 64, sampling=defaults)
    assert (chosen.job.params.temperature, chosen.job.params.top_p) == (1.2, 0.7)
    reference = prepare(ForecastRequest(bars=bars, pred_len=2), Limits(), 64)
    assert (reference.job.params.temperature, reference.job.params.top_p) == (1.0, 0.9)
