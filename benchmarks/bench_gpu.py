"""Decoding speed on a CUDA GPU: tokens/s of Kronos-small and -base, and a CSI300-sized year of backtest forecasts.

Random weights in the released layout (the presets' shapes; speed does not depend on the values). For each preset
and batch (1 and 64 series), tokens/s of the eager fp32 step and of the step `decode_plan` picks on CUDA (bf16,
torch.compile with CUDA graphs, `mode="reduce-overhead"`; its compile time printed apart, the cache under
$KRONOS_COMPILE_CACHE or ~/.cache/kronos/compile). Then the time of a CSI300 year: 300 symbols x 240 days of
windows (lookback 90, predict 10, 5 paths; the demo config's shape) with Kronos-small, tokenizer encode and decode
included, measured on a few batches and projected. Without a GPU it says so and exits 0.

    python benchmarks/bench_gpu.py
    python benchmarks/bench_gpu.py --presets small --batches 1     # a smoke run
"""

from __future__ import annotations

import argparse
import time

import torch

from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.compiled import decode_plan
from kronos_cli.model.engine import decode_windows, generate
from kronos_cli.model.sampling import Sampling

SAMPLING = Sampling(temperature=0.6, top_p=0.9)
CSI300_WINDOWS = 300 * 240
LOOKBACK, PREDICT, PATHS = 90, 10, 5


def _sync_time(fn) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def _ids(model: Kronos, batch: int, lookback: int, predict: int, device: torch.device):
    g = torch.Generator(device="cpu").manual_seed(0)
    s1, s2 = (torch.randint(0, 2**model.config.s1_bits, (batch, lookback), generator=g) for _ in range(2))
    stamp = torch.zeros(batch, lookback + predict, 5)
    return s1.to(device), s2.to(device), stamp.to(device)


def tokens_per_second(model: Kronos, batch: int, compiled: bool, steps: int = 64) -> tuple[float, float]:
    """Decoded tokens/s of `batch` series (one path each) after a 128-bar history, and the first call's seconds
    (the compile, when `compiled`)."""
    dev = next(model.parameters()).device
    s1, s2, stamp = _ids(model, batch, 128, steps, dev)
    plan = decode_plan("cuda", True, 10**9, setting="on" if compiled else "off")
    low = compiled and plan.dtype == "bf16"  # the eager baseline stays fp32

    def run(n: int):
        def go():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=low):
                generate(model, s1, s2, stamp[:, : 128 + n], n, 512, sampling=SAMPLING, plan=plan)

        return go

    first = _sync_time(run(steps))
    full = min(_sync_time(run(steps)) for _ in range(3))
    one = min(_sync_time(run(1)) for _ in range(3))
    return batch * (steps - 1) / (full - one), first


def backtest_year(model: Kronos, tokenizer: KronosTokenizer, batch: int = 256, batches: int = 4) -> float:
    """Projected seconds for CSI300_WINDOWS windows: tokenizer encode, generate, decode, on `batches` batches."""
    dev = next(model.parameters()).device
    x = torch.randn(batch, LOOKBACK, 6, device=dev)
    stamp = torch.zeros(batch, LOOKBACK + PREDICT, 5, device=dev)
    plan = decode_plan("cuda", True, CSI300_WINDOWS // batch * PREDICT)

    def one_batch():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=plan.dtype == "bf16"):
            s1, s2 = tokenizer.encode(x, half=True)
            o1, o2 = generate(model, s1, s2, stamp, PREDICT, 512, PATHS, SAMPLING, plan=plan)
            decode_windows(tokenizer, o1, o2, LOOKBACK, 512)

    _sync_time(one_batch)  # warm-up (and the compile)
    seconds = min(_sync_time(lambda: [one_batch() for _ in range(batches)]) for _ in range(2))
    return seconds / (batch * batches) * CSI300_WINDOWS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="small,base", help="comma-separated presets (small, base)")
    ap.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA GPU here (torch sees none); nothing to measure")
        return
    dev = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    print(
        f"{'preset':<8} {'batch':>5} {'eager fp32 tok/s':>17} {'compiled tok/s':>15} {'speedup':>8} {'compile s':>10}"
    )
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = Kronos.from_preset(preset).to(dev).eval()
        for batch in map(int, args.batches.split(",")):
            eager, _ = tokens_per_second(model, batch, compiled=False)
            fast, first = tokens_per_second(model, batch, compiled=True)
            print(f"{preset:<8} {batch:>5} {eager:>17,.0f} {fast:>15,.0f} {fast / eager:>7.1f}x {first:>10.1f}")
    torch.manual_seed(0)
    model = Kronos.from_preset("small").to(dev).eval()
    tokenizer = KronosTokenizer.from_preset("tokenizer-base").to(dev).eval()
    year = backtest_year(model, tokenizer)
    print(
        f"CSI300 year ({CSI300_WINDOWS:,} windows, lookback {LOOKBACK}, predict {PREDICT}, {PATHS} paths, "
        f"Kronos-small, batches of 256, the plan's step): {year:.0f} s = {year / 60:.1f} min projected"
    )


if __name__ == "__main__":
    main()
