"""Forecasting speed: the KV-cached engine against the reference's full-recompute algorithm.

Kronos-small-sized random weights with the Kronos-Tokenizer-base architecture, on the CPU, same seed for both
paths. Prints forecasts per second of each path and their ratio for the two regimes of issue 2, and the
achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode) against a plain fp32 matmul timed in the same run
(target: at least 60% in the batch regime).

For the one-series regime it also prints the decode step's time (the forecast of `predict` bars minus that of
one bar, per step) as a multiple of the time to read the predictor's weights once at the memory bandwidth of a
large `copy_` in the same run (bytes copied per second; target: at most 1.5x), and, as the floor torch's own
kernels set, one matrix-vector product with every weight matrix of the model (no attention, no sampling).

The compiled decode step (`forecast.compile`, model/compiled.py): the engine's step time of one series, eager and
compiled, as a multiple of that floor measured in the same run (target: at most 1.3x), at lookback 96 and 384, and
beside it the floor of the step's own bytes: the same sweep over its products' weights plus the keys and values its
query sees at the forecast's middle position (at 384 these bring the step's bytes above the weights', and on a
machine whose cache holds the weights but not both, its memory reads slow down too). Then the compile time of a
first process (a fresh cache directory) and of a second one.

    python benchmarks/bench_forecast.py            # the full benchmark (a few minutes on 2 cores)
    python benchmarks/bench_forecast.py --quick    # smaller regimes, for a smoke run
    python benchmarks/bench_forecast.py --compiled # only the compiled step's figures
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from _common import timed  # noqa: E402 (benchmarks run as scripts from their folder)
from torch.utils.flop_counter import FlopCounterMode

from kronos_cli.forecast import KronosPredictor
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.compiled import DecodePlan
from kronos_cli.model.engine import generate
from kronos_cli.model.invariant import RowBlockLinear, block_count
from kronos_cli.model.sampling import Sampling


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def copy_bandwidth(mib: int = 256, reps: int = 5) -> float:
    """Bytes copied per second by a large tensor copy (each byte read once and written once), the best of
    `reps` copies, as the step time is the best of its repeats (noise only ever slows a run down)."""
    a = torch.empty(mib * 2**20 // 4)
    b = torch.empty_like(a)
    b.copy_(a)
    return a.numel() * 4 / timed(lambda: b.copy_(a), reps)


def gemv_floor(model: torch.nn.Module, tiled: bool = False, reps: int = 10) -> float:
    """Seconds for one matrix-vector product with every weight matrix of `model`, each as one F.linear, or
    (`tiled`) in the decode step's batch-invariant layout (`invariant.RowBlockLinear`: tiles of 16 rows)."""
    mats = [p.detach() for p in model.parameters() if p.dim() == 2]
    parts = block_count(torch.get_num_threads(), [w.shape[0] for w in mats])
    fns = [RowBlockLinear(w, None, parts) if tiled else (lambda x, w=w: torch.nn.functional.linear(x, w)) for w in mats]
    return sweep_seconds(mats, fns, reps)


