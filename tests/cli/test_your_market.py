"""The shipped configs for other markets run `kronos pipeline` end to end, through the backtest and the export,
on bar files `kronos demo-data --market` writes: A-share 5-minute CSV (XSHG, lunch break), hourly crypto Parquet
(24/7), US daily CSV (XNYS) and hourly currency pairs (forex, across a daylight-saving change)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kronos_cli.configs import shipped

QUICK = [  # tiny models trained from scratch, as in the demo; everything else is the shipped config's
    "model.tokenizer=preset:tokenizer-tiny",
    "model.predictor=preset:tiny",
    "training.epochs=1",
    "training.n_train_iter=15",
    "training.n_val_iter=2",
    "backtest.sample_count=1",
    "backtest.signals=[mean]",
]


def kronos(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "kronos_cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "config,market,freq,bars_a_year",
    [
        ("csv_minute.yaml", "cn5min", "5min", 238 * 48),
        ("crypto_hourly.yaml", "crypto1h", "1h", 365 * 24),
        ("us_daily.yaml", "usdaily", "day", 252),
        ("fx_hourly.yaml", "fx1h", "1h", 260 * 24),
    ],
)
def test_shipped_config_runs_the_pipeline_on_its_market(tmp_path, config, market, freq, bars_a_year):
    cfg = shipped(config)
    made = kronos("demo-data", f"market_{market}", "--market", market, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    run = kronos("pipeline", "-c", str(cfg), "--until", "export", "--format", "bundle", "--json", *QUICK, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert set(summary["stages"].values()) == {"done"}
    name = cfg.stem
    results = json.loads((tmp_path / "outputs" / "backtest_results" / name / "backtest_results.json").read_text())
    assert results["benchmark"] == "equal-weight"
    assert results["conventions"]["annualization_bars"] == bars_a_year
    assert results["portfolio"]["mean"]["with_cost"]["bars"] > 10
    manifest = json.loads((tmp_path / "data" / name / "manifest.json").read_text())
    assert manifest["data_config"]["freq"] == freq
    assert (tmp_path / "data" / name / "qlib" / "calendars").is_dir()
    assert (tmp_path / "outputs" / "exported" / name / "kronos_finetuned.pth").is_file()
    ranked = kronos("signals", "-c", str(cfg), "--json", *QUICK, cwd=tmp_path)  # tomorrow's ranking, via Qlib
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    day = json.loads(ranked.stdout)
    assert day["signals"] and day["date"].startswith(results["signal_range"][1][:10])
