"""`kronos export --format onnx`: the graphs and their numpy driver forecast as the torch library does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.export import onnx_check, onnx_driver
from kronos_cli.export.onnx_graphs import OPSET, write_onnx
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.market.bars import denormalise, normalise_lookback
from kronos_cli.model.sampling import Sampling, sample
from tests.conftest import make_bars

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CONTEXT = 24  # short, so that the window slides and long horizons decode in two windows

BLOCK_TORCH = """import sys
sys.modules["torch"] = None  # an import of torch now fails
sys.modules["kronos_cli"] = None
"""


@pytest.fixture(scope="module")
def exported(tiny_pair, tmp_path_factory):
    tok, model = tiny_pair
    return write_onnx(tok, model, tmp_path_factory.mktemp("onnx") / "onnx", CONTEXT, 5.0)


@pytest.fixture(scope="module")
def eager(tiny_pair):
    tok, model = tiny_pair
    return KronosPredictor(model, tok, device="cpu", max_context=CONTEXT, clip=5.0)


def windows(series: int, look: int, pred: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw bars (series, look, 6) of the shared synthetic bars and daily stamps (series, look + pred, 5)."""
    bars = [make_bars(look, seed=s)[["open", "high", "low", "close", "volume", "amount"]] for s in range(series)]
    x = np.stack([b.to_numpy(np.float32) for b in bars])
    days = np.arange(look + pred)
    stamps = np.stack([0 * days, 0 * days, days % 5, days % 28 + 1, days // 28 % 12 + 1], -1)
    return x, np.repeat(stamps[None], series, 0).astype(np.int64)


def driver_sampling(s: Sampling) -> onnx_driver.Sampling:
    return onnx_driver.Sampling(s.temperature, s.top_k, s.top_p, s.paths)


def test_the_export_directory_holds_graphs_metadata_and_driver(exported):
    program = json.loads((exported / onnx_driver.PROGRAM).read_text())
    assert program["opset"] == OPSET and program["max_context"] == CONTEXT
    names = {p.name for p in exported.iterdir()}
    assert names == {"encode.onnx", "step.onnx", "s2.onnx", "decode.onnx", "program.json", "kronos_onnx.py"}
    assert not list(exported.parent.glob(".*partial"))


@pytest.mark.parametrize(
    "sampling", [Sampling(top_k=1), Sampling(paths=3, seed=5), Sampling(temperature=0.6, top_k=5, paths=2, seed=1)]
)
@pytest.mark.parametrize("look,pred", [(10, 5), (20, 12), (30, 30)])  # no slide; slides; slides, two windows
def test_tokens_and_bars_match_the_torch_forecast(exported, eager, sampling, look, pred):
    x, stamps = windows(2, look, pred)  # two series: a dynamic batch
    xn = normalise_lookback(x, 5.0)[0]
    expected, tokens = onnx_check.torch_forecast(eager, xn, stamps, pred, sampling)
    forecaster = onnx_driver.OnnxForecaster(exported)
    s1, s2 = forecaster.sessions["encode"].run(None, {"x": xn})
    rng = np.random.default_rng(sampling.seed)
    seq1, _ = forecaster.generate(s1, s2, stamps, pred, driver_sampling(sampling), rng)
    np.testing.assert_array_equal(seq1, tokens.numpy())  # every token, greedy or drawn
    got = forecaster.forecast_normalised(
        xn, stamps, pred, driver_sampling(sampling), np.random.default_rng(sampling.seed)
    )
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_greedy_prices_match_the_library_forecast(exported, eager):
    x, stamps = windows(1, 30, 6)
    expected = eager.forecast(x, stamps[:, :30], stamps[:, 30:], 6, Sampling(top_k=1)).samples
    got = onnx_driver.OnnxForecaster(exported).forecast(x, stamps, 6, onnx_driver.Sampling(top_k=1))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_the_driver_runs_without_torch(exported, eager, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
    x, stamps = windows(2, 30, 8)
    np.savez(tmp_path / "in.npz", x=x, stamps=stamps)
    flags = ["--paths", "3", "--seed", "11", "--temperature", "0.8", "--top-p", "0.9"]
    driver = exported / onnx_driver.DRIVER
    args = [sys.executable, str(driver), str(exported), str(tmp_path / "in.npz"), str(tmp_path / "out.npy"), *flags]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "out.npy")
    xn, mean, std = normalise_lookback(x, 5.0)
    sampling = Sampling(temperature=0.8, top_p=0.9, paths=3, seed=11)
    expected = denormalise(onnx_check.torch_forecast(eager, xn, stamps, 8, sampling)[0], mean[:, None], std[:, None])
    assert got.shape == (2, 3, 8, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_shared_noise_draws_as_the_library_sampler_does():
    """SharedNoise is `sampling.sample` with its exponential noise taken from elsewhere: fed torch's own draws,
    the same tokens."""
    logits = torch.randn(4, 16)
    noise = torch.empty(4, 16).exponential_(1, generator=torch.Generator().manual_seed(3))

    class Replay:  # hands over torch's draws where the driver's numpy Generator would give its own
        def standard_exponential(self, shape, dtype):
            return noise.numpy()

    expected = sample(logits, 0.7, 0, 0.8, torch.Generator().manual_seed(3))
    drawn = onnx_check.SharedNoise(4, Sampling(temperature=0.7, top_p=0.8, paths=4), Replay())(logits)
    assert torch.equal(drawn, expected)


def test_onnx_without_its_packages_is_one_line_naming_the_extra(export_args, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: find_spec answers None
    res = CliRunner().invoke(app, [*export_args, "--out", str(tmp_path / "e"), "--format", "bundle,onnx"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "pip install 'kronos-cli[onnx]'" in line and "--format" in line
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_export_onnx_on_request_is_verified(export_args, tmp_path):
    res = CliRunner().invoke(app, [*export_args, "--out", str(tmp_path / "e"), "--format", "bundle,onnx", "--json"])
    assert res.exit_code == 0, res.output
    onnx = next(a for a in json.loads(res.stdout)["artifacts"] if a["format"] == "onnx")
    assert onnx["verified"] and onnx["opset"] == OPSET and onnx["max_abs_diff"] <= onnx_check.MAX_DIFF
    assert (tmp_path / "e" / "onnx" / "kronos_onnx.py").is_file()
    assert not list((tmp_path / "e").glob(".verify*"))
