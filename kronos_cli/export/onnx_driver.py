"""Kronos forecasts with ONNX Runtime: the graphs `kronos export --format onnx` wrote, driven by numpy alone.

This file is copied into the export directory as `kronos_onnx.py` and imports only numpy and onnxruntime. It is
the torch forecast's algorithm step for step: normalise on the lookback, encode, prefill the window once and
decode one token at a time with the key/value cache the step graph returns (re-prefilling once the window of
`max_context` tokens slides), sample with the reference's rules (temperature, then top-k or else the nucleus;
top_k = 1 is greedy), decode the tokens in windows of `max_context`, de-normalise. A draw is the argmax of
p / q with q ~ Exp(1), as torch.multinomial draws one sample; q comes from a numpy Generator, so a run is
reproducible by seed (the torch path reproduces it given the same q).

    python kronos_onnx.py EXPORT_DIR INPUTS.npz OUTPUT.npy [--top-k 1] [--paths 5 --seed 0] [--normalised]

INPUTS holds `x` (B, L, 6) bars (open, high, low, close, volume, amount) and `stamps` (B, L + P, 5) calendar
fields (minute, hour, weekday, day, month) of the history and the horizon; OUTPUT gets the paths (B, S, P, 6).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROGRAM = "program.json"
DRIVER = "kronos_onnx.py"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # 0: off; 1: greedy
    top_p: float = 0.9
    paths: int = 1


def filter_logits(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Logits (R, V) outside the top k (top_k > 0), else outside the nucleus (top_p < 1), set to -inf; the
    nucleus keeps the most likely token and the one that carries the cumulative probability past top_p."""
    if top_k > 0:
        kth = -np.sort(-logits, axis=-1)[:, min(top_k, logits.shape[-1]) - 1 : min(top_k, logits.shape[-1])]
        return np.where(logits < kth, -np.inf, logits).astype(logits.dtype)
    if top_p >= 1.0:
        return logits
    order = np.argsort(-logits, axis=-1, kind="stable")
    cumulative = np.cumsum(softmax(np.take_along_axis(logits, order, -1)), axis=-1)
    remove = np.zeros_like(cumulative, dtype=bool)
    remove[:, 1:] = cumulative[:, :-1] > top_p  # keep the token that crosses the threshold
    mask = np.zeros_like(remove)
    np.put_along_axis(mask, order, remove, -1)
    return np.where(mask, -np.inf, logits).astype(logits.dtype)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def draw(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> np.ndarray:
    """One token id per row of logits (R, V) -> (R,); greedy takes no random numbers."""
    if sampling.top_k == 1:
        return logits.argmax(-1)
    scaled = logits.astype(np.float32) / np.float32(sampling.temperature)
    probs = softmax(filter_logits(scaled, sampling.top_k, sampling.top_p))
    q = rng.standard_exponential(probs.shape, dtype=np.float32)
    return (probs / q).argmax(-1)


class OnnxForecaster:
    """The exported program in one ONNX Runtime session per graph."""

    def __init__(self, directory: str | Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort  # lazy: the library imports this module for its names without the onnx extra

        directory = Path(directory)
        self.program = json.loads((directory / PROGRAM).read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = {
            name: ort.InferenceSession(str(directory / file), options, providers=providers or ["CPUExecutionProvider"])
            for name, file in self.program["graphs"].items()
        }
        self.max_context, self.clip, self.eps = self.program["max_context"], self.program["clip"], self.program["eps"]

    def _run(self, graph: str, **inputs: np.ndarray) -> list[np.ndarray]:
        return self.sessions[graph].run(None, inputs)

    def empty_cache(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.program
        past = np.zeros((p["n_layers"], 2, rows, p["n_heads"], 0, p["head_dim"]), np.float32)
        return past, np.zeros((2, rows, p["dep_heads"], 0, p["dep_head_dim"]), np.float32)

    def step(self, s1: np.ndarray, s2: np.ndarray, stamps: np.ndarray, cache: tuple[np.ndarray, np.ndarray]):
        """Tokens (R, T) appended to the cache -> (next s1 logits (R, V1), last hidden (R, 1, d), grown cache)."""
        logits, h_last, past, dep = self._run(
            "step", s1=s1, s2=s2, stamps=stamps.astype(np.int64), past=cache[0], past_dep=cache[1]
        )
        return logits, h_last, (past, dep)

    def generate(
        self, s1: np.ndarray, s2: np.ndarray, stamps: np.ndarray, pred_len: int, sampling: Sampling, rng
    ) -> tuple[np.ndarray, np.ndarray]:
        """History ids (B, L) and stamps (B, L + P, 5) -> the sequences (B * S, L + P), series-major."""
        hist, paths, ctx = s1.shape[1], sampling.paths, self.max_context
        seq1 = np.repeat(np.concatenate([s1, np.zeros((len(s1), pred_len), s1.dtype)], 1), paths, 0)
        seq2 = np.repeat(np.concatenate([s2, np.zeros((len(s2), pred_len), s2.dtype)], 1), paths, 0)
        stamps = np.repeat(stamps, paths, 0)
        logits = None
        for i in range(pred_len):
            cur = hist + i
            start = max(0, cur - ctx)
            if i == 0:  # the paths of a series share their history: prefill each series once, then copy
                window = (s1[:, start:], s2[:, start:], stamps[::paths, start:cur])
                logits, h_last, cache = self.step(*window, self.empty_cache(len(s1)))
                logits, h_last = np.repeat(logits, paths, 0), np.repeat(h_last, paths, 0)
                cache = (np.repeat(cache[0], paths, 2), np.repeat(cache[1], paths, 1))
            elif logits is None:  # the window slid: every position's hidden state changed
                window = (seq1[:, start:cur], seq2[:, start:cur], stamps[:, start:cur])
                logits, h_last, cache = self.step(*window, self.empty_cache(len(seq1)))
            n1 = draw(logits, sampling, rng)
            (s2_logits,) = self._run("s2", s1_next=n1.astype(np.int64), h_last=h_last, dep=cache[1])
            n2 = draw(s2_logits, sampling, rng)
            seq1[:, cur], seq2[:, cur] = n1, n2
            logits = None
            if i + 1 < pred_len and cur + 1 <= ctx:
                logits, h_last, cache = self.step(n1[:, None], n2[:, None], stamps[:, cur : cur + 1], cache)
        return seq1, seq2

    def decode_windows(self, s1: np.ndarray, s2: np.ndarray, hist: int) -> np.ndarray:
        """Bars (R, P, 6) of the tokens after `hist`, each decoded from at most max_context tokens, in
        consecutive windows when the horizon is longer than the context."""
        pieces, end = [], s1.shape[1]
        while end > hist:
            take = min(end - hist, self.max_context)
            start = max(0, end - self.max_context)
            (bars,) = self._run("decode", s1=s1[:, start:end], s2=s2[:, start:end])
            pieces.append(bars[:, -take:])
            end -= take
        return np.concatenate(pieces[::-1], axis=1)

    def forecast_normalised(
        self, x: np.ndarray, stamps: np.ndarray, pred_len: int, sampling: Sampling, rng=None
    ) -> np.ndarray:
        """Normalised bars x (B, L, 6) and stamps (B, L + P, 5) -> paths (B, S, P, 6), normalised."""
        rng = rng if rng is not None else np.random.default_rng()
        s1, s2 = self._run("encode", x=np.ascontiguousarray(x, dtype=np.float32))
        seq1, seq2 = self.generate(s1, s2, np.asarray(stamps), pred_len, sampling, rng)
        bars = self.decode_windows(seq1, seq2, x.shape[1])
        return bars.reshape(x.shape[0], sampling.paths, pred_len, -1)

    def forecast(self, x: np.ndarray, stamps: np.ndarray, pred_len: int, sampling: Sampling, rng=None) -> np.ndarray:
        """Raw bars x (B, L, 6) -> paths (B, S, P, 6) of raw bars: normalised on each series' lookback (mean
        and population std), clipped, forecast, and mapped back."""
        x = np.asarray(x, dtype=np.float32)
        mean, std = x.mean(axis=-2, keepdims=True), x.std(axis=-2, keepdims=True)
        xn = np.clip((x - mean) / (std + self.eps), -self.clip, self.clip).astype(np.float32)
        out = self.forecast_normalised(xn, stamps, pred_len, sampling, rng)
        return out * (std[:, None] + self.eps) + mean[:, None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Forecast Kronos with ONNX Runtime.")
    parser.add_argument("directory", help="the export's onnx directory")
    parser.add_argument("inputs", help=".npz with x (B, L, 6) and stamps (B, L + P, 5)")
    parser.add_argument("output", help=".npy to write the paths (B, S, P, 6) to")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--paths", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--normalised", action="store_true", help="x is already in the model's units")
    args = parser.parse_args(argv)
    data = np.load(args.inputs, allow_pickle=False)
    x, stamps = data["x"], data["stamps"]
    sampling = Sampling(args.temperature, args.top_k, args.top_p, args.paths)
    forecaster = OnnxForecaster(args.directory)
    run = forecaster.forecast_normalised if args.normalised else forecaster.forecast
    out = run(x, stamps, stamps.shape[1] - x.shape[1], sampling, np.random.default_rng(args.seed))
    np.save(args.output, out.astype(np.float32), allow_pickle=False)


if __name__ == "__main__":
    main()
