"""`kronos prep` from CSV (the files imported as a Qlib provider on the XSHG calendar, then windows) against
pyarrow's own multi-threaded read of the same files (`pyarrow.csv.read_csv` of each file, its types inferred:
the parse alone, nothing checked or written), measured in the same run, alternately, best of `--repeat`; also
the same read with the files spread over a thread pool. Per-symbol files of 5-minute A-share bars, a year of
XSHG sessions (lunch break included). Then: importing the unchanged files again (a no-op), and importing them
after a week of bars was appended to every file (only the new bars are read). Peak memory: the high-water
resident set (VmHWM) of a fresh process, pyarrow's and numpy's buffers alike, for two pool sizes at the same
chunk size, and for pyarrow's read alone.

    python benchmarks/bench_prep_csv.py [--symbols 500] [--repeat 2] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
APPENDED_FROM = b"\n2024-12-24"  # the last week of the year is appended to files imported without it


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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (every thread) and the result of fn()."""
    t, c = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - t, _cpu() - c, out


def pyarrow_read(files: list[Path]) -> None:
    for f in files:
        pacsv.read_csv(f)


def pyarrow_pool(files: list[Path]) -> None:
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(pacsv.read_csv, files))


def kronos_prep(files: Path, out: Path, *extra: str) -> dict:
    return prepare(config.load(None, [*OVERRIDES, f"data.csv.path={files}", f"data.dataset_path={out}", *extra]))


PEAK = """
import resource, sys, time
from pathlib import Path
t = time.perf_counter()
if sys.argv[1] == "pyarrow":
    import pyarrow.csv as pacsv
    for f in sorted(Path(sys.argv[2]).glob("*.csv")):
        pacsv.read_csv(f)
else:
    from kronos_cli import config
    from kronos_cli.data.prep import prepare
    prepare(config.load(None, sys.argv[2:]))
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]  # this program's peak
print(time.perf_counter() - t, int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak(*args: str) -> tuple[float, float]:
    """(seconds, peak resident MB) of a fresh process reading the files (pyarrow) or preparing them."""
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, check=True)
    seconds, mb = proc.stdout.split()
    return float(seconds), float(mb)


def split_off_last_week(files: Path, first: Path) -> dict[Path, bytes]:
    """Copies of the files without their last week's bars in `first`; returns the bytes to append to each."""
    first.mkdir()
    rest = {}
    for f in sorted(files.iterdir()):
        data = f.read_bytes()
        cut = data.index(APPENDED_FROM) + 1
        (first / f.name).write_bytes(data[:cut])
        rest[first / f.name] = data[cut:]
    return rest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the files and datasets (default: the temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        bars = write_files(root / "files", args.symbols)
        files = sorted((root / "files").iterdir())
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"{args.symbols} symbols x {bars:,} bars of 5 minutes ({size:.0f} MB of CSV) in {tmp}")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other jobs share the machine)")
        runs: dict[str, list[tuple[float, float]]] = {"read": [], "pool": [], "prep": []}
        manifest = {}
        for _ in range(args.repeat):  # alternately, so that a busy moment of the machine weighs on both
            shutil.rmtree(root / "ds", ignore_errors=True)
            runs["read"].append(timed(lambda: pyarrow_read(files))[:2])
            runs["pool"].append(timed(lambda: pyarrow_pool(files))[:2])
            wall, cpu, manifest = timed(lambda: kronos_prep(root / "files", root / "ds"))
            runs["prep"].append((wall, cpu))
        best = {k: min(v) for k, v in runs.items()}
        windows = sum(s["windows"] for s in manifest["splits"].values())
        for key, label in (
            ("read", "pyarrow read_csv of each file (multi-threaded)"),
            ("pool", "pyarrow read_csv, files over a thread pool"),
            ("prep", f"kronos prep (Qlib provider + {windows:,} windows)"),
        ):
            every = ", ".join(f"{w:.2f}" for w, _ in runs[key])
            print(f"{label:<52} {best[key][0]:6.2f} s wall ({every}), {best[key][1]:6.2f} s CPU")
        print(f"prep / pyarrow read: {best['prep'][0] / best['read'][0]:.2f}x (target <= 2x)")
        print(f"prep / pyarrow read over a thread pool: {best['prep'][0] / best['pool'][0]:.2f}x")
        noop, _, _ = timed(lambda: kronos_prep(root / "files", root / "ds"))
        print(f"the same files again (no-op): {noop:.2f} s")
        rest = split_off_last_week(root / "files", root / "first")
        kronos_prep(root / "first", root / "grown")
        for f, data in rest.items():
            with open(f, "ab") as out:
                out.write(data)
        wall, _, grown = timed(lambda: kronos_prep(root / "first", root / "grown"))
        read = grown["calendar"]["imported"]["bars_read"]
        print(f"a week appended to every file: {wall:.2f} s ({read:,} new bars read of {grown['rows']:,} rows)")
        small = max(20, args.symbols // 5)
        few = root / "few"
        few.mkdir()
        for f in files[:small]:
            shutil.copy(f, few / f.name)
        base = [*OVERRIDES, "data.chunk_size=20"]
        for label, path in ((f"{small} symbols", few), (f"{args.symbols} symbols", root / "files")):
            shutil.rmtree(root / "pk", ignore_errors=True)
            seconds, mb = peak("prep", *base, f"data.csv.path={path}", f"data.dataset_path={root / 'pk'}")
            _, read_mb = peak("pyarrow", str(path))
            print(f"peak memory, {label}: prep {mb:.0f} MB ({seconds:.2f} s), pyarrow's read alone {read_mb:.0f} MB")


if __name__ == "__main__":
    main()
