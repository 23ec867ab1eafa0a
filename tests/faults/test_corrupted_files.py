"""Corrupted and missing files get one line and exit 2, never a traceback or a wrong result: truncated or
mismatched weights, a config whose shapes do not fit them, a pickle posing as a bundle (nothing of it runs),
a bundle whose configs or conventions are out of bounds (refused before a model is built), a truncated, edited
or missing dataset array (the manifest's SHA-256 catches it), and a dataset edited and re-hashed on purpose (the
manifest's digest and the checks of the arrays' contents catch it)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.core.errors import KronosError
from kronos_cli.data.store import DatasetArrays
from kronos_cli.model.bundle import write_bundle
from tests.conftest import edit_array, edit_manifest, rehash_dataset

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
def bundle(tiny_pair, tmp_path):
    path = tmp_path / "kronos_finetuned.pth"
    write_bundle(*tiny_pair, path, {"max_context": 64, "clip": 5.0, "lookback_window": 30, "predict_window": 5})
    return path


def _both_configs(key, value):
    def edit(d):
        d["tokenizer"]["config"][key] = d["model"]["config"][key] = value

    return edit


MALFORMED_BUNDLES = {
    "no model entry": (lambda d: d.pop("model"), "the model entry lacks its config or its state_dict"),
    "no config field": (lambda d: d["model"]["config"].pop("n_layers"), "lacks the field(s) n_layers"),
    "config not a mapping": (lambda d: d["model"].update(config=[1, 2]), "must be a mapping of fields"),
    "no normalisation": (lambda d: d.pop("normalisation"), "the data conventions must be a mapping"),
    "context 0": (lambda d: d["normalisation"].update(max_context=0), "max_context must be an integer from 1"),
    "context -5": (lambda d: d["normalisation"].update(max_context=-5), "max_context must be an integer from 1"),
    "context a string": (lambda d: d["normalisation"].update(max_context="512"), "max_context must be an integer"),
    "NaN clip": (lambda d: d["normalisation"].update(clip=float("nan")), "clip must be a finite number > 0, got nan"),
    "s1_bits 30": (_both_configs("s1_bits", 30), "s1_bits must be an integer from 1 to 20, got 30"),
    "bits as floats": (_both_configs("s1_bits", 4.0), "s1_bits must be an integer from 1 to 20, got 4.0"),
    "bits beyond the tensors": (_both_configs("s1_bits", 12), "do not fit its config.json"),
    "predictor beyond its tensors": (lambda d: d["model"]["config"].update(ff_dim=4096), "wrong shape: transformer"),
    "NaN dropout": (lambda d: d["model"]["config"].update(attn_dropout_p=float("nan")), "attn_dropout_p must be"),
}


@pytest.mark.parametrize("case", MALFORMED_BUNDLES)
def test_a_malformed_bundle_is_one_line_and_nothing_is_built_from_it(case, bundle, bars_csv, built_on):
    edit, needle = MALFORMED_BUNDLES[case]
    data = torch.load(bundle, weights_only=True)
    edit(data)
    torch.save(data, bundle)
    res = runner.invoke(app, ["predict", str(bars_csv), "--bundle", str(bundle), "--device", "cpu"])
    _one_line(res, str(bundle), needle)
    assert set(built_on) <= {"meta"}, built_on  # refused before a model was built: the file decides no allocation


def test_an_intact_bundle_forecasts(bundle, bars_csv):
    res = runner.invoke(app, ["predict", str(bars_csv), "--bundle", str(bundle), "--device", "cpu", "--pred-len", "2"])
    assert res.exit_code == 0, res.output


def test_out_of_bounds_conventions_in_a_checkpoint_directory(copies, bars_csv, built_on):
    tok, model = copies
    cfg = json.loads((model / "config.json").read_text())
    cfg["kronos_cli"] = {"max_context": 0, "clip": 5.0}
    (model / "config.json").write_text(json.dumps(cfg))
    _one_line(_predict(bars_csv, tok, model), "config.json (kronos_cli block)", "max_context must be an integer from 1")


def test_an_intact_dataset_opens(dataset_copy):
    arrays = DatasetArrays(dataset_copy)
    assert set(arrays.manifest["arrays"]) >= {"features", "windows_train", "origins_test", "calendar"}


def test_a_truncated_array_is_refused(dataset_copy, tmp_path):
    features = dataset_copy / "features.npy"
    features.write_bytes(features.read_bytes()[:-4096])
    with pytest.raises(KronosError, match=r"features.npy has \d+ bytes, the manifest records \d+ \(truncated"):
        DatasetArrays(dataset_copy)
    _one_line(_train(dataset_copy, tmp_path / "out"), "features.npy", "run `kronos prep` again")


def _train(dataset: Path, out: Path):
    """One step of `kronos train-predictor` on `dataset`: the first reader of it."""
    args = [
        "train-predictor",
        f"data.dataset_path={dataset}",
        "data.lookback_window=30",
        "data.predict_window=5",
        "model.tokenizer=preset:tokenizer-tiny",
        "model.predictor=preset:tiny",
        f"output_dir={out}",
        "--max-steps",
        "1",
    ]
    return runner.invoke(app, args)


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


def _moved_window(arr):
    arr[0, 0] += 1
    return arr


@pytest.mark.parametrize("reseal", [False, True], ids=["as edited", "digest recomputed"])
def test_an_array_dropped_from_the_manifest_and_edited(dataset_copy, tmp_path, reseal):
    edit_manifest(dataset_copy, lambda m: m["arrays"].pop("windows_train"), reseal)
    edit_array(dataset_copy, "windows_train", _moved_window)
    needle = "windows_train.npy is not listed in manifest.json" if reseal else "was changed after `kronos prep`"
    _one_line(_train(dataset_copy, tmp_path / "out"), needle, "run `kronos prep` again")


@pytest.mark.parametrize(
    "rows, needle", [(1e9, "symbols[0].rows is 1000000000.0, not a whole number"), (10**9, "symbols[1].first_row is")]
)
@pytest.mark.parametrize("reseal", [False, True], ids=["as edited", "digest recomputed"])
def test_a_symbol_claiming_rows_it_does_not_have(dataset_copy, tmp_path, rows, needle, reseal):
    edit_manifest(dataset_copy, lambda m: m["symbols"][0].update(rows=rows), reseal)
    _one_line(_train(dataset_copy, tmp_path / "out"), needle if reseal else "was changed after `kronos prep`")


def _all_nan_close(arr):
    arr[:, 3] = np.nan
    return arr


def _object_windows(arr):
    return arr.astype(object)


def _window_past_the_end(arr):
    arr[0, 0] = 10**9
    return arr


def _symbol_out_of_range(arr):
    arr[0, 1] = -1
    return arr


REHASHED_EDITS = {
    "all-NaN feature": ("features", _all_nan_close, "features.npy column close is NaN or infinite in all of its rows"),
    "object array": ("windows_train", _object_windows, "windows_train.npy holds object rows"),
    "window past the end": ("windows_train", _window_past_the_end, "windows_train.npy has 1 of its"),
    "symbol out of range": ("origins_test", _symbol_out_of_range, "origins_test.npy names symbols outside"),
}


@pytest.mark.parametrize("case", REHASHED_EDITS)
def test_an_array_edited_and_rehashed_is_refused_by_its_contents(case, dataset_copy, tmp_path):
    name, edit, needle = REHASHED_EDITS[case]
    edit_array(dataset_copy, name, edit)
    rehash_dataset(dataset_copy)
    _one_line(_train(dataset_copy, tmp_path / "out"), needle, "run `kronos prep` again")


def test_an_int8_export_is_checked_like_a_bundle(tiny_pair, tmp_path, built_on):
    from kronos_cli.export.quantized import load_quantized, write_quantized

    path = write_quantized(*tiny_pair, tmp_path / "kronos_int8.pth", {"max_context": 64, "clip": 5.0}, "int8")
    tok, model, conventions = load_quantized(path)  # intact: every quantised weight fits its config
    assert conventions.max_context == 64 and model.config == tiny_pair[1].config
    built_on.clear()
    data = torch.load(path, weights_only=True)
    data["model"]["config"]["ff_dim"] = 4096  # a size only the quantised Linears' weights hold
    torch.save(data, path)
    with pytest.raises(KronosError, match=r"do not fit its config.json \(wrong shape: transformer.0.ffn.w1.weight"):
        load_quantized(path)
    assert set(built_on) <= {"meta"}
