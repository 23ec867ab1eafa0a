"""`kronos demo` and `kronos pipeline`: the whole job on the embedded default (reduced size here)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app

runner = CliRunner()
SMALL = ["training.n_train_iter=10", "training.epochs=1"]


@pytest.mark.slow
def test_demo_end_to_end_then_skips_what_is_done(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--json", *SMALL])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report["stages"].values()) == {"done"}
    assert report["backtest"]["signal_days"] > 1000
    assert report["backtest"]["signal_range"][1] == "2024-12-31"  # signals up to the market's last day
    assert set(report["backtest"]["portfolio"]) == {"last", "mean", "max", "min"}
    assert all(a["ok"] for a in report["export"]["artifacts"])
    assert (out / "outputs" / "backtest_results" / "demo" / "performance_plot.png").is_file()
    assert (out / "outputs" / "exported" / "demo" / "kronos_forecast.pt2").is_file()

    again = runner.invoke(app, ["demo", "--out", str(out), "--json", *SMALL])
    assert again.exit_code == 0
    assert set(json.loads(again.stdout)["stages"].values()) == {"skipped"}

    # a changed backtest setting redoes the backtest only
    changed = runner.invoke(app, ["demo", "--out", str(out), "--json", *SMALL, "backtest.topk=5"])
    stages = json.loads(changed.stdout)["stages"]
    assert stages == {
        "prep": "skipped",
        "train-tokenizer": "skipped",
        "train-predictor": "skipped",
        "backtest": "done",
        "export": "skipped",
    }


def test_pipeline_from_until_and_bad_stage(tmp_path):
    from kronos_cli.configs import shipped
    from kronos_cli.demo import demo_overrides, ensure_market

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
