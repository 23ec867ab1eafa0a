"""`kronos prep` from CSV (the files imported as a Qlib provider on the XSHG calendar, then windows) against the
obvious pandas path the reference's CSV script takes: `read_csv` each file, parse the timestamps, `groupby`
symbol, `to_pickle` a frame per symbol. Both read the same per-symbol files of 5-minute A-share bars (a year of
XSHG sessions, lunch break included); the ratio is against the baseline measured in the same run. Prep's peak
traced memory is measured in a fresh process for two pool sizes at the same chunk size.

    python benchmarks/bench_prep_csv.py [--symbols 500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from kronos_cli import config
from kronos_cli.data.prep import prepare
from kronos_cli.market.sessions import parse_freq, session_grid

OVERRIDES = [
    "data.source=csv",
    "data.csv.calendar=XSHG",
    "data.freq=5min",
    "data.start_time=2024-01-01",
    "data.end_time=2024-12-31",
    "data.train_time_range=[2024-01-01,2024-09-30]",
    "data.val_time_range=[2024-10-08,2024-11-15]",
    "data.test_time_range=[2024-11-20,2024-12-31]",
    "data.lookback_window=96",
    "data.predict_window=12",
]


def write_files(out: Path, symbols: int) -> int:
    """Per-symbol CSV files of a year of 5-minute bars; returns the bars per file."""
    grid = session_grid("XSHG", parse_freq("5min")).bars(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-12-31 23:59"))
    stamps = pa.array(grid.strftime("%Y-%m-%d %H:%M:%S"))
    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    for i in range(symbols):
        close = 30 * np.exp(np.cumsum(rng.normal(0, 0.002, len(grid))))
        table = pa.table(
            {
                "timestamps": stamps,
                "open": np.round(close * (1 + rng.normal(0, 5e-4, len(grid))), 3),
                "high": np.round(close * 1.002, 3),
                "low": np.round(close * 0.998, 3),
                "close": np.round(close, 3),
                "volume": rng.integers(1_000, 100_000, len(grid)),
            }
        )
        pacsv.write_csv(table, out / f"SH{600000 + i}.csv", pacsv.WriteOptions(quoting_style="none"))
    return len(grid)


def pandas_baseline(files: Path, out: Path) -> float:
    t = time.perf_counter()
    frames = []
    for f in sorted(files.glob("*.csv")):
        df = pd.read_csv(f)
        df["timestamps"] = pd.to_datetime(df["timestamps"])
        df["symbol"] = f.stem
        frames.append(df)
    out.mkdir(parents=True)
    for symbol, g in pd.concat(frames).groupby("symbol"):
        g.to_pickle(out / f"{symbol}.pkl")
    return time.perf_counter() - t


def kronos_prep(files: Path, out: Path) -> tuple[float, dict]:
    cfg = config.load(None, [*OVERRIDES, f"data.csv.path={files}", f"data.dataset_path={out}"])
    t = time.perf_counter()
    manifest = prepare(cfg)
    return time.perf_counter() - t, manifest


PEAK = """
import sys, tracemalloc
from kronos_cli import config
from kronos_cli.data.prep import prepare
cfg = config.load(None, sys.argv[1:])
tracemalloc.start()
prepare(cfg)
print(tracemalloc.get_traced_memory()[1] / 2**20)
"""


def peak_mb(files: Path, out: Path, chunk: int) -> float:
    args = [*OVERRIDES, f"data.csv.path={files}", f"data.dataset_path={out}", f"data.chunk_size={chunk}"]
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bars = write_files(root / "files", args.symbols)
        size = sum(f.stat().st_size for f in (root / "files").iterdir()) / 2**20
        print(f"{args.symbols} symbols x {bars:,} bars of 5 minutes ({size:.0f} MB of CSV)")
        base = pandas_baseline(root / "files", root / "pickles")
        ours, manifest = kronos_prep(root / "files", root / "ds")
        shutil.rmtree(root / "pickles")
        windows = sum(s["windows"] for s in manifest["splits"].values())
        print(f"pandas read_csv + groupby + to_pickle (baseline): {base:.2f} s")
        print(f"kronos prep (Qlib provider + {windows:,} windows):  {ours:.2f} s")
        print(f"speedup: {base / ours:.2f}x (target >= 5x)")
        small = max(20, args.symbols // 5)
        shutil.rmtree(root / "ds")
        few = root / "few"
        few.mkdir()
        for f in sorted((root / "files").iterdir())[:small]:
            f.rename(few / f.name)
        peaks = {
            f"{small} symbols": peak_mb(few, root / "ds_few", 20),
            f"{args.symbols - small} symbols": peak_mb(root / "files", root / "ds_all", 20),
        }
        print("prep's peak traced memory at chunk 20: " + json.dumps({k: round(v, 1) for k, v in peaks.items()}))


if __name__ == "__main__":
    main()
