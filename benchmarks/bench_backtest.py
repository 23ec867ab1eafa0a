"""`kronos backtest` end to end on the default synthetic market with tiny random models (CPU, 2 cores).

Target: under 2 minutes. Then the same backtest with capacity levels (1e6 .. 1e10) and cost multipliers (0, 1,
2, 4x), its forecasts from the cache: each extra level's time as a share of the first full backtest's (target:
under 15%), and the two tables. Also prints forecast windows/s of the cached engine against the reference's
full-recompute path on the same test windows (first 256), measured in the same run.

With `--nproc N`: forecasting at scale. The same test windows (`--windows`, evenly spread) are forecast by one
process with one thread, then by N gloo workers through torch elastic with one thread each (as `kronos
backtest --nproc N` runs them), each into a fresh cache; prints windows/s of both, forecasting alone (the
slowest worker's time) and end to end (start-up of the workers included), and their ratio, the scaling
efficiency (target on this 2-core machine: at least 1.7x with 2 workers). The forecasts are compared too: they
must be equal bit for bit. Then projects the time of a CSI300 year (87,000 windows) at the measured speed.

    python benchmarks/bench_backtest.py
    python benchmarks/bench_backtest.py --nproc 2                   # Kronos-small-sized, 200 windows
    python benchmarks/bench_backtest.py --nproc 2 --preset tiny --windows 3000
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.backtest.run import run_backtest
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic import write_market
from kronos_cli.forecast import KronosPredictor
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.sampling import Sampling

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
PAIRS = {"tiny": ("tokenizer-tiny", "tiny"), "small": ("tokenizer-base", "small")}


def scaling(nproc: int, preset: str, windows: int) -> None:
    import os

    import torch

    from kronos_cli.records.runs import load_pair
    from kronos_cli.runtime.distributed import Launch
    from kronos_cli.runtime.sharding import forecast_everywhere, window_cache
    from kronos_cli.runtime.split_forecasts import open_dataset, sampling_of, split_windows

    os.environ["OMP_NUM_THREADS"] = "1"  # the workers' threads (inherited); this process's below
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        base = [f"data.provider_uri={market}", f"data.dataset_path={tmp / 'ds'}", *SPLITS]
        torch.manual_seed(0)
        tok_preset, model_preset = PAIRS[preset]
        KronosTokenizer.from_preset(tok_preset).save_pretrained(tmp / "tok")
        Kronos.from_preset(model_preset).save_pretrained(tmp / "model")
        prepare(config.load(None, base))
        pair = load_pair(None, str(tmp / "tok"), str(tmp / "model"))
        figures, paths, startup = {}, {}, 0.0
        for workers in (0, 1, nproc):  # 0: one process with every core's thread (the default without --nproc)
            torch.set_num_threads((os.cpu_count() or 1) if workers == 0 else 1)
            cfg = config.load(None, [*base, f"output_dir={tmp / f'out{workers}'}", "backtest.batch_size=256"])
            arrays = open_dataset(cfg)
            every = split_windows(cfg, arrays, "test")
            origins = every.subset(np.unique(np.linspace(0, len(every) - 1, windows).astype(np.int64)))
            forecaster, sampling = pair.forecaster(pair.resolve(cfg, device="cpu")), sampling_of(cfg)
            t = time.perf_counter()
            if workers <= 1:
                from kronos_cli.forecast.windows import forecast_windows

                cache = window_cache(cfg, arrays, pair, forecaster, sampling)
                got = forecast_windows(forecaster, arrays, origins, sampling, cfg.backtest.batch_size, cache)
                forecasting = time.perf_counter() - t
            else:
                stats = forecast_everywhere(cfg, arrays, origins, pair, forecaster, sampling, Launch(nproc=workers))
                forecasting = max(r["seconds"] for r in stats.values())
                startup = max(r["startup"] for r in stats.values())
                cache = window_cache(cfg, arrays, pair, forecaster, sampling)
                got = forecast_windows(forecaster, arrays, origins, sampling, cfg.backtest.batch_size, cache)
            figures[workers] = (len(origins) / forecasting, len(origins) / (time.perf_counter() - t))
            paths[workers] = got.paths
        same = np.array_equal(paths[1], paths[nproc])
        moved = int((np.abs(paths[0] - paths[1]).reshape(len(paths[0]), -1).max(axis=1) > 0).sum())
        (one, one_e2e), (many, many_e2e), (threads, _) = figures[1], figures[nproc], figures[0]
        print(
            f"{preset} preset, {len(origins)} test windows x {sampling.paths} paths, one thread per process: "
            f"1 process {one:.2f} windows/s; {nproc} workers {many:.2f} windows/s forecasting = {many / one:.2f}x "
            f"(target >= 1.7x on 2 cores), end to end with start-up {one_e2e:.2f} vs {many_e2e:.2f} windows/s = "
            f"{many_e2e / one_e2e:.2f}x; worker start-up (spawn to first forward, the slowest) {startup:.1f} s "
            f"(target < 3 s); forecasts of 1 process and {nproc} workers equal bit for bit: {same}; for "
            f"comparison, 1 process with {os.cpu_count()} threads: {threads:.2f} windows/s (its float rounding "
            f"differs from one thread's in {moved} of {len(paths[0])} windows)"
        )
        print(
            f"projected CSI300 year (87,000 windows x {sampling.paths} paths) with this model: "
            f"{87_000 / one / 3600:.1f} h in 1 process of 1 thread, {87_000 / threads / 3600:.1f} h in 1 process of "
            f"{os.cpu_count()} threads, {87_000 / many / 3600:.1f} h with {nproc} workers"
        )


def levels(cfg, tmp: Path, first: float) -> None:
    """Capacity and cost levels of the same backtest (forecasts from the cache the first run filled): each level's
    time over the first full backtest's (target: under 15%), and the tables."""
    from kronos_cli.core.tables import render_text

    base = cfg.backtest.account
    capital = ",".join(f"{base * 10.0**k:g}" for k in range(-2, 3))
    extra = [f"backtest.capacity=[{capital}]", "backtest.cost_multipliers=[0,1,2,4]"]
    again = _demo(tmp, *extra)
    t = time.perf_counter()
    result = run_backtest(again, str(tmp / "tok"), str(tmp / "model"), "cpu")
    total = time.perf_counter() - t
    s = result.sensitivity
    reruns = [x for x in s.capacity + s.costs if x.seconds > 0]  # the backtest's own level is not rerun
    for kind, rows in (("capital", s.capacity), ("costs x", s.costs)):
        for x in rows:
            own = " (the backtest's own run, reused)" if x.seconds == 0 else ""
            print(f"  {kind} {x.value:g}: {x.seconds:.2f} s = {x.seconds / first:.1%} of the first backtest{own}")
    worst = max(x.seconds for x in reruns)
    print(
        f"{len(reruns)} extra levels, Qlib portfolio simulation only ({result.reused_forecasts:,} of "
        f"{result.signals:,} forecasts from the cache): at most {worst:.2f} s each = {worst / first:.1%} of the first "
        f"full backtest's {first:.1f} s (target < 15%); the whole rerun with its levels {total:.1f} s"
    )
    print(render_text(s.tables()))


