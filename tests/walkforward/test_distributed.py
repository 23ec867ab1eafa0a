"""`kronos walkforward --nproc 2`: every fold's training and forecasting run on two gloo workers (real processes
through torch elastic), and the stitched result is one process's, as far as the arithmetic allows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from tests.walkforward.test_walkforward import _overrides

runner = CliRunner()
BASE = "zero-shot"  # the base model of a run whose model is a checkpoint, never refitted


def _fold_dir(root: Path, fold: int) -> Path:
    return root / "out" / "walkforward" / "wf" / "folds" / "models" / f"fold{fold:02d}" / "predictor"


@pytest.mark.slow
def test_two_workers_train_and_forecast_every_fold_as_one_process_does(market, tiny_checkpoints, tmp_path):
    """Two folds, the predictor refitted from the tiny checkpoint; 1 process x 16 samples a batch against 2 workers x
    8 (the same global batch): the weights agree to float rounding (DDP's all-reduce sums in another order), the
    base model's forecasts bit for bit (per-window seeds), and the refitted model's scores to 1e-3 relative."""
    tok, model = tiny_checkpoints
    common = [f"model.tokenizer={tok}", f"model.predictor={model}", "walkforward.start=2024-07-01"]
    results = {}
    for name, extra, flags in (
        ("one", ["training.batch_size=16", "training.n_train_iter=4"], []),
        ("two", ["training.batch_size=8", "training.n_train_iter=8"], ["--nproc", "2"]),
    ):
        args = ["walkforward", *_overrides(market, tmp_path / name, *common, *extra), "--device", "cpu", *flags]
        res = runner.invoke(app, [*args, "--json"])
        assert res.exit_code == 0, res.output
        results[name] = json.loads(res.stdout)
    one, two = results["one"], results["two"]
    assert len(two["folds"]) == 2 and [f["ran"] for f in two["folds"]] == [["prep", "train-predictor"]] * 2
    for fold, (a, b) in enumerate(zip(one["folds"], two["folds"]), start=1):
        trained = [json.loads((_fold_dir(tmp_path / n, fold) / "summary.json").read_text()) for n in ("one", "two")]
        assert [t["world_size"] for t in trained] == [1, 2] and trained[0]["steps"] == trained[1]["steps"]
        weights = [
            load_file(str(_fold_dir(tmp_path / n, fold) / "checkpoints" / "best_model" / "model.safetensors"))
            for n in ("one", "two")
        ]
        for key in weights[0]:
            torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-4, atol=1e-5)
        assert a["reused_forecasts"] == 0 and b["reused_forecasts"] == 2 * b["windows"]  # the workers' forecasts
        assert b["scores"][BASE] == a["scores"][BASE]
        for metric, value in a["scores"]["fine-tuned"].items():
            assert b["scores"]["fine-tuned"][metric] == pytest.approx(value, rel=1e-3, abs=1e-6), metric
    stitched = [{m["label"]: m for m in r["stitched"]["models"]} for r in (one, two)]
    assert stitched[1][BASE] == stitched[0][BASE]
    assert stitched[1]["fine-tuned"]["overall"] == pytest.approx(stitched[0]["fine-tuned"]["overall"], rel=1e-3)
