"""`kronos evaluate`: forecast a split's signal days once per model (the backtest's engine, sampling, per-window
seeds and cache; point in time), add the baselines, and score them all on the same windows."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pandas as pd

from kronos_cli.config import Config
from kronos_cli.data.labels import realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys
from kronos_cli.errors import KronosError
from kronos_cli.evaluate.baselines import baselines, lookback_returns
from kronos_cli.evaluate.models import Candidate, candidates
from kronos_cli.evaluate.report import Comparison, EvaluationResult
from kronos_cli.evaluate.scores import MIN_DAYS, ModelScores, score
from kronos_cli.forecast.device import resolve_device
from kronos_cli.io import write_json, write_text
from kronos_cli.metrics.probabilistic import Ensemble
from kronos_cli.metrics.significance import diebold_mariano
from kronos_cli.runs import evaluation_dir
from kronos_cli.split_forecasts import (
    Scale,
    SplitForecasts,
    forecast_split,
    labelled_progress,
    open_dataset,
    sampling_of,
    split_windows,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def _check_days(cfg: Config, arrays: DatasetArrays, origins: Origins, split: str) -> int:
    """The days with at least 3 labelled signals, checked before anything is forecast."""
    real = realised(arrays, origins, cfg.data.predict_window, cfg.backtest.deal_price)
    _, origin_ns = origin_keys(arrays, origins)
    days = pd.Series(real.known, index=pd.to_datetime(origin_ns)).groupby(level=0).sum()
    usable = int((days >= 3).sum())
    if usable < MIN_DAYS:
        raise KronosError(
            f"the {split} split has {usable} days with at least 3 labelled signals; the statistics "
            f"need at least {MIN_DAYS}. Widen data.{split}_time_range (or evaluate the other split)"
        )
    return usable


def _forecasts(
    cfg: Config,
    arrays: DatasetArrays,
    origins: Origins,
    split: str,
    cands: list[Candidate],
    device: str,
    progress: Progress | None,
    scale: Scale,
) -> dict[str, SplitForecasts]:
    dev = resolve_device(device)
    out = {}
    for i, c in enumerate(cands):
        log.info("forecasting the %s split with %s (%d of %d)", split, c.label, i + 1, len(cands))
        c.pair.warn_if_trained_otherwise(cfg)
        labelled = labelled_progress(progress, c.label)
        out[c.label] = forecast_split(cfg, arrays, origins, c.pair, dev, labelled, scale=scale)
    return out


def _compare(scores: dict[str, ModelScores], cands: list[Candidate], predict: int) -> list[Comparison]:
    """Each model against the last close, and the fine-tuned model against where it started."""
    pairs = [(c.label, "last close") for c in cands]
    start = next((c.label for c in cands if c.role in ("zero-shot", "initial weights")), None)
    if "fine-tuned" in scores and start is not None:
        pairs.insert(0, ("fine-tuned", start))
    out = []
    for a, b in pairs:
        for metric in ("CRPS", "MAE"):
            la, lb = scores[a].daily_loss[metric], scores[b].daily_loss[metric]
            common = la.index.intersection(lb.index)
            stat, p = diebold_mariano(la[common].to_numpy(), lb[common].to_numpy(), predict)
            out.append(
                Comparison(a, b, metric, float(la[common].mean()), float(lb[common].mean()), stat, p, len(common))
            )
    return out


def _score_all(cfg: Config, arrays: DatasetArrays, cands: list[Candidate], sfs: dict[str, SplitForecasts]) -> dict:
    """Every model's and baseline's scores on the first model's windows (all models forecast the same ones)."""
    first = next(iter(sfs.values()))
    obs, pred = first.real.path, cfg.data.predict_window
    common = dict(
        obs=obs, trade_label=first.real.label, names=first.names, days=pd.to_datetime(first.origin_ns), predict=pred
    )
    scores = {
        c.label: score(
            c.label, "model", c.pair.sources["model"], Ensemble(sfs[c.label].forecasts.return_paths()), **common
        )
        for c in cands
    }
    returns = lookback_returns(arrays, first.origins, cfg.data.lookback_window)
    for name, predictive in baselines(returns, pred, cfg.seed).items():
        scores[name] = score(name, "baseline", "lookback", predictive, **common)
    return scores


def run_evaluate(
    cfg: Config,
    specs: list[str] | None = None,
    split: str | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    scale: Scale = Scale(),
) -> EvaluationResult:
    t0 = time.perf_counter()
    split = split or cfg.evaluate.split
    arrays, out = open_dataset(cfg), evaluation_dir(cfg, split)
    sampling = sampling_of(cfg)  # a missing or stale calibration fails before anything is loaded
    origins = split_windows(cfg, arrays, split)
    days = _check_days(cfg, arrays, origins, split)
    cands = candidates(cfg, [*cfg.evaluate.models, *(specs or [])], out)
    sfs = _forecasts(cfg, arrays, origins, split, cands, device, progress, scale)
    first = next(iter(sfs.values()))
    t1 = time.perf_counter()
    scores = _score_all(cfg, arrays, cands, sfs)
    comparisons = _compare(scores, cands, cfg.data.predict_window)
    t2 = time.perf_counter()
    result = EvaluationResult(
        cfg.run_name,
        split,
        len(first.origins),
        int(first.real.known.sum()),
        days,
        vars(sampling),
        list(scores.values()),
        comparisons,
        _conventions(cfg, first.real.convention),
    )
    result.timings = {"forecast_s": round(t1 - t0, 3), "score_s": round(t2 - t1, 3)}
    result.precision = {label: sf.precision for label, sf in sfs.items() if sf.precision}
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    write_outputs(result, out)
    return result


def _conventions(cfg: Config, label: str) -> dict[str, str]:
    p = cfg.data.predict_window
    return {
        "units": "Errors and CRPS in percent of the last close (the return of the close h bars ahead); coverage "
        "and direction in percent.",
        "forecast": f"the mean of {cfg.backtest.sample_count} sample paths for point scores, the paths for CRPS, "
        f"quantiles and coverage; bars 1..{p} ahead of each signal day",
        "IC": f"per day, the windows ranked by the forecast return {p} bars ahead against the label; t-statistic "
        f"with Newey-West standard errors ({p} lags), 95% interval from a circular block bootstrap over days",
        "label": label,
    }


def saved_evaluation(cfg: Config, split: str | None = None) -> EvaluationResult | None:
    """The last evaluation of the run's split as `write_outputs` saved it, or None when there is none."""
    path = evaluation_dir(cfg, split or cfg.evaluate.split) / "evaluation.json"
    if not path.is_file():
        return None
    try:
        return EvaluationResult.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # written by another version, or damaged
        log.warning("%s could not be read (%s); `kronos evaluate` writes it again", path, exc)
        return None


def write_outputs(result: EvaluationResult, out) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result.outputs = {
        "results": str(out / "evaluation.json"),
        "report": str(out / "evaluation_report.txt"),
        **result.plots(out),
    }
    write_text(out / "evaluation_report.txt", result.report_text())
    write_json(out / "evaluation.json", result.to_json())