def step_bytes_floor(model: torch.nn.Module, lookback: int, pred_len: int, reps: int = 10) -> tuple[float, int, int]:
    """Seconds of torch's matrix-vector sweep over what a decode step cannot avoid reading, and the bytes of its two
    parts: the weights of its products (not the embedding tables, of which it reads a row) and, per layer and the
    dependency layer, the keys and values of the slots its query sees at the forecast's middle position, as
    (slots, d_model) matrices (the compiled CPU step reads only those, `StaticKV.sliced`)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    weights = [p.detach() for p in model.parameters() if p.dim() == 2 and id(p) not in tables]
    c = model.config
    kv = [torch.ones(lookback + pred_len // 2, c.d_model) for _ in range(2 * (c.n_layers + 1))]
    mats = weights + kv
    seconds = sweep_seconds(mats, [lambda x, w=w: torch.nn.functional.linear(x, w) for w in mats], reps)
    return seconds, sum(w.numel() * 4 for w in weights), sum(m.numel() * 4 for m in kv)


def sweep_seconds(mats: list[torch.Tensor], fns: list, reps: int) -> float:
    xs = [torch.ones(1, w.shape[1]) for w in mats]

    def once():
        for x, f in zip(xs, fns):
            f(x)

    once()
    return timed(once, reps)  # the best sweep, as the step time is the best of its repeats


def decode_step(predictor: KronosPredictor, lookback: int, pred_len: int, repeat: int = 3) -> float:
    """Seconds per decode step of one series: (forecast of pred_len bars - forecast of 1 bar) / (pred_len - 1)."""
    x, xs, ys = inputs(1, lookback, pred_len)
    sampling = Sampling(temperature=0.6, top_p=0.9, seed=0)
    one = timed(lambda: predictor.forecast(x, xs, ys[:, :1], 1, sampling), repeat)
    full = timed(lambda: predictor.forecast(x, xs, ys, pred_len, sampling), repeat)
    return (full - one) / (pred_len - 1)


def engine_step(model: torch.nn.Module, plan: DecodePlan | None, lookback: int, pred_len: int) -> tuple[float, float]:
    """Seconds of one decode step of one series through the engine (token ids, no tokenizer): the shortest
    interval between two steps' progress calls over three forecasts (a loaded machine only ever adds time), and
    the first forecast's seconds (the compile, with `plan`)."""
    g = torch.Generator().manual_seed(0)
    s1, s2 = (torch.randint(0, 2**model.config.s1_bits, (1, lookback), generator=g) for _ in range(2))
    stamp = torch.zeros(1, lookback + pred_len, 5)
    sampling = Sampling(temperature=0.6, top_p=0.9)
    marks: list[float] = []

    def run() -> float:
        marks.clear()
        t = time.perf_counter()
        generate(
            model,
            s1,
            s2,
            stamp,
            pred_len,
            512,
            sampling=sampling,
            plan=plan,
            progress=lambda *_: marks.append(time.perf_counter()),
        )
        return time.perf_counter() - t

    first, best = run(), float("inf")
    for _ in range(3):
        run()
        best = min([best, *np.diff(marks)[:-1]])  # steps 1 .. P-2: the first prefills, the last runs no forward
    return best, first


