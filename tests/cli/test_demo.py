"""`kronos demo` and `kronos pipeline`: the whole job on the embedded default (reduced size here)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app

runner = CliRunner()
SMALL = ["training.n_train_iter=10", "training.epochs=1"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`kronos demo` run once for this module (it takes minutes): its --out and its JSON report. The tests that
    only read it come first; the end-to-end test, which changes a setting, comes last."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    old_mask = os.umask(0o022)
    try:
        res = runner.invoke(app, ["demo", "--out", str(out), "--json"])  # the demo as a new user runs it
    finally:
        os.umask(old_mask)
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


@pytest.mark.slow
def test_the_demo_config_leads_to_signals(demo_run, tmp_path):
    out, report = demo_run
    config = out / "config.yaml"
    assert report["paths"]["config"] == str(config)
    from kronos_cli.config import load

    cfg = load(config)
    assert cfg.output_dir == str(out / "outputs") and cfg.data.provider_uri == str(out / "market")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    ranked = subprocess.run(  # a real CLI run from another folder: the config's paths are absolute
        [sys.executable, "-m", "kronos_cli", "signals", "-c", str(config), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = json.loads(ranked.stdout)
    assert table["signals"] and {row["datetime"] for row in table["signals"]} == {"2024-12-31"}  # the last day


@pytest.mark.slow
def test_a_second_demo_shows_the_saved_leaderboard_and_the_next_commands(demo_run):
    out, report = demo_run
    from kronos_cli.core.io import json_text
    from kronos_cli.evaluate.report import EvaluationResult

    saved = json.loads((out / "outputs" / "evaluation" / "demo" / "test" / "evaluation.json").read_text())
    assert json.loads(json_text(EvaluationResult.from_json(saved).to_json())) == saved  # read back whole

    again = runner.invoke(app, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output
    text = again.stdout
    assert "kronos evaluate: test split" in text and "fine-tuned" in text and "last close" in text
    assert "evaluate skipped" in text
    lines = text.strip().splitlines()
    bundle = out / "outputs" / "exported" / "demo" / "kronos_finetuned.pth"
    nexts = lines[lines.index("next, try:") + 1 :]
    assert nexts[0].split()[:4] == ["kronos", "signals", "-c", str(out / "config.yaml")]
    assert any(line.split()[:2] == ["kronos", "predict"] and f"--bundle {bundle}" in line for line in nexts)
    assert any(line.split()[:4] == ["kronos", "serve", "--bundle", str(bundle)] for line in nexts)
    csv = next(line.split()[2] for line in nexts if line.split()[:2] == ["kronos", "predict"])
    assert Path(csv).is_file() and Path(csv).parent.parent == out
    page = Path(lines[-1].split(": ", 1)[1])  # the demo ends with its reports, the leaderboard's last
    assert lines[-1].split()[0] == "evaluation:" and page.name == "report.html" and page.is_file()


@pytest.mark.slow
def test_demo_end_to_end_then_skips_what_is_done(demo_run, tmp_path):
    out, report = demo_run
    assert set(report["stages"].values()) == {"done"}
    assert report["backtest"]["signals"] > 1000
    assert report["backtest"]["signal_range"][1] == "2024-12-31"  # signals up to the market's last day
    assert set(report["backtest"]["portfolio"]) == {"last", "mean", "max", "min"}
    assert all(a["verified"] for a in report["export"]["artifacts"])

    # the leaderboard: on the planted market the fine-tuned model beats the last close, significantly
    ev = report["evaluate"]
    scores = {m["label"]: m for m in ev["models"]}
    tuned, last = scores["fine-tuned"], scores["last close"]
    assert tuned["overall"]["MAE"] < last["overall"]["MAE"] and tuned["overall"]["MASE"] < 1
    assert tuned["ic"]["IC_t"] > 3 and tuned["ic"]["IC_lo"] > 0
    verdicts = {(c["a"], c["b"], c["metric"]): c["verdict"] for c in ev["comparisons"]}
    assert verdicts[("fine-tuned", "last close", "MAE")] == "fine-tuned better"
    assert verdicts[("fine-tuned", "last close", "CRPS")] == "fine-tuned better"
    assert (out / "outputs" / "evaluation" / "demo" / "test" / "evaluation_report.txt").is_file()
    assert (out / "outputs" / "backtest_results" / "demo" / "performance_plot.png").is_file()
    assert (out / "outputs" / "exported" / "demo" / "kronos_forecast.pt2").is_file()
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (out / "outputs").rglob("*")}
    unreadable = [str(p) for p, m in modes.items() if m != (0o755 if p.is_dir() else 0o644)]
    assert not unreadable, unreadable[:5]  # everything follows umask 022: others can read the results

    # the exported bundle forecasts a long CSV from the lookback it was trained with: it starts at the last close
    from tests.conftest import make_bars

    make_bars(300).to_csv(tmp_path / "long.csv", index=False)
    bundle = out / "outputs" / "exported" / "demo" / "kronos_finetuned.pth"
    fc = runner.invoke(
        app,
        [
            "predict",
            str(tmp_path / "long.csv"),
            "--bundle",
            str(bundle),
            "--pred-len",
            "5",
            "--samples",
            "8",
            "--seed",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert fc.exit_code == 0 and "using the last 60 bars" in fc.output
    first = float(fc.stdout.strip().splitlines()[1].split(",")[4])
    assert abs(first / make_bars(300)["close"].iloc[-1] - 1) < 0.05

    again = runner.invoke(app, ["demo", "--out", str(out), "--json"])
    assert again.exit_code == 0
    assert set(json.loads(again.stdout)["stages"].values()) == {"skipped"}

    # a changed backtest setting redoes the backtest only
    changed = runner.invoke(app, ["demo", "--out", str(out), "--json", "backtest.topk=5"])
    stages = json.loads(changed.stdout)["stages"]
    assert stages == {
        "prep": "skipped",
        "train-tokenizer": "skipped",
        "train-predictor": "skipped",
        "backtest": "done",
        "export": "skipped",
        "evaluate": "done",  # it scores with the backtest's sampling
    }


def test_a_missing_checkpoint_names_the_run_directory_and_the_settings_that_point_there(tmp_path):
    from kronos_cli.configs import shipped

    args = ["signals", "-c", str(shipped("demo.yaml")), f"output_dir={tmp_path / 'outputs'}"]
    res = runner.invoke(app, args)  # the demo's config without its run: model.tokenizer is a preset
    assert res.exit_code == 2
    run = tmp_path / "outputs" / "models" / "demo" / "tokenizer"
    message = " ".join(res.output.split())
    assert f"no trained tokenizer in the run directory {run}" in message
    assert f"output_dir={tmp_path / 'outputs'} and run_name=demo point there" in message
    assert "model.tokenizer=preset:tokenizer-tiny is an untrained architecture" in message
    assert "taken for a local path" not in message

    (run / "checkpoints").mkdir(parents=True)  # a run directory without a best_model, and a path configured
    res = runner.invoke(app, [*args, f"model.tokenizer={tmp_path / 'nowhere'}"])
    assert res.exit_code == 2
    message = " ".join(res.output.split())
    assert f"{run} (output_dir=" in message and "it has no checkpoints/best_model" in message
    assert f"model.tokenizer={tmp_path / 'nowhere'}, tried instead, failed: no checkpoint directory" in message


def test_pipeline_from_until_and_bad_stage(tmp_path):
    from kronos_cli.configs import shipped
    from kronos_cli.workflows.demo import demo_overrides, ensure_market

    out = tmp_path / "p"
    ensure_market(out)
    args = ["pipeline", "-c", str(shipped("demo.yaml")), *demo_overrides(out, SMALL), "--json"]
    res = runner.invoke(app, [*args, "--until", "prep"])
    assert res.exit_code == 0 and json.loads(res.stdout)["stages"] == {"prep": "done"}
    res = runner.invoke(app, [*args, "--from", "prep", "--until", "prep"])
    assert json.loads(res.stdout)["stages"] == {"prep": "skipped"}
    res = runner.invoke(app, [*args, "--from", "prep", "--until", "prep", "--force"])
    assert json.loads(res.stdout)["stages"] == {"prep": "done"}
    res = runner.invoke(app, [*args, "--from", "backtst"])
    assert res.exit_code == 2 and "unknown stage" in res.output


@pytest.mark.slow
def test_a_failed_stage_ends_the_summary_with_its_error_and_lists_only_real_outputs(tmp_path):
    from kronos_cli.configs import shipped
    from kronos_cli.workflows.demo import demo_overrides, ensure_market

    out = tmp_path / "p"
    ensure_market(out)
    args = ["pipeline", "-c", str(shipped("demo.yaml")), *demo_overrides(out, SMALL), "backtest.benchmark=SH999999"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("error: the benchmark SH999999 is not in the provider")
    assert "stages: prep done, train-tokenizer done, train-predictor done, backtest failed" in res.output
    assert "predictor: " in res.output and "report: " not in res.output and "exported: " not in res.output
