"""`--json` of the commands that print a result, each run as a real process: stdout parses as JSON, logs go to
stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest


def _kronos(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "kronos_cli", *(str(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_predict_json(bars_csv, tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    out = tmp_path / "fc.csv"
    flags = ["--tokenizer", tok, "--model", model, "--device", "cpu", "--pred-len", 4, "--seed", 1]
    proc = _kronos("predict", bars_csv, *flags, "--samples", 3, "--quantiles", "0.1,0.9", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "forecasting 4 bars" in proc.stderr  # the log line stays off stdout
    assert result["output"] == str(out) and result["plot"] is None
    assert result["samples"] == 3 and result["quantiles"] == [0.1, 0.9]
    rows = result["forecast"]
    assert len(rows) == 4 and {"timestamps", "close", "close_q10", "close_q90"} <= set(rows[0])
    written = pd.read_csv(out)
    assert [r["timestamps"] for r in rows] == list(pd.to_datetime(written["timestamps"]).map(pd.Timestamp.isoformat))
    assert [r["close"] for r in rows] == pytest.approx(list(written["close"]), rel=1e-6)


def test_demo_data_json(tmp_path):
    proc = _kronos(
        "demo-data", tmp_path / "market", "--stocks", 6, "--start", "2024-01-01", "--end", "2024-04-30", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {
        "market": "qlib",
        "path": str(tmp_path / "market"),
        "ground_truth": str(tmp_path / "market" / "kronos_market.json"),
    }
    assert json.loads((tmp_path / "market" / "kronos_market.json").read_text())


def test_config_validate_and_ls_json(tmp_path):
    from kronos_cli.configs import shipped_configs

    bad = tmp_path / "bad.yaml"
    bad.write_text("backtest:\n  top_k: 10\ntraining:\n  epochs: 0\n")
    proc = _kronos("config", "validate", "-c", bad, "data.clip=-1", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "config": str(bad),
        "valid": False,
        "problems": [
            "override data.clip=-1: data.clip must be > 0, got -1.0",
            f"{bad}: training.epochs must be > 0, got 0",
        ],
    }
    assert proc.stderr.startswith(f"error: {bad}: 2 problems:\n")
    proc = _kronos("config", "validate", "-c", bad, "training.epochs=1", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"config": str(bad), "valid": True, "problems": []}
    assert "backtest.top_k is set (10)" in proc.stderr  # the warning is a log line
    proc = _kronos("config", "ls", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"configs": [str(p) for p in shipped_configs()]}
