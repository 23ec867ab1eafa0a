"""Results are whole or absent: a backtest or an evaluation that fails or is killed while writing its files leaves
the previous run's set whole and unmixed, the next run says what was left over and removes it, and a reader
refuses a set whose files were changed or lost since their run wrote them."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.evaluate.run import saved_evaluation
from kronos_cli.records.runs import backtest_dir, forecast_cache_dir
from kronos_cli.workflows.pipeline import _outputs_exist
from tests.conftest import DEMO_SPLITS, backtest_args

runner = CliRunner()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
# `kronos ARGS...` that SIGKILLs itself when the backtest starts its plot: signals and positions of the new run are
# written by then, the plot, report and results are not.
KILLED_AT_THE_PLOT = """
import os, signal, sys
import kronos_cli.backtest.run as run
run.plot_performance = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["kronos", *sys.argv[1:]]
from kronos_cli.cli.app import main
main()
"""


def _files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def backtest(prepared, tiny_checkpoints, tmp_path):
    """`kronos backtest ARGS` of the tiny pair into tmp_path/out (one signal, to stay quick), and its config."""
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    args = [*backtest_args(cfg, tok, model, tmp_path / "out"), "backtest.batch_size=2048", "backtest.signals=[mean]"]
    run_cfg = config.load(None, [a for a in args[1:] if "=" in a and not a.startswith("-")])
    return args, run_cfg, tmp_path / "out" / "backtest_results" / "bt"


def _results(out: Path) -> dict:
    return json.loads((out / "backtest_results.json").read_text())


def test_a_backtest_that_fails_while_writing_leaves_the_last_set_whole(backtest, monkeypatch, capsys):
    args, cfg, out = backtest
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    before = _files(out)
    assert _results(out)["config"]["backtest"]["topk"] == 8 and "positions.csv" in before

    def no_space(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kronos_cli.backtest.run.plot_performance", no_space)  # after signals and positions
    failed = runner.invoke(app, [*args, "backtest.topk=5"])
    assert failed.exit_code == 1, failed.output
    assert _files(out) == before  # not the new positions beside the old results: the last run's set, whole
    assert out.is_symlink() and not list((out.parent.parent / "runs").glob(".*"))  # nothing of the failed write left
    assert _outputs_exist(cfg, "backtest")

    with open(out / "positions.csv", "a") as f:  # a file replaced by hand, or by another writer
        f.write("mean,2024-12-31,SH600000,100,0.2\n")
    capsys.readouterr()
    assert not _outputs_exist(cfg, "backtest")
    said = [ln for ln in capsys.readouterr().err.splitlines() if "WARNING" in ln]
    assert len(said) == 1 and "positions.csv is not the file its run wrote" in said[0], said
    assert "the backtest stage runs again" in said[0]


@pytest.mark.slow
def test_a_backtest_killed_while_writing_leaves_the_last_set_and_the_next_run_says_so(backtest):
    args, cfg, out = backtest
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    before = _files(out)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_THE_PLOT, *args, "backtest.topk=5"], env=ENV, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _files(out) == before and _results(out)["config"]["backtest"]["topk"] == 8
    assert _outputs_exist(cfg, "backtest")
    (leftover,) = (out.parent.parent / "runs").glob(".*.tmp-*")  # the killed write got as far as its positions
    assert (leftover / "positions.csv").is_file() and not (leftover / "backtest_results.json").exists()

    again = runner.invoke(app, [*args, "backtest.topk=5"])
    assert again.exit_code == 0, again.output
    assert "was killed before it finished" in again.output and leftover.name in again.output
    assert not leftover.exists() and _results(out)["config"]["backtest"]["topk"] == 5
    assert _outputs_exist(cfg, "backtest")


def test_an_evaluation_that_fails_while_writing_keeps_the_last_leaderboard_and_a_changed_one_is_refused(
    prepared, tiny_checkpoints, tmp_path, monkeypatch, capsys
):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    overrides = [
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={tmp_path}",
        "run_name=ev",
        f"model.tokenizer={tok}",
        f"model.predictor={model}",
        "backtest.sample_count=2",
    ]
    run_cfg = config.load(None, overrides)
    first = runner.invoke(app, ["evaluate", *overrides, "--device", "cpu", "--json"])
    assert first.exit_code == 0, first.output
    out = Path(json.loads(first.stdout)["outputs"]["results"]).parent  # the run's own directory under runs/
    before = _files(out)
    assert saved_evaluation(run_cfg).models[0].label == "zero-shot"

    def no_space(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kronos_cli.evaluate.report.plot_pit", no_space)  # after the first two plots
    more = ["--models", f"again={model}"]  # its forecasts are in the cache; the plots gain a line
    failed = runner.invoke(app, ["evaluate", *overrides, *more, "--device", "cpu"])
    assert failed.exit_code == 1, failed.output
    assert _files(out) == before and not list(out.parent.glob(".*"))
    assert saved_evaluation(run_cfg) is not None and _outputs_exist(run_cfg, "evaluate")

    capsys.readouterr()
    (out / "error_by_horizon.png").write_bytes(b"not the plot")  # one file of the set, changed
    assert saved_evaluation(run_cfg) is None
    (out / "results_manifest.json").unlink()  # a set with no manifest (an older version's)
    assert saved_evaluation(run_cfg) is None
    said = [ln for ln in capsys.readouterr().err.splitlines() if "WARNING" in ln]
    assert len(said) == 2 and all("`kronos evaluate` writes it again" in ln for ln in said), said
    assert "error_by_horizon.png is not the file its run wrote" in said[0]
    assert "has no results_manifest.json" in said[1]


def test_the_forecast_cache_lives_outside_the_result_sets_and_an_earlier_one_is_moved_not_lost(tmp_path):
    cfg = config.load(None, [f"output_dir={tmp_path}", "run_name=r"])
    legacy = backtest_dir(cfg) / "forecast_cache" / "key"  # where earlier versions kept it, inside the set
    legacy.mkdir(parents=True)
    (legacy / "chunk_0.npz").write_bytes(b"forecasts")
    cache = forecast_cache_dir(cfg, "key")
    assert cache == tmp_path / "forecast_cache" / "r" / "key" and (cache / "chunk_0.npz").read_bytes() == b"forecasts"
    assert not (backtest_dir(cfg) / "forecast_cache").exists()  # so a result set that replaces its directory keeps it
