"""Exported artifacts' CPU speed against the eager fp32 model, in one run on the same CPU.

Kronos-small-sized random weights with the Kronos-Tokenizer-base architecture; one series, 384 bars of history,
120 forecast (greedy), as `predict` runs it. Prints seconds per forecast of each and the ratio against fp32
(above 1: faster), for torchao's weight-only int8 and int4 copies (what `kronos export --format int8,int4`
writes) and, for comparison while torch still ships it, the deprecated `quantize_dynamic` int8 that earlier
releases exported. Also the batch regime (16 series) where the quantised kernels matter more. Then ONNX Runtime
running `kronos export --format onnx`'s graphs through its numpy driver against eager torch, one series, greedy
(needs the onnx extra).

    python benchmarks/bench_export.py            # the full benchmark (a few minutes on 2 cores)
    python benchmarks/bench_export.py --quick    # 96 -> 24 bars, for a smoke run
    python benchmarks/bench_export.py --onnx     # ONNX Runtime against eager torch only
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import timed  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli.export import onnx_driver
from kronos_cli.export.onnx_graphs import OPSET, write_onnx
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
    return timed(run, reps)


def onnx_against_eager(tok: KronosTokenizer, model: Kronos, look: int, pred: int, reps: int) -> None:
    """Seconds per forecast of the exported graphs in ONNX Runtime (the driver's loop) and of eager torch."""
    import onnxruntime  # lazy: the onnx extra is optional

    x, stamps = inputs(1, look, pred)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        directory = write_onnx(tok, model, Path(tmp) / "onnx", 512, 5.0)
        print(f"exported the onnx graphs (opset {OPSET}) in {time.perf_counter() - t:.1f} s", flush=True)
        ort = onnx_driver.OnnxForecaster(directory)
        greedy = onnx_driver.Sampling(top_k=1)

        def run_ort():
            return ort.forecast_normalised(x, stamps.astype(np.int64), pred, greedy)

        run_ort()  # warm-up: the sessions' first runs
        t_ort = timed(run_ort, reps)
    t_eager = seconds(KronosPredictor(model, tok, device="cpu", max_context=512), x, stamps, pred, reps)
    print(f"  1 series  {'eager torch (fp32)':<24} {t_eager:8.3f} s   {pred / t_eager:7.1f} bars/s", flush=True)
    print(
        f"  1 series  {'onnxruntime ' + onnxruntime.__version__:<24} {t_ort:8.3f} s   {pred / t_ort:7.1f} bars/s"
        f"   {t_eager / t_ort:5.2f}x eager",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--onnx", action="store_true", help="only ONNX Runtime against eager torch")
    args = parser.parse_args()
    look, pred, reps = (96, 24, 1) if args.quick else (384, 120, 3)
    torch.manual_seed(0)
    tok, model = KronosTokenizer.from_preset("tokenizer-base").eval(), Kronos.from_preset("small").eval()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; Kronos-small, {look} -> {pred} bars, greedy", flush=True)
    if args.onnx:
        onnx_against_eager(tok, model, look, pred, reps)
        return
    copies = {
        "fp32": (tok, model),
        "int8 (torchao)": (quantize(tok, "int8"), quantize(model, "int8")),
        "int4 (torchao)": (quantize(tok, "int4"), quantize(model, "int4")),
        "int8 (quantize_dynamic)": (dynamic_int8(tok), dynamic_int8(model)),
    }
    for series in (1, 16):
        x, stamps = inputs(series, look, pred)
        fp32 = None
        for name, (t, m) in copies.items():
            s = seconds(KronosPredictor(m, t, device="cpu", max_context=512), x, stamps, pred, reps)
            fp32 = fp32 or s
            print(f"{series:>3} series  {name:<24} {s:8.3f} s   {fp32 / s:5.2f}x fp32", flush=True)
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
        print("onnx: skipped (pip install 'kronos-cli[onnx]')", file=sys.stderr)
        return
    onnx_against_eager(tok, model, look, pred, reps)


if __name__ == "__main__":
    main()
