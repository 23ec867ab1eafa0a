"""`kronos evaluate` end to end through the CLI on the synthetic market: the leaderboard and its files, the
calibrated sampling other commands read, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.config import TokenizerConfig
from tests.conftest import DEMO_SPLITS

runner = CliRunner()


def _overrides(cfg, out: Path, tok: Path, model: Path, *extra: str) -> list[str]:
    return [
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={out}",
        "run_name=ev",
        f"model.tokenizer={tok}",
        f"model.predictor={model}",
        "backtest.sample_count=2",
        *extra,
    ]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("other") / "model"
    Kronos.from_preset("tiny").save_pretrained(path)
    return path


def test_evaluate_ranks_models_and_baselines_on_the_same_windows(prepared, tiny_checkpoints, other_model, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    ov = _overrides(cfg, tmp_path, tok, model)
    res = runner.invoke(app, ["evaluate", *ov, "--models", f"other={other_model}", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    labels = [m["label"] for m in report["models"]]
    assert labels == ["zero-shot", "other", "last close", "drift", "hist. vol (normal)", "hist. vol (bootstrap)"]
    windows = {m["overall"]["windows"] for m in report["models"]}
    assert len(windows) == 1 and report["labelled"] <= windows.pop() <= report["windows"]  # the same windows
    for m in report["models"]:
        assert set(m["coverage"]) == {"0.5", "0.8", "0.9"} and len(m["by_horizon"]["MAE"]) == 5
        assert len(m["pit"]) == 10 and sum(m["pit"]) == pytest.approx(1.0)
    last = next(m for m in report["models"] if m["label"] == "last close")
    assert last["overall"]["MASE"] == pytest.approx(1.0)
    pairs = {(c["a"], c["b"], c["metric"]) for c in report["comparisons"]}
    assert ("zero-shot", "last close", "CRPS") in pairs and ("other", "last close", "MAE") in pairs
    assert ("zero-shot", "hist. vol (normal)", "CRPS") in pairs and ("other", "hist. vol (normal)", "WQL") in pairs
    assert all(0 <= c["p_value"] <= 1 for c in report["comparisons"])
    assert report["symbols"] > 3 and report["time_unit"] == "day" and report["ic_times"] == report["times"]
    assert set(report["headline"]) == {"zero-shot", "other"} and not report["notes"]
    out = Path(report["outputs"]["results"]).parent  # the run's own directory; evaluation/ev/test links to it
    assert out.parent == tmp_path / "runs" and (tmp_path / "evaluation" / "ev" / "test").resolve() == out.resolve()
    for name in (
        "report.html",
        "evaluation.json",
        "evaluation_report.txt",
        "error_by_horizon.png",
        "calibration.png",
        "pit.png",
        "ic_by_month.png",
    ):
        assert (out / name).is_file(), name
    text = (out / "evaluation_report.txt").read_text()
    assert "Diebold-Mariano" in text and "percent of the last close" in text and "beats on CRPS" in text
    assert report["timings"]["score_s"] < report["timings"]["forecast_s"]

    # the second run forecasts nothing again (the window-keyed cache) and prints the leaderboard
    again = runner.invoke(app, ["evaluate", *ov, "--models", f"other={other_model}", "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert "beats" in again.stdout and "hist. vol (bootstrap)" in again.stdout and "Verdict" in again.stdout


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.output and "forecasting" not in res.output, res.output
    for n in needles:
        assert n in errors[0], errors[0]


def test_bad_models_and_splits_get_one_line_and_exit_2(prepared, tiny_checkpoints, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    ov = _overrides(cfg, tmp_path, tok, model)
    _one_line_error(runner.invoke(app, ["evaluate", *ov, "--models", f"gone={tmp_path / 'nope'}"]), "--models gone=")
    wide = tmp_path / "wide_tokenizer"
    KronosTokenizer(
        TokenizerConfig(d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, s1_bits=6, s2_bits=6)
    ).save_pretrained(wide)
    _one_line_error(runner.invoke(app, ["evaluate", *ov, "--models", f"x={wide},{model}"]), "do not fit")
    _one_line_error(runner.invoke(app, ["evaluate", *ov, "--models", f"zero-shot={model}"]), "two models")
    _one_line_error(runner.invoke(app, ["evaluate", *ov, "--split", "train"]), "--split")


def test_a_split_too_short_for_the_statistics_says_how_many_days_it_needs(market, tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    ov = [
        f"data.provider_uri={market}",
        f"data.dataset_path={tmp_path / 'ds'}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS[:4],
        "data.test_time_range=[2024-12-02,2024-12-31]",
        f"output_dir={tmp_path / 'out'}",
        f"model.tokenizer={tok}",
        f"model.predictor={model}",
        "backtest.sample_count=1",
    ]
    assert runner.invoke(app, ["prep", *ov]).exit_code == 0
    _one_line_error(
        runner.invoke(app, ["evaluate", *ov, "--device", "cpu"]),
        "days with a known future",
        "need at least 20, whatever the number of symbols",
        "test_time_range",
    )


@pytest.mark.slow
def test_two_workers_and_bf16_on_evaluate(prepared, tiny_checkpoints, other_model, tmp_path):
    """`--nproc 2` gives the single process's leaderboard exactly; `--dtype bf16` reports its deviation from
    fp32 per model."""
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    runs = {}
    for name, flags in (("one", []), ("two", ["--nproc", "2"])):
        ov = _overrides(cfg, tmp_path / name, tok, model)
        res = runner.invoke(app, ["evaluate", *ov, "--models", f"other={other_model}", "--json", *flags])
        assert res.exit_code == 0, res.output
        runs[name] = json.loads(res.stdout)
    assert [m["overall"] for m in runs["one"]["models"]] == [m["overall"] for m in runs["two"]["models"]]
    assert not runs["one"].get("precision")  # dtype auto on a CPU: fp32, nothing to check
    ov = _overrides(cfg, tmp_path / "bf16", tok, model)
    res = runner.invoke(app, ["evaluate", *ov, "--json", "--dtype", "bf16"])
    assert res.exit_code == 0, res.output
    p = json.loads(res.stdout)["precision"]["zero-shot"]
    assert p["dtype"] == "bf16" and p["windows"] == 256
    assert 0 < p["mean_abs_forecast_diff"] < 0.05 and -1 <= p["signal_rank_correlation"] <= 1
    bad = runner.invoke(app, ["evaluate", *ov, "--dtype", "fp8"])
    assert bad.exit_code == 2 and "--dtype must be one of auto, fp32, bf16, fp16" in bad.output