def _demo(tmp: Path, *extra: str):
    """configs/demo.yaml (the demo's market, splits and backtest) with its paths under `tmp`."""
    paths = [f"data.provider_uri={tmp / 'market'}", f"data.dataset_path={tmp / 'ds'}", f"output_dir={tmp / 'out'}"]
    return config.load(DEMO, [*paths, *extra])


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=None, help="Measure scaling with this many CPU workers.")
    ap.add_argument("--preset", choices=sorted(PAIRS), default="small", help="Model size in --nproc mode.")
    ap.add_argument("--windows", type=int, default=200, help="Test windows to forecast in --nproc mode.")
    args = ap.parse_args()
    if args.nproc:
        scaling(args.nproc, args.preset, args.windows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_market(tmp / "market")
        cfg = _demo(tmp)
        prepare(cfg)
        tok, model = KronosTokenizer.from_preset("tokenizer-tiny"), Kronos.from_preset("tiny")
        tok.save_pretrained(tmp / "tok")
        model.save_pretrained(tmp / "model")
        t = time.perf_counter()
        result = run_backtest(cfg, str(tmp / "tok"), str(tmp / "model"), "cpu")
        elapsed = time.perf_counter() - t
        print(
            f"kronos backtest, the demo's market and config (configs/demo.yaml), tiny untrained preset, "
            f"{result.signals:,} test signals x "
            f"{cfg.backtest.sample_count} samples, 4 Qlib backtests: {elapsed:.1f} s "
            f"({elapsed / 120:.2f} of the 120 s target)"
        )
        levels(cfg, tmp, elapsed)

        ds = WindowDataset(cfg.data.dataset_path, "test")
        x, stamp = ds.__getitems__(np.arange(256))
        look, pred = ds.lookback, cfg.data.predict_window
        predictor = KronosPredictor(model, tok, device="cpu")
        rates = {}
        for use_cache in (True, False):
            t = time.perf_counter()
            predictor.forecast_normalised(
                x[:, :look],
                stamp[:, :look],
                stamp[:, look : look + pred],
                pred,
                Sampling(temperature=0.6, top_p=0.9, paths=5, seed=0),
                use_cache=use_cache,
            )
            rates[use_cache] = 256 / (time.perf_counter() - t)
        print(
            f"tiny preset, 256 windows x 5 samples: cached {rates[True]:.0f} windows/s, full recompute "
            f"{rates[False]:.0f} windows/s, {rates[True] / rates[False]:.1f}x (Kronos-small-sized: see "
            f"bench_forecast.py)"
        )


if __name__ == "__main__":
    main()
