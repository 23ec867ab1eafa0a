"""Corrupted and missing files get one line and exit 2, never a traceback or a wrong result: truncated or
mismatched weights, a config whose shapes do not fit them, a pickle posing as a bundle (nothing of it runs),
a truncated, edited or missing dataset array (the manifest's SHA-256 catches it)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.data.store import DatasetArrays
from kronos_cli.errors import KronosError

runner = CliRunner()


def _one_line(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _predict(bars_csv, tok, model, *extra):
    args = ["predict", bars_csv, "--tokenizer", tok, "--model", model, "--device", "cpu", "--pred-len", "3", *extra]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def copies(tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    return Path(shutil.copytree(tok, tmp_path / "tok")), Path(shutil.copytree(model, tmp_path / "model"))


def test_truncated_weights(copies, bars_csv):
    tok, model = copies
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _one_line(_predict(bars_csv, tok, model), "model.safetensors", "truncated")


def test_a_config_whose_shapes_do_not_fit_the_weights(copies, bars_csv):
    tok, model = copies
    cfg = json.loads((model / "config.json").read_text())
    cfg["d_model"] *= 2
    (model / "config.json").write_text(json.dumps(cfg))
    _one_line(_predict(bars_csv, tok, model), "do not fit its config.json", "wrong shape")


def test_weights_of_another_model(copies, tiny_checkpoints, bars_csv):
    tok, model = copies
    shutil.copy(tok / "model.safetensors", model / "model.safetensors")  # the tokenizer's weights
    _one_line(_predict(bars_csv, tok, model), "do not fit its config.json", "missing")


class _Payload:
    """Unpickling this would create a file: the proof that nothing of a pickle runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_posing_as_a_bundle_is_refused_and_nothing_of_it_runs(tmp_path, bars_csv):
    marker = tmp_path / "pwned"
    evil = tmp_path / "kronos_finetuned.pth"
    with open(evil, "wb") as f:
        pickle.dump({"tokenizer": _Payload(marker)}, f)
    line = _one_line(runner.invoke(app, ["predict", str(bars_csv), "--bundle", str(evil), "--device", "cpu"]))
    assert "weights_only" in line or "plain tensors" in line or "not a kronos bundle" in line.lower(), line
    # The same through the server's start-up, in a real process.
    res = subprocess.run(
        [sys.executable, "-m", "kronos_cli", "serve", "--bundle", str(evil), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not marker.exists()


def test_a_csv_passed_as_a_bundle_says_what_a_bundle_is(bars_csv):
    res = runner.invoke(app, ["predict", str(bars_csv), "--bundle", str(bars_csv), "--device", "cpu"])
    _one_line(res, "is not a kronos bundle", "the single .pth file `kronos export` writes")


@pytest.fixture
def dataset_copy(prepared, tmp_path):
    cfg, _ = prepared
    return Path(shutil.copytree(cfg.data.dataset_path, tmp_path / "dataset"))


def test_an_intact_dataset_opens(dataset_copy):
    arrays = DatasetArrays(dataset_copy)
    assert set(arrays.manifest["arrays"]) >= {"features", "windows_train", "origins_test", "calendar"}


def test_a_truncated_array_is_refused(dataset_copy, prepared, tmp_path):
    features = dataset_copy / "features.npy"
    features.write_bytes(features.read_bytes()[:-4096])
    with pytest.raises(KronosError, match=r"features.npy has \d+ bytes, the manifest records \d+ \(truncated"):
        DatasetArrays(dataset_copy)
    cfg, _ = prepared
    res = runner.invoke(
        app,
        [
            "train-predictor",
            f"data.dataset_path={dataset_copy}",
            "data.lookback_window=30",
            "data.predict_window=5",
            "model.tokenizer=preset:tokenizer-tiny",
            "model.predictor=preset:tiny",
            f"output_dir={tmp_path / 'out'}",
            "--max-steps",
            "1",
        ],
    )
    _one_line(res, "features.npy", "run `kronos prep` again")


def test_an_edited_array_of_the_same_size_is_refused(dataset_copy):
    windows = dataset_copy / "windows_train.npy"
    arr = np.load(windows)
    arr[0, 0] += 1  # one window moved by a bar: same size, other content
    np.save(windows, arr)
    with pytest.raises(KronosError, match="windows_train.npy does not match the SHA-256"):
        DatasetArrays(dataset_copy)


def test_a_missing_array_is_refused(dataset_copy):
    (dataset_copy / "origins_test.npy").unlink()
    with pytest.raises(KronosError, match="origins_test.npy is missing"):
        DatasetArrays(dataset_copy)
