"""`kronos walkforward`: plan the folds, run each (prep, training or an earlier fold's model, forecasts), stitch
their test periods into one record, score it, backtest it once over the whole span and write one result set.

A rerun whose inputs (every fold's data and training hashes, the scoring settings) match the saved result's does
nothing; otherwise each fold skips what its stamps say is done (`folds.py`).
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.backtest import qlib_backtest
from kronos_cli.backtest.annualization import bars_a_year
from kronos_cli.backtest.markets import benchmark_for, market_rules
from kronos_cli.backtest.portfolios import trade
from kronos_cli.config import Config
from kronos_cli.core.io import whole_result_set, write_json, write_text
from kronos_cli.data.prep import dataset_hash
from kronos_cli.evaluate.comparisons import compare
from kronos_cli.evaluate.models import initial_pair
from kronos_cli.evaluate.report import EvaluationResult
from kronos_cli.evaluate.run import conventions as evaluate_conventions  # the leaderboard's own wording
from kronos_cli.evaluate.sample import split_sample
from kronos_cli.forecast.device import resolve_device
from kronos_cli.market.sessions import parse_freq
from kronos_cli.metrics.portfolio import max_drawdown
from kronos_cli.records.record import recorded_set
from kronos_cli.records.runs import ModelPair, load_pair, walkforward_dir
from kronos_cli.report.page import REPORT
from kronos_cli.runtime.split_forecasts import open_dataset, sampling_of
from kronos_cli.walkforward.folds import (
    FoldForecasts,
    Stamps,
    Training,
    ensure_dataset,
    ensure_trained,
    fold_config,
    forecast_fold,
    model_pair,
    plan_models,
    sha,
    span_config,
)
from kronos_cli.walkforward.page import write_report
from kronos_cli.walkforward.plan import FoldPlan, plan_folds, trading_calendar
from kronos_cli.walkforward.report import RESULTS, WalkForwardResult
from kronos_cli.walkforward.stitch import MODEL, Stitched, fold_wins, score_record, stitch

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
OnFold = Callable[[str, str], None]


def walkforward_plan(cfg: Config) -> FoldPlan:
    """The folds of the config's walk-forward on the market's calendar; nothing is written."""
    with tempfile.TemporaryDirectory() as scratch:
        cal = trading_calendar(cfg, Path(scratch))
    return plan_folds(cal, cfg.walkforward, cfg.data)


def _base(cfg: Config, root: Path) -> tuple[str, ModelPair]:
    """The model every fold started from, never refitted: zero-shot, or a preset's initial weights."""
    if cfg.model.tokenizer.startswith("preset:") or cfg.model.predictor.startswith("preset:"):
        return "initial weights", initial_pair(cfg, root / "initial")
    return "zero-shot", load_pair(None, cfg.model.tokenizer, cfg.model.predictor)


def inputs_hash(cfg: Config, plan: FoldPlan, root: Path) -> str:
    models = plan_models(cfg, plan, root)
    span = span_config(cfg, plan, root)
    return sha(
        plan.to_json(),
        {k: (v.tokenizer_hash, v.predictor_hash) for k, v in models.items()},
        [dataset_hash(fold_config(cfg, plan, f, root)) for f in plan.folds],
        dataset_hash(span),
        vars(cfg.backtest),
        cfg.model.tokenizer,
        cfg.model.predictor,
        cfg.seed,
    )


def saved_result(root: Path, inputs: str | None = None) -> WalkForwardResult | None:
    """The saved result when it is whole (and made from `inputs`, when given)."""
    out = root / "results"
    if not whole_result_set(out, RESULTS, otherwise="`kronos walkforward` writes it again"):
        return None
    try:
        result = WalkForwardResult.from_json(json.loads((out / RESULTS).read_text()))
        result.tables()  # a result of another version fails here, not when it is shown
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # written by another version
        log.warning("%s could not be read (%s); it is made again", out / RESULTS, exc)
        return None
    return result if inputs is None or result.inputs == inputs else None


