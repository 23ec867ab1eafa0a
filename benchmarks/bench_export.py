"""Exported artifacts' CPU speed against the eager fp32 model, in one run on the same CPU.

Kronos-small-sized random weights with the Kronos-Tokenizer-base architecture; one series, 384 bars of history,
120 forecast (greedy), as `predict` runs it. Prints seconds per forecast of each and the ratio against fp32
(above 1: faster), for torchao's weight-only int8 and int4 copies (what `kronos export --format int8,int4`
writes) and, for comparison while torch still ships it, the deprecated `quantize_dynamic` int8 that earlier
releases exported. Also the batch regime (16 series) where the quantised kernels matter more.

    python benchmarks/bench_export.py            # the full benchmark (a few minutes on 2 cores)
    python benchmarks/bench_export.py --quick    # 96 -> 24 bars, for a smoke run
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import numpy as np
import torch

from kronos_cli.export.quantized import quantize
from kronos_cli.forecast import KronosPredictor
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.sampling import GREEDY


def dynamic_int8(module: torch.nn.Module) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module).eval(), spec, dtype=torch.qint8)


def inputs(series: int, look: int, pred: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(size=(series, look, 6)), -5, 5).astype(np.float32)
    days = np.arange(look + pred)
    stamps = np.stack([0 * days, 0 * days, days % 5, days % 28 + 1, days // 28 % 12 + 1], -1)
    return x, np.repeat(stamps[None], series, 0).astype(np.int8)


def seconds(forecaster: KronosPredictor, x: np.ndarray, stamps: np.ndarray, pred: int, reps: int) -> float:
    look = x.shape[1]
    run = lambda: forecaster.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred, GREEDY)  # noqa: E731
    run()  # warm-up: the decode layout, allocator
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    look, pred, reps = (96, 24, 1) if args.quick else (384, 120, 3)
    torch.manual_seed(0)
    tok, model = KronosTokenizer.from_preset("tokenizer-base").eval(), Kronos.from_preset("small").eval()
    copies = {
        "fp32": (tok, model),
        "int8 (torchao)": (quantize(tok, "int8"), quantize(model, "int8")),
        "int4 (torchao)": (quantize(tok, "int4"), quantize(model, "int4")),
        "int8 (quantize_dynamic)": (dynamic_int8(tok), dynamic_int8(model)),
    }
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; Kronos-small, {look} -> {pred} bars, greedy", flush=True)
    for series in (1, 16):
        x, stamps = inputs(series, look, pred)
        fp32 = None
        for name, (t, m) in copies.items():
            s = seconds(KronosPredictor(m, t, device="cpu", max_context=512), x, stamps, pred, reps)
            fp32 = fp32 or s
            print(f"{series:>3} series  {name:<24} {s:8.3f} s   {fp32 / s:5.2f}x fp32", flush=True)


if __name__ == "__main__":
    main()
