"""Data path speed and memory: the window Dataset against a pandas iloc-per-window baseline, prep time, and
prep's peak memory as the chunk size and the pool grow.

Everything runs on the synthetic Qlib market through real pyqlib. Ratios are against baselines measured in
the same run.

    python benchmarks/bench_data.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic import MarketSpec, write_market

FEATS = ["open", "high", "low", "close", "vol", "amt"]
STAMPS = ["minute", "hour", "weekday", "day", "month"]


def pandas_baseline(ds: WindowDataset, order: np.ndarray) -> float:
    """The reference's way: one DataFrame per symbol, `iloc` a window, select columns, normalise."""
    a = ds.arrays
    frames = {}
    # Rebuild per-symbol frames (features + stamps) from the stored rows.
    bounds = np.cumsum([0] + [s["rows"] for s in a.manifest["symbols"]])
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        df = pd.DataFrame(np.asarray(a.features[lo:hi]), columns=FEATS)
        df[STAMPS] = np.asarray(a.stamps[lo:hi])
        frames[i] = (lo, df)
    t = time.perf_counter()
    for i in order:
        start, sym = ds.index[i]
        lo, df = frames[int(sym)]
        win = df.iloc[start - lo : start - lo + ds.window]
        x = win[FEATS].values.astype(np.float32)
        _ = win[STAMPS].values  # the reference reads the stamps too
        mean, std = x[: ds.lookback].mean(axis=0), x[: ds.lookback].std(axis=0)
        x = np.clip((x - mean) / (std + 1e-5), -ds.clip, ds.clip)
    return len(order) / (time.perf_counter() - t)


def dataset_rate(ds: WindowDataset, order: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(order), batch):
        ds.__getitems__(order[i : i + batch])
    return len(order) / (time.perf_counter() - t)


def loader_rate(ds: WindowDataset, samples: int, batch: int, workers: int) -> float:
    from torch.utils.data import DataLoader

    sampler = EpochSampler(len(ds), samples=samples, seed=0)
    loader = DataLoader(
        ds, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate, persistent_workers=False
    )
    n = 0
    t = time.perf_counter()
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - t)


PEAK_SCRIPT = """
import json, sys, tracemalloc
from kronos_cli import config
from kronos_cli.data.prep import prepare
from kronos_cli.data.qlib_source import init_qlib
cfg = config.load(None, json.loads(sys.argv[1]))
init_qlib(cfg.data.provider_uri, cfg.data.region)  # imports and qlib set-up are not prep's data
tracemalloc.start()
prepare(cfg)
print(tracemalloc.get_traced_memory()[1] / 2**20)
"""


def prep_peak_mb(market: Path, out: Path, chunk: int) -> float:
    overrides = [
        f"data.provider_uri={market}",
        f"data.dataset_path={out}",
        f"data.chunk_size={chunk}",
        "data.instrument=all",
        *SPLITS,
    ]
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, json.dumps(overrides)], capture_output=True, text=True, check=True
    )
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        cfg = config.load(None, [f"data.provider_uri={market}", f"data.dataset_path={tmp / 'ds'}", *SPLITS])
        t = time.perf_counter()
        manifest = prepare(cfg)
        prep_s = time.perf_counter() - t
        print(
            f"kronos prep, default synthetic market ({len(manifest['symbols'])} csi300 symbols, "
            f"{manifest['rows']:,} rows): {prep_s:.1f} s (target < 20 s)"
        )

        ds = WindowDataset(tmp / "ds", "train")
        order = np.random.default_rng(0).permutation(len(ds))[:5000]
        base = pandas_baseline(ds, order[:2000])
        alone_1 = dataset_rate(ds, order, batch=1)
        alone_b = dataset_rate(ds, order, batch=50)
        loader_rate(ds, samples=2000, batch=50, workers=2)  # warm the page cache
        loader = loader_rate(ds, samples=100000, batch=50, workers=2)
        print(f"\n{'windows/s':<44} {'rate':>10} {'vs pandas':>10}")
        print(f"{'pandas iloc per window (baseline)':<44} {base:>10,.0f} {1:>9.1f}x")
        print(f"{'WindowDataset[i], one window at a time':<44} {alone_1:>10,.0f} {alone_1 / base:>9.1f}x")
        print(f"{'WindowDataset, batches of 50 (__getitems__)':<44} {alone_b:>10,.0f} {alone_b / base:>9.1f}x")
        print(f"{'DataLoader, 2 workers, batch 50':<44} {loader:>10,.0f} {loader / base:>9.1f}x")
        print("target: at least 50x for the training data path (batched reads, as the DataLoader uses them)")

        big = write_market(tmp / "big", MarketSpec(stocks=400))
        small = write_market(tmp / "small", MarketSpec(stocks=100))
        rows = [
            ("100 stocks, chunk 20", small, 20),
            ("400 stocks, chunk 20", big, 20),
            ("400 stocks, chunk 100", big, 100),
            ("400 stocks, chunk 400", big, 400),
        ]
        print(f"\n{'prep peak traced memory':<28} {'MB':>8}   (numpy/pandas allocations during prepare())")
        base_mb = None
        for label, mkt, chunk in rows:
            mb = prep_peak_mb(mkt, tmp / f"peak-{chunk}", chunk)
            base_mb = base_mb or mb
            print(f"{label:<28} {mb:>8.0f}  ({mb / base_mb:.2f}x the first row)")


if __name__ == "__main__":
    main()