def _run_folds(
    cfg: Config,
    plan: FoldPlan,
    root: Path,
    how: Training,
    progress: Progress | None,
    on_fold: OnFold | None,
    timings: dict,
) -> tuple[str, list[FoldForecasts]]:
    models, stamps, dev = plan_models(cfg, plan, root), Stamps(root / "stamps.json"), resolve_device(how.device)
    base_label, base = _base(cfg, root)
    parts, pair, pair_of = [], None, None
    for fold in plan.folds:
        fcfg, model = fold_config(cfg, plan, fold, root), models[fold.model_fold]
        if on_fold:
            on_fold(fold.name, "running")
        t0 = time.perf_counter()
        did = ["prep"] if ensure_dataset(fcfg, stamps, progress) else []
        t1 = time.perf_counter()
        did += ensure_trained(fcfg, model, stamps, how) if fold.refit else []
        t2 = time.perf_counter()
        if fold.model_fold != pair_of:  # a fold that reuses a model forecasts with the pair already loaded
            pair, pair_of = model_pair(model), fold.model_fold
        names, ns, fc, zero, reused = forecast_fold(fcfg, fold, pair, base, dev, how, progress)
        t3 = time.perf_counter()
        seconds = {"prep": t1 - t0, "train": t2 - t1, "forecast": t3 - t2}
        for key, dt in seconds.items():
            timings[f"{key}_s"] = timings.get(f"{key}_s", 0.0) + dt
        parts.append(
            FoldForecasts(fold, names, ns, fc, zero, did, reused, {k: round(v, 3) for k, v in seconds.items()})
        )
        if on_fold:
            on_fold(fold.name, ", ".join(did) or "up to date")
    return base_label, parts


def run_walkforward(
    cfg: Config,
    how: Training = Training(),
    force: bool = False,
    progress: Progress | None = None,
    on_fold: OnFold | None = None,
) -> WalkForwardResult:
    """Every fold, the stitched record's scores and backtest, and the result set under `walkforward_dir(cfg)`."""
    t0 = time.perf_counter()
    plan = walkforward_plan(cfg)  # a plan that does not fit fails here, before anything is written
    root = walkforward_dir(cfg)
    inputs = inputs_hash(cfg, plan, root)
    saved = None if force else saved_result(root, inputs)
    if saved is not None:
        saved.up_to_date = True
        return saved
    timings = {"plan_s": time.perf_counter() - t0}
    base_label, parts = _run_folds(cfg, plan, root, how, progress, on_fold, timings)
    t1 = time.perf_counter()
    span = span_config(cfg, plan, root)
    ensure_dataset(span, Stamps(root / "stamps.json"), progress)
    arrays = open_dataset(span)
    st = stitch(span, arrays, parts)
    t2 = time.perf_counter()
    evaluation, per_fold = _evaluate(cfg, span, arrays, st, base_label)
    t3 = time.perf_counter()
    backtest, daily = span_backtest(span, st, progress)
    t4 = time.perf_counter()
    timings.update(span_prep_s=t2 - t1, score_s=t3 - t2, backtest_s=t4 - t3)
    result = WalkForwardResult(
        cfg.run_name,
        inputs,
        base_label,
        plan.to_json(),
        plan.embargo,
        _fold_rows(plan, parts, per_fold, daily, cfg.backtest.accumulation),
        fold_wins(per_fold, base_label),
        evaluation,
        backtest,
        _daily_json(daily),
        timings,
    )
    signals = st.signals(cfg.backtest.signals)
    write_outputs(result, signals, root / "results", cfg)
    timings["report_s"] = time.perf_counter() - t4
    timings.update({k: round(v, 3) for k, v in timings.items()}, elapsed_s=round(time.perf_counter() - t0, 2))
    return result


def _evaluate(cfg: Config, span: Config, arrays, st: Stitched, base_label: str) -> tuple[EvaluationResult, list]:
    """The stitched record's leaderboard and tests, and each fold's headline scores (its row and its wins)."""
    scores = score_record(span, arrays, st, base_label)
    folds = np.unique(st.fold_of)
    per_fold = [score_record(span, arrays, st, base_label, st.fold_of == i, headline=True) for i in folds]
    sample = split_sample(st.sf.names, st.sf.origin_ns, st.sf.real.known, cfg.data.freq, "stitched test")
    p = cfg.data.predict_window
    evaluation = EvaluationResult(
        cfg.run_name,
        "stitched walk-forward test",
        **vars(sample),
        sampling=vars(sampling_of(span)),
        models=list(scores.values()),
        comparisons=compare(list(scores.values()), base_label, p),
        conventions={
            **evaluate_conventions(span, st.sf.real.convention, sample),
            "record": f"the test periods of the folds, stitched: each window forecast by its own fold's model "
            f"({MODEL}), trained only on bars before the fold's validation range; {base_label}: the base model, "
            "never refitted; labels and baselines from the whole data",
            "significance": f"Diebold-Mariano tests over the whole stitched span, Newey-West variance with {p - 1} "
            "lags",
        },
        notes=[n for n in [sample.ic_note()] if n],
    )
    return evaluation, per_fold


