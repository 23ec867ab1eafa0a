"""report.html: what writing it costs against the run it reports on, and how large it gets for a CSI300-sized year.

Targets: writing the page costs under 10% of the demo's backtest and of its evaluation (each run's own elapsed_s
against the page rendered again from its result set, plotly.js compressed afresh, as the first page of a process
pays); the page stays under 5 MB for a year of a CSI300-sized market (300 symbols, 250 days, four signals, the
top 50 held; the demo's result files grown to that size, since only their row counts matter to the page).

    python benchmarks/bench_report.py [--demo DIR]   # DIR: a finished `kronos demo --out DIR` (else one is run)
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

from kronos_cli.backtest.page import write_report as backtest_page
from kronos_cli.evaluate.page import write_report as evaluate_page
from kronos_cli.records.store import runs as runs_under
from kronos_cli.records.summary import command_of
from kronos_cli.report.page import plotly_js_packed

SYMBOLS, DAYS, HELD, SIGNALS = 300, 250, 50, ("last", "mean", "max", "min")


def _timed(write, run: Path, scratch: Path) -> tuple[float, float, int]:
    """(page seconds, run seconds, page bytes) for the run in `run`, rendered in a copy."""
    copy = scratch / run.name
    shutil.copytree(run, copy, dirs_exist_ok=True)
    plotly_js_packed.cache_clear()
    t0 = time.perf_counter()
    page = write(copy)
    took = time.perf_counter() - t0
    return took, _elapsed(copy), page.stat().st_size


def _elapsed(run: Path) -> float:
    for name in ("backtest_results.json", "evaluation.json"):
        if (run / name).is_file():
            return float(json.loads((run / name).read_text())["elapsed_s"])
    raise SystemExit(f"{run} holds no results")


def _csi300_year(run: Path, into: Path) -> Path:
    """The demo's backtest result set grown to SYMBOLS names x DAYS days, four signals, HELD names held a day."""
    shutil.copytree(run, into, dirs_exist_ok=True)
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2024-01-02", periods=DAYS).strftime("%Y-%m-%d")
    names = [f"SH{600000 + i}" for i in range(SYMBOLS)]
    grid = pd.MultiIndex.from_product([days, names], names=["datetime", "instrument"]).to_frame(index=False)
    for s in SIGNALS:
        grid[s] = rng.normal(size=len(grid)).astype("float32")
    grid["label"] = rng.normal(0, 0.03, size=len(grid))
    grid.to_csv(into / "signals.csv", index=False)
    held = grid.groupby("datetime").head(HELD)
    positions = pd.concat([held.assign(signal=s) for s in SIGNALS])
    positions = positions.assign(amount=1000.0, weight=1.0 / HELD)[
        ["datetime", "instrument", "amount", "weight", "signal"]
    ]
    positions.to_csv(into / "positions.csv", index=False)
    d = json.loads((into / "backtest_results.json").read_text())
    d["daily_returns"] = {
        s: {
            "date": list(days),
            **{c: rng.normal(0, 0.01, DAYS).round(8).tolist() for c in ("return", "cost", "bench")},
            "turnover": rng.uniform(0, 0.3, DAYS).round(8).tolist(),
        }
        for s in d["daily_returns"]
    }
    (into / "backtest_results.json").write_text(json.dumps(d))
    (into / "report.html").unlink(missing_ok=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", type=Path, help="a finished `kronos demo --out DIR`")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo = args.demo
        if demo is None:
            demo = tmp / "demo"
            subprocess.run([sys.executable, "-m", "kronos_cli", "demo", "--out", str(demo)], check=True)
        kept = runs_under(demo / "outputs" / "runs")
        runs = {c: next(p for p in kept if command_of(p) == c) for c in ("backtest", "evaluate")}  # the demo's own
        writers = {"backtest": backtest_page, "evaluate": evaluate_page}
        for command, run in runs.items():
            took, elapsed, size = _timed(writers[command], run, tmp / "pages")
            share = f"{100 * took / elapsed:.1f}% (target < 10%)"
            print(f"{command}: report.html {took:.2f} s of a {elapsed:.1f} s run = {share}; {size / 1e6:.2f} MB")
        year = _csi300_year(runs["backtest"], tmp / "csi300")
        plotly_js_packed.cache_clear()
        t0 = time.perf_counter()
        page = backtest_page(year)
        print(
            f"CSI300-sized year ({SYMBOLS} symbols x {DAYS} days, {len(SIGNALS)} signals, top {HELD} held): backtest "
            f"report.html {page.stat().st_size / 1e6:.2f} MB (target < 5 MB), written in "
            f"{time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
