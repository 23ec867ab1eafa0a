"""`kronos backtest` on the synthetic Qlib market with a tiny model: Qlib really runs, reports parse, the
forecast cache is reused, bad input is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.data.manifest import write_manifest
from tests.conftest import backtest_args

runner = CliRunner()


@pytest.fixture
def bt_args(prepared, tiny_checkpoints, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints

    def make(*extra, dataset=None):
        return [
            *backtest_args(cfg, tok, model, tmp_path / "out", dataset),
            "backtest.batch_size=2048",
            "backtest.returns_signals=true",
            *extra,
        ]

    return make


@pytest.mark.slow
def test_backtest_runs_qlib_writes_reports_and_reuses_cache(bt_args, tmp_path):
    res = runner.invoke(app, [*bt_args(), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    out = tmp_path / "out" / "backtest_results" / "bt"
    results = json.loads((out / "backtest_results.json").read_text())
    assert set(results["portfolio"]) == {"last", "mean", "max", "min"}
    daily = results["daily_returns"]["mean"]
    assert len(daily["date"]) > 100 and any(t > 0 for t in daily["turnover"])  # Qlib traded
    assert results["conventions"]["annualization_bars"] == 238  # A-share days, one bar a day
    assert results["conventions"]["annualization"] == "238 trading days a year"
    ending = [ln for ln in res.output.splitlines() if "second-to-last" in ln]  # ends on the provider's last day
    assert ending and not any("WARNING" in ln for ln in ending)  # ordinary: an info line, no warning
    assert "cn (A-shares" in results["conventions"]["market"]
    assert "excess_with_cost" in results["portfolio"]["last"] and results["benchmark"] == "SH000300"
    signals = pd.read_csv(out / "signals.csv")
    assert {"datetime", "instrument", "last", "mean", "max", "min", "mean_ret"} <= set(signals.columns)
    assert (out / "performance_plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "Rank IC" in (out / "analysis_report.txt").read_text()
    assert summary["reused_forecasts"] == 0

    again = runner.invoke(app, [*bt_args(), "--json"])
    assert again.exit_code == 0
    second = json.loads(again.stdout)
    assert second["reused_forecasts"] == summary["signals"]
    assert second["signal_quality"] == summary["signal_quality"]
    # forecasts do not depend on the batch: another batch size still finds every window in the cache
    third = json.loads(runner.invoke(app, [*bt_args("backtest.batch_size=333"), "--json"]).stdout)
    assert third["reused_forecasts"] == summary["signals"] and third["signal_quality"] == summary["signal_quality"]

    # A cached chunk of the wrong shape is set aside, logged, and its windows forecast again: the same result.
    chunks = sorted((tmp_path / "out" / "forecast_cache" / "bt").glob("*/chunk_*.npz"))
    with np.load(chunks[0]) as z:
        names, origins = z["names"], z["origins"]
    with open(chunks[0], "wb") as f:
        np.savez(f, names=names, origins=origins, paths=np.zeros((len(names), 3, 1), np.float32))
    fourth = runner.invoke(app, [*bt_args(), "--json"])
    assert fourth.exit_code == 0, fourth.output
    assert "ignoring unreadable forecast cache chunk" in fourth.output
    redone = json.loads(fourth.stdout)
    assert redone["reused_forecasts"] == summary["signals"] - len(names)
    assert redone["signal_quality"] == summary["signal_quality"]
    assert chunks[0].with_name(chunks[0].name + ".bad").is_file()


def test_bad_backtest_input(bt_args, tmp_path, prepared):
    cases = [
        (
            bt_args("backtest.start_time=2030-01-01", "backtest.end_time=2030-06-30"),
            "no pool member has a signal between",
        ),
        (bt_args("backtest.benchmark=SH999999"), "SH999999 is not in the provider"),
    ]
    if not torch.cuda.is_available():
        cases.append((bt_args("--device", "cuda:0"), "CUDA is not available"))
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and message in res.output, (message, res.output)

    from kronos_cli.model import Kronos
    from kronos_cli.model.config import PredictorConfig

    Kronos(PredictorConfig(s1_bits=5, s2_bits=5, n_layers=1, d_model=16, n_heads=2, ff_dim=16)).save_pretrained(
        tmp_path / "m5"
    )
    res = runner.invoke(app, [*bt_args(), "--model", str(tmp_path / "m5")])
    assert res.exit_code == 2 and "do not fit" in res.output

    cfg, _ = prepared
    no_test = tmp_path / "no_test"
    shutil.copytree(cfg.data.dataset_path, no_test)
    np.save(no_test / "origins_test.npy", np.zeros((0, 2), dtype=np.int64))
    manifest = json.loads((no_test / "manifest.json").read_text())
    write_manifest(no_test, manifest)  # a dataset built that way, not a corrupted one
    res = runner.invoke(app, bt_args(dataset=no_test))
    assert res.exit_code == 2 and "no test signals" in res.output


@pytest.mark.slow
def test_two_workers_forecast_the_same_backtest_as_one_and_a_rerun_reuses_them(bt_args, tmp_path):
    """`--nproc 2`: two gloo workers through torch elastic, each forecasting half the windows into the cache;
    the signals equal a single process's bit for bit, and a rerun forecasts nothing."""
    one = runner.invoke(app, [*bt_args(f"output_dir={tmp_path / 'one'}"), "--json"])
    assert one.exit_code == 0, one.output
    two = runner.invoke(app, [*bt_args(f"output_dir={tmp_path / 'two'}", "--nproc", "2"), "--json"])
    assert two.exit_code == 0, two.output
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert b["signals"] == a["signals"] and b["reused_forecasts"] == a["signals"]  # all from workers
    assert b["signal_quality"] == a["signal_quality"]
    sig = [pd.read_csv(tmp_path / d / "backtest_results" / "bt" / "signals.csv") for d in ("one", "two")]
    pd.testing.assert_frame_equal(sig[0], sig[1], check_exact=True)
    again = runner.invoke(app, [*bt_args(f"output_dir={tmp_path / 'two'}", "--nproc", "2"), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["reused_forecasts"] == a["signals"]