def compile_seconds(cache: str) -> float:
    """The compile time of a fresh process whose inductor cache is `cache`."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, __file__, "--compile-only"], env=env, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def compiled_figures(model: torch.nn.Module, lookbacks: tuple[int, ...], pred_len: int) -> None:
    """The compiled step against the sweep at each lookback, then the compile time. The sweep reads the weights
    only; a step also reads the cache, whose share grows with the lookback."""
    plan, weights = DecodePlan("default", "fp32"), sum(p.numel() * 4 for p in model.parameters() if p.dim() == 2)
    for lookback in lookbacks:
        plain, eager, compiled, floor = (float("inf"),) * 4
        for _ in range(5):  # interleaved, the best of each: a loaded machine slows all four alike
            plain = min(plain, gemv_floor(model))
            seconds, step_weights, kv = step_bytes_floor(model, lookback, pred_len)
            floor = min(floor, seconds)
            eager = min(eager, engine_step(model, None, lookback, pred_len)[0])
            compiled = min(compiled, engine_step(model, plan, lookback, pred_len)[0])
        ok = "ok" if compiled <= 1.3 * plain else "MISS"
        print(
            f"engine decode step, one series, lookback {lookback}, {pred_len} bars ahead:\n"
            f"  eager {eager * 1e3:.2f} ms = {eager / plain:.2f}x the sweep\n"
            f"  compiled {compiled * 1e3:.2f} ms = {compiled / plain:.2f}x torch's matrix-vector sweep over the same "
            f"weights ({plain * 1e3:.2f} ms, {weights / 1e6:.1f} MB; target <= 1.3x)  {ok}\n"
            f"  the step's own bytes: its products' weights and the {kv / 1e6:.1f} MB of keys and values its query "
            f"sees mid-forecast ({(step_weights + kv) / weights:.2f}x the bytes), swept in {floor * 1e3:.2f} ms = "
            f"{floor / plain:.2f}x the weights' sweep; the compiled step is {compiled / floor:.2f}x that floor"
        )
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = compile_seconds(cache), compile_seconds(cache)
    print(f"compile time: first process {cold:.1f} s (fresh cache), second process {warm:.1f} s (the same cache)")


def inputs(series: int, lookback: int, pred_len: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, (series, lookback, 6)), axis=1))).astype(np.float32)
    x_stamp = np.zeros((series, lookback, 5), np.float32)
    y_stamp = np.zeros((series, pred_len, 5), np.float32)
    return x, x_stamp, y_stamp


def run_regime(
    predictor: KronosPredictor, lookback: int, pred_len: int, series: int, samples: int, repeat: int
) -> dict:
    x, xs, ys = inputs(series, lookback, pred_len)

    def call(use_cache: bool):
        sampling = Sampling(temperature=0.6, top_p=0.9, paths=samples, seed=0)
        return lambda: predictor.forecast(x, xs, ys, pred_len, sampling, use_cache=use_cache)

    call(True)()  # warm-up
    cached = timed(call(True), repeat)
    full = timed(call(False), 1)
    with FlopCounterMode(display=False) as counter:
        call(True)()
    flops = counter.get_total_flops()
    return {
        "regime": f"lookback {lookback}, predict {pred_len}, {series} series x {samples} samples",
        "cached_s": cached,
        "full_s": full,
        "cached_fps": series / cached,
        "full_fps": series / full,
        "speedup": full / cached,
        "gflops": flops / cached / 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller regimes for a smoke run")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--compiled", action="store_true", help="only the compiled decode step's figures")
    ap.add_argument("--compile-only", action="store_true", help=argparse.SUPPRESS)  # a child: its compile time
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.compile_only or args.compiled:
        model = Kronos.from_preset("small").eval()
        if args.compile_only:
            first = engine_step(model, DecodePlan("default", "fp32"), 96, 24)[1]
            print(f"{first - engine_step(model, None, 96, 24)[1]:.2f}")
        else:
            compiled_figures(model, (96, 384), 24)
        return
    predictor = KronosPredictor(
        Kronos.from_preset("small"), KronosTokenizer.from_preset("tokenizer-base"), device="cpu", max_context=512
    )
    regimes = [(384, 120, 1, 1, 15.0), (90, 10, 64, 5, 8.0)]
    if args.quick:
        regimes = [(96, 24, 1, 1, 15.0), (90, 10, 8, 5, 8.0)]
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; plain fp32 matmul 2048^3: {peak:.1f} GFLOP/s")
    print(f"{'regime':<52} {'cached/s':>9} {'full/s':>9} {'speedup':>8} {'target':>7} {'GFLOP/s':>8} {'of mm':>6}")
    for lookback, pred_len, series, samples, target in regimes:
        r = run_regime(predictor, lookback, pred_len, series, samples, repeat=2)
        ok = "ok" if r["speedup"] >= target else "MISS"
        print(
            f"{r['regime']:<52} {r['cached_fps']:>9.3f} {r['full_fps']:>9.3f} {r['speedup']:>7.1f}x "
            f"{target:>5.0f}x {r['gflops']:>8.1f} {r['gflops'] / peak:>5.0%}  {ok}"
        )
    print(
        "forecasts/s count series forecast per second (each with all its sample paths); 'of mm' is the cached "
        "engine's achieved GFLOP/s as a share of the plain matmul (target >= 60% in the batch regime)."
    )
    lookback, pred_len = regimes[0][:2]
    bandwidth = copy_bandwidth()
    weights = sum(p.numel() * p.element_size() for p in predictor.model.parameters())
    read = weights / bandwidth
    step = decode_step(predictor, lookback, pred_len)
    plain = gemv_floor(predictor.model)
    split = gemv_floor(predictor.model, tiled=True)
    print(
        f"one series, lookback {lookback}: decode step {step * 1e3:.2f} ms; predictor weights {weights / 1e6:.1f} MB "
        f"read once at the copy_ bandwidth of {bandwidth / 1e9:.1f} GB/s: {read * 1e3:.2f} ms; step = "
        f"{step / read:.2f}x the read time (target <= 1.5x)"
    )
    print(
        f"floor set by torch's kernels: a matrix-vector product with every weight matrix (no attention, no "
        f"sampling): one F.linear each {plain * 1e3:.2f} ms = {plain / read:.2f}x; in the decode step's "
        f"batch-invariant layout (tiles of 16 rows) {split * 1e3:.2f} ms = {split / read:.2f}x"
    )
    compiled_figures(predictor.model, (96, lookback), 24)


if __name__ == "__main__":
    main()