def span_backtest(span: Config, st: Stitched, progress: Progress | None = None) -> tuple[dict, pd.DataFrame]:
    """One backtest of the record's first configured signal over the whole span: positions carry across folds."""
    bcfg = copy.deepcopy(span)
    signal = bcfg.backtest.signals[0]
    bcfg.backtest.signals = [signal]
    indexed = st.sf.signal_table([signal]).set_index(["datetime", "instrument"])
    bench = benchmark_for(bcfg)
    qlib_backtest.check_benchmark(bcfg, bench)
    year = bars_a_year(
        market_rules(bcfg),
        parse_freq(bcfg.data.freq),
        qlib_backtest.provider_calendar(bcfg),
        bcfg.backtest.bars_per_year,
    )
    traded = trade(bcfg, indexed, bench, year, progress)
    days = st.days()
    return {
        "signal": signal,
        "strategy": traded.strategy,
        "benchmark": traded.benchmark,
        "range": traded.backtest_range,
        "stats": traded.stats[signal],
        "benchmark_stats": traded.bench_stats,
        "notes": traded.notes,
        "days": len(days),
        "signal_days": [qlib_backtest.stamp(days[0]), qlib_backtest.stamp(days[-1])],
    }, traded.bars[signal]


def _fold_rows(
    plan: FoldPlan, parts: list[FoldForecasts], per_fold: list, daily: pd.DataFrame, accumulation: str
) -> list[dict]:
    rows = []
    for p, scores, j in zip(parts, per_fold, plan.to_json()):
        lo, hi = pd.Timestamp(j["test"][0]), pd.Timestamp(j["test"][1]) + pd.Timedelta(days=1)
        bars = daily[(daily.index >= lo) & (daily.index < hi)]
        net = bars["return"] - bars["cost"]
        portfolio = {"bars": int(len(net))}
        if len(net):
            total = float((1 + net).prod() - 1) if accumulation == "compound" else float(net.sum())
            portfolio.update(
                {
                    "return": total,
                    "max_drawdown": max_drawdown(net, accumulation),
                    "excess": float(((1 + net).prod() / (1 + bars["bench"]).prod()) - 1),
                }
            )
        rows.append(
            {
                **j,
                "windows": int(len(p.names)),
                "ran": p.did,
                "reused_forecasts": p.reused,
                "seconds": p.seconds,
                "scores": {
                    label: {
                        "MAE": s.overall["MAE"],
                        "MASE": s.overall["MASE"],
                        "CRPS": s.overall["CRPS"],
                        "IC": s.ic["IC"],
                        "IC_t": s.ic["IC_t"],
                        "TS_corr": s.time_series.get("corr"),
                    }
                    for label, s in scores.items()
                },
                "portfolio": portfolio,
            }
        )
    return rows


def _daily_json(daily: pd.DataFrame) -> dict[str, list]:
    return {
        "date": [qlib_backtest.stamp(d) for d in daily.index],
        **{c: daily[c].round(8).tolist() for c in ("return", "cost", "bench")},
    }


def write_outputs(result: WalkForwardResult, signals: pd.DataFrame, out: Path, cfg: Config) -> None:
    """walkforward.json, walkforward_report.txt, report.html, the stitched signals (the fold of each row) and the
    plots, as one set in the run's own directory under `<output_dir>/runs/`, which `out` then points at
    (`records.record.recorded_set`); the folds' data, models and forecasts stay under the walk-forward's directory,
    shared by its reruns."""
    with recorded_set(cfg, "walkforward", [out]) as run:
        tmp = run.staging
        signals.to_csv(tmp / "signals.csv", index=False)
        plots = {k: Path(v).name for k, v in {**result.plots(tmp), **result.evaluation.plots(tmp)}.items()}
        result.outputs = {
            "results": str(run.path / RESULTS),
            "report": str(run.path / "walkforward_report.txt"),
            "html": str(run.path / REPORT),
            "signals": str(run.path / "signals.csv"),
            **{k: str(run.path / v) for k, v in plots.items()},
        }
        write_text(tmp / "walkforward_report.txt", result.report_text())
        write_json(tmp / RESULTS, result.to_json())
        write_report(tmp)  # from the file just written: the page shows what the JSON says
