"""`kronos walkforward` on the default synthetic market with tiny models (CPU): what the walk-forward itself costs
beside the folds' training and forecasting, and what `refit_every: 2` saves.

Targets: the walk-forward's own work (planning the folds, the stitched record's dataset, stitching, scoring, the
one backtest, the reports) under 5% of the folds' training and forecasting time; with `refit_every: 2`, at most 0.6x
the wall time of refitting every fold. Four quarterly folds over 2024, each training the predictor from scratch
(the tokenizer once, in the first fold); the two runs use separate directories, so nothing is shared between them.

    python benchmarks/bench_walkforward.py [--iters 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.data.synthetic import write_market
from kronos_cli.walkforward.folds import Training
from kronos_cli.walkforward.run import run_walkforward

FOLDS = ("prep_s", "train_s", "forecast_s")
OWN = ("plan_s", "span_prep_s", "score_s", "backtest_s", "report_s")


def _run(market: Path, root: Path, iters: int, *extra: str) -> tuple[float, dict, list[dict]]:
    cfg = config.load(
        None,
        [
            f"data.provider_uri={market}",
            f"data.dataset_path={root / 'ds'}",
            f"output_dir={root / 'out'}",
            *SPLITS,
            "data.lookback_window=60",
            "data.predict_window=5",
            "data.max_context=128",
            "model.tokenizer=preset:tokenizer-tiny",
            "model.predictor=preset:tiny",
            "walkforward.start=2024-01-01",
            "walkforward.test_period=3M",
            "training.epochs=1",
            f"training.n_train_iter={iters}",
            "training.n_val_iter=5",
            "training.batch_size=32",
            "backtest.sample_count=4",
            "backtest.topk=10",
            "backtest.n_drop=2",
            *extra,
        ],
    )
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_walkforward(cfg, Training("cpu"))
    return time.perf_counter() - t0, {**result.timings, "cpu_s": time.process_time() - c0}, result.folds


def _by_fold(folds: list[dict]) -> str:
    """Where each fold's time went: a fold that does not refit should show no training, only its forecasts."""
    return "; ".join(
        f"fold {f['fold']} ({'refit' if f['refit'] else 'reuses fold ' + str(f['model_of_fold'])}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in f["seconds"].items())
        + ")"
        for f in folds
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=100, help="training batches per fold")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        every, t, every_folds = _run(market, tmp / "every", args.iters)
        folds, own = sum(t.get(k, 0.0) for k in FOLDS), sum(t.get(k, 0.0) for k in OWN)
        train_forecast = t["train_s"] + t["forecast_s"]
        print(
            f"refit every fold: {every:.1f} s wall, {t['cpu_s']:.1f} s CPU; folds {folds:.1f} s (prep "
            f"{t['prep_s']:.1f}, train {t['train_s']:.1f}, forecast {t['forecast_s']:.1f}); "
            f"walk-forward's own {own:.1f} s " + ", ".join(f"{k[:-2]} {t.get(k, 0.0):.2f}" for k in OWN)
        )
        print(f"overhead ratio (own / folds' training and forecasting): {own / train_forecast:.3f} (target < 0.05)")
        print(f"  by fold, s: {_by_fold(every_folds)}")
        half, h, half_folds = _run(market, tmp / "half", args.iters, "walkforward.refit_every=2")
        print(
            f"refit_every 2: {half:.1f} s wall, {h['cpu_s']:.1f} s CPU; ratio to refitting every fold: wall "
            f"{half / every:.2f}, CPU {h['cpu_s'] / t['cpu_s']:.2f} (target <= 0.6)"
        )
        print(f"  by fold, s: {_by_fold(half_folds)}")
        # What refit_every 2 can save at most: the training of the folds it skips, measured in the first run; the
        # tokenizer (first fold), the refits and every fold's forecasts are common to both runs.
        skipped = sum(a["seconds"]["train"] for a, b in zip(every_folds, half_folds) if not b["refit"])
        print(
            f"  training ratio {h['train_s'] / t['train_s']:.2f}; the best refit_every 2 can do here, every fold's "
            f"forecasts kept: {(every - skipped) / every:.2f} of the wall time"
        )


if __name__ == "__main__":
    main()
