"""`kronos walkforward` on the default synthetic market with tiny models (CPU): what the walk-forward itself costs
beside the folds' training and forecasting, and what `refit_every: 2` saves.

Targets: the walk-forward's own work (planning the folds, the stitched record's dataset, stitching, scoring, the
one backtest, the reports) under 5% of the folds' training and forecasting time; with `refit_every: 2`, at most 0.6x
the wall time of refitting every fold. Four quarterly folds over 2024, each training the predictor from scratch for
1,500 batches of 32 (about two passes over a fold's 23,600 to 30,000 training windows; the project's own defaults
train 30 epochs of 2,000 batches of 50), each forecasting its whole test quarter (about 2,400 windows, 4 paths)
with its model and with the base model. The two measured runs use separate directories, so nothing is shared
between them but their inputs: the market and a tokenizer.

The tokenizer is pretrained, as a released one is (Kronos-Tokenizer-base), and walkforward.stages is its default
`[predictor]`: a warm-up run of the first fold alone, in a directory of its own, trains it on bars before the span
and pays the imports and first calls that would otherwise fall on the first measured run only. With
`--train-tokenizer` both runs train a preset tokenizer in their first fold instead: a cost common to both that no
refit policy touches, as long as one predictor's training, which alone holds the ratio above
(tokenizer + 2 trainings) / (tokenizer + 4 trainings), about 0.59, before any forecast is counted.

    python benchmarks/bench_walkforward.py [--iters 1500] [--train-tokenizer]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.config import Config
from kronos_cli.data.synthetic import write_market
from kronos_cli.records.runs import walkforward_dir
from kronos_cli.walkforward.folds import Training, plan_models
from kronos_cli.walkforward.run import run_walkforward, walkforward_plan

FOLDS = ("prep_s", "train_s", "forecast_s")
OWN = ("plan_s", "span_prep_s", "score_s", "backtest_s", "report_s")
PRESET_TOKENIZER = "preset:tokenizer-tiny"


def _config(market: Path, root: Path, iters: int, tokenizer: str, *extra: str) -> Config:
    return config.load(
        None,
        [
            f"data.provider_uri={market}",
            f"data.dataset_path={root / 'ds'}",
            f"output_dir={root / 'out'}",
            *SPLITS,
            "data.lookback_window=60",
            "data.predict_window=5",
            "data.max_context=128",
            f"model.tokenizer={tokenizer}",
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


def _run(market: Path, root: Path, iters: int, tokenizer: str, *extra: str) -> tuple[float, dict, list[dict]]:
    cfg = _config(market, root, iters, tokenizer, *extra)
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_walkforward(cfg, Training("cpu"))
    return time.perf_counter() - t0, {**result.timings, "cpu_s": time.process_time() - c0}, result.folds


def _warm_up(market: Path, root: Path, iters: int) -> str:
    """The first fold alone, in `root`: the imports and first calls paid, and the tokenizer it trained (on the
    first fold's training range, before the span) returned for the measured runs to start from."""
    wall, _, _ = _run(market, root, iters, PRESET_TOKENIZER, "walkforward.end=2024-03-31")
    cfg = _config(market, root, iters, PRESET_TOKENIZER)
    tokenizer = plan_models(cfg, walkforward_plan(cfg), walkforward_dir(cfg))[0].tokenizer
    print(f"warm-up (fold 1 alone, pretrains the tokenizer): {wall:.1f} s")
    return tokenizer


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
    parser.add_argument("--iters", type=int, default=1500, help="training batches per fold")
    parser.add_argument("--train-tokenizer", action="store_true", help="a preset tokenizer trained in fold 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        tokenizer = _warm_up(market, tmp / "warm-up", args.iters)
        tokenizer = PRESET_TOKENIZER if args.train_tokenizer else tokenizer
        every, t, every_folds = _run(market, tmp / "every", args.iters, tokenizer)
        folds, own = sum(t.get(k, 0.0) for k in FOLDS), sum(t.get(k, 0.0) for k in OWN)
        train_forecast = t["train_s"] + t["forecast_s"]
        print(
            f"refit every fold: {every:.1f} s wall, {t['cpu_s']:.1f} s CPU; folds {folds:.1f} s (prep "
            f"{t['prep_s']:.1f}, train {t['train_s']:.1f}, forecast {t['forecast_s']:.1f}); "
            f"walk-forward's own {own:.1f} s " + ", ".join(f"{k[:-2]} {t.get(k, 0.0):.2f}" for k in OWN)
        )
        print(f"overhead ratio (own / folds' training and forecasting): {own / train_forecast:.3f} (target < 0.05)")
        print(f"  by fold, s: {_by_fold(every_folds)}")
        half, h, half_folds = _run(market, tmp / "half", args.iters, tokenizer, "walkforward.refit_every=2")
        print(
            f"refit_every 2: {half:.1f} s wall, {h['cpu_s']:.1f} s CPU; ratio to refitting every fold: wall "
            f"{half / every:.2f}, CPU {h['cpu_s'] / t['cpu_s']:.2f} (target <= 0.6)"
        )
        print(f"  by fold, s: {_by_fold(half_folds)}")
        # What refit_every 2 can save at most: the training of the folds it skips, measured in the first run; the
        # tokenizer (when trained, in the first fold), the refits and every fold's forecasts are common to both.
        skipped = sum(a["seconds"]["train"] for a, b in zip(every_folds, half_folds) if not b["refit"])
        print(
            f"  training ratio {h['train_s'] / t['train_s']:.2f}; the best refit_every 2 can do here, every fold's "
            f"forecasts kept: {(every - skipped) / every:.2f} of the wall time"
        )


if __name__ == "__main__":
    main()
