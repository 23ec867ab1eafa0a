"""The ONNX export checked against the torch forecast: greedy, and sampled with the driver's random numbers.

The driver runs in a fresh process where torch and kronos_cli cannot be imported (`onnx_isolated.py`); the
torch side runs the library's engine with a sampler that takes the same numbers from the same numpy Generator
(`SharedNoise`), so that sampled paths can be compared token for token, not only in distribution.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from kronos_cli.export import onnx_driver, onnx_isolated
from kronos_cli.export.report import ArtifactCheck
from kronos_cli.export.verify import fresh_process
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.model.engine import decode_windows, generate
from kronos_cli.model.invariant import batch_invariant
from kronos_cli.model.sampling import Sampling, filter_logits

MAX_DIFF = 1e-4  # max |diff| of greedy and shared-noise sampled forecasts, normalised units
SAMPLED = Sampling(temperature=1.0, top_p=0.9, paths=2, seed=0)  # the sampled check: the reference's defaults
SAMPLED_WINDOWS = 16


class SharedNoise:
    """A torch sampler (`engine.generate`'s `sampler`) that draws as the driver does: temperature, filtering,
    then the argmax of p / q, q ~ Exp(1) taken from a numpy Generator in the driver's order (s1, then s2)."""

    def __init__(self, rows: int, sampling: Sampling, rng: np.random.Generator):
        self.rows, self.sampling, self.rng = rows, sampling, rng

    def __call__(self, logits: Tensor) -> Tensor:
        s = self.sampling
        if s.top_k == 1:
            return logits.argmax(-1)
        probs = torch.softmax(filter_logits(logits.float() / s.temperature, s.top_k, s.top_p), dim=-1)
        q = torch.from_numpy(self.rng.standard_exponential(tuple(probs.shape), dtype=np.float32))
        return (probs / q.to(probs.device)).argmax(-1)


@torch.no_grad()
def torch_forecast(
    forecaster: KronosPredictor, x: np.ndarray, stamps: np.ndarray, pred_len: int, sampling: Sampling
) -> tuple[np.ndarray, Tensor]:
    """The library's forecast of normalised bars x (B, L, 6) -> (paths (B, S, P, 6), tokens s1 (B * S, L + P)),
    drawing the driver's random numbers (a Generator seeded with `sampling.seed`)."""
    tok, model, ctx = forecaster.tokenizer, forecaster.model, forecaster.max_context
    xt, st = torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(stamps.astype(np.float32))
    paths = sampling.paths
    sampler = SharedNoise(len(x) * paths, sampling, np.random.default_rng(sampling.seed))
    with batch_invariant():
        h1, h2 = tok.encode(xt, half=True)
    s1, s2 = generate(model, h1, h2, st, pred_len, ctx, paths, sampler=sampler)
    with batch_invariant():
        bars = decode_windows(tok, s1, s2, x.shape[1], ctx, (h1, h2, paths))
    return bars.numpy().reshape(len(x), paths, pred_len, -1), s1


def run_driver(directory: Path, inputs: Path, output: Path, sampling: Sampling) -> np.ndarray:
    """The exported driver on normalised inputs, in a fresh process without torch -> paths (B, S, P, 6)."""
    driver = directory / onnx_driver.DRIVER
    flags = ["--temperature", str(sampling.temperature), "--top-k", str(sampling.top_k)]
    flags += ["--top-p", str(sampling.top_p), "--paths", str(sampling.paths), "--normalised"]
    flags += [] if sampling.seed is None else ["--seed", str(sampling.seed)]
    args = [sys.executable, "-I", onnx_isolated.__file__, str(driver), str(directory), str(inputs), str(output)]
    return fresh_process([*args, *flags], output, "running the onnx driver")


def verify(
    check: ArtifactCheck, reference: np.ndarray, x: np.ndarray, stamps: np.ndarray, eager: KronosPredictor
) -> None:
    """Greedy forecasts of every window, and 2 sampled paths of the first windows with the driver's random
    numbers, each within MAX_DIFF of the torch forecast (a token drawn otherwise would show as a whole bar)."""
    directory, pred = Path(check.path), stamps.shape[1] - x.shape[1]
    check.opset = json.loads((directory / onnx_driver.PROGRAM).read_text())["opset"]
    inputs = directory.parent / ".verify_onnx_inputs.npz"
    try:
        np.savez(inputs, x=x, stamps=stamps)
        greedy = run_driver(directory, inputs, directory.parent / ".verify_onnx.npy", Sampling(top_k=1))[:, 0]
        few = slice(0, SAMPLED_WINDOWS)
        np.savez(inputs, x=x[few], stamps=stamps[few])
        sampled = run_driver(directory, inputs, directory.parent / ".verify_onnx.npy", SAMPLED)
    except RuntimeError as exc:
        check.error = str(exc)
        return
    finally:
        inputs.unlink(missing_ok=True)
    expected, _ = torch_forecast(eager, x[few], stamps[few], pred, SAMPLED)
    diff = np.concatenate([np.abs(greedy - reference).ravel(), np.abs(sampled - expected).ravel()])
    check.max_abs_diff, check.mean_abs_diff = float(diff.max()), float(diff.mean())
    check.tolerance = f"max |diff| <= {MAX_DIFF:g}, greedy and sampled (same random numbers)"
    check.verified = bool(check.max_abs_diff <= MAX_DIFF)
