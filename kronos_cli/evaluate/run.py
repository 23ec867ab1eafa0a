"""`kronos evaluate`: forecast a split's windows once per model (the backtest's engine, sampling, per-window seeds
and cache; point in time), add the baselines, and score them all on the same windows, for one symbol or many."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kronos_cli.config import Config
from kronos_cli.core.io import whole_result_set, write_json, write_text
from kronos_cli.data.labels import realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys
from kronos_cli.evaluate.baselines import baselines, lookback_returns
from kronos_cli.evaluate.comparisons import compare
from kronos_cli.evaluate.fans import fan_examples
from kronos_cli.evaluate.models import Candidate, candidates
from kronos_cli.evaluate.page import RESULTS, write_report
from kronos_cli.evaluate.report import EvaluationResult
from kronos_cli.evaluate.sample import SplitSample, split_sample
from kronos_cli.evaluate.scores import MIN_TIMES, ModelScores, score
from kronos_cli.forecast.calibrated import Calibration
from kronos_cli.forecast.device import resolve_device
from kronos_cli.metrics.ic import MIN_NAMES
from kronos_cli.metrics.probabilistic import Ensemble
from kronos_cli.metrics.recalibration import Recalibrated
from kronos_cli.records.record import recorded_set
from kronos_cli.records.runs import evaluation_dir
from kronos_cli.report.page import REPORT
from kronos_cli.runtime.split_forecasts import (
    Scale,
    SplitForecasts,
    calibration_of,
    forecast_split,
    labelled_progress,
    open_dataset,
    sampling_of,
    split_windows,
)

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def _check_sample(cfg: Config, arrays: DatasetArrays, origins: Origins, split: str) -> SplitSample:
    """The split's windows, symbols and signal times with a known future, checked before anything is forecast."""
    real = realised(arrays, origins, cfg.data.predict_window, cfg.backtest.deal_price)
    names, origin_ns = origin_keys(arrays, origins)
    return split_sample(names, origin_ns, real.known, cfg.data.freq, split)


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


def _score_all(
    cfg: Config,
    arrays: DatasetArrays,
    cands: list[Candidate],
    sfs: dict[str, SplitForecasts],
    calibrated: Calibration | None,
) -> tuple[dict[str, ModelScores], dict[str, str]]:
    """Every model's and baseline's scores on the first model's windows (all models forecast the same ones), and
    the model whose weights the run's bands were fitted for once more through them: {its row's label: the model's}."""
    first = next(iter(sfs.values()))
    obs, pred = first.real.path, cfg.data.predict_window
    times = pd.to_datetime(first.origin_ns)
    common = dict(obs=obs, trade_label=first.real.label, names=first.names, times=times, predict=pred)
    scores, through_bands = {}, {}
    for c in cands:
        paths = sfs[c.label].forecasts.return_paths()
        scores[c.label] = score(c.label, "model", c.pair.sources["model"], Ensemble(paths), **common)
        if calibrated is not None and calibrated.bands is not None and calibrated.matches(c.pair.weights):
            label = f"{c.label}, calibrated"
            source = f"{c.pair.sources['model']}, bands {calibrated.path}"
            scores[label] = score(label, "model", source, Recalibrated(paths, calibrated.bands), **common)
            through_bands[label] = c.label
    returns = lookback_returns(arrays, first.origins, cfg.data.lookback_window)
    for name, predictive in baselines(returns, pred, cfg.seed).items():
        scores[name] = score(name, "baseline", "lookback", predictive, **common)
    return scores, through_bands


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
    calibrated = calibration_of(cfg)  # a missing or stale calibration fails before anything is loaded
    sampling = sampling_of(cfg)
    origins = split_windows(cfg, arrays, split)
    sample = _check_sample(cfg, arrays, origins, split)
    cands = candidates(cfg, [*cfg.evaluate.models, *(specs or [])])
    sfs = _forecasts(cfg, arrays, origins, split, cands, device, progress, scale)
    first = next(iter(sfs.values()))
    t1 = time.perf_counter()
    scores, through_bands = _score_all(cfg, arrays, cands, sfs, calibrated)
    start = next((c.label for c in cands if c.role in ("zero-shot", "initial weights")), None)
    comparisons = compare(list(scores.values()), start, cfg.data.predict_window)
    t2 = time.perf_counter()
    result = EvaluationResult(
        cfg.run_name,
        split,
        **vars(sample),
        sampling={**vars(sampling), "bands": calibrated.bands.describe() if calibrated and calibrated.bands else None},
        models=list(scores.values()),
        comparisons=comparisons,
        conventions=conventions(cfg, first.real.convention, sample, calibrated if through_bands else None),
        notes=[n for n in [sample.ic_note()] if n],
        calibrated=through_bands,
    )
    result.timings = {"forecast_s": round(t1 - t0, 3), "score_s": round(t2 - t1, 3)}
    result.precision = {label: sf.precision for label, sf in sfs.items() if sf.precision}
    result.examples = fan_examples(arrays, first, cands[0].label, cfg.data.lookback_window)
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    write_outputs(result, out, cfg)
    return result


def conventions(cfg: Config, label: str, sample: SplitSample, calibrated: Calibration | None = None) -> dict[str, str]:
    p, unit = cfg.data.predict_window, sample.time_unit
    bands = {}
    if calibrated is not None and calibrated.bands is not None:
        bands["calibrated"] = (
            f"', calibrated' rows: the model's paths read through the bands {calibrated.path} fitted on "
            f"{calibrated.bands.windows:,} windows of the validation split (quantiles, coverage, WQL, CRPS and PIT "
            "recalibrated; the point forecast, MAE and IC are the paths' mean, unchanged). Their CRPS is that of "
            "the bands' quantiles; a model's paths have the fair ensemble CRPS, what its distribution scores with "
            "unlimited paths"
        )
    return {
        "units": "Errors and CRPS in percent of the last close (the return of the close h bars ahead); WQL "
        "unitless (the last close's is 1); coverage and direction in percent.",
        "forecast": f"the mean of {cfg.backtest.sample_count} sample paths for point scores, the paths for CRPS, "
        f"quantiles and coverage; bars 1..{p} ahead of each signal {unit}",
        "IC": f"per {unit} with at least {MIN_NAMES} labelled symbols (and at least {MIN_TIMES} such {unit}s), the "
        f"windows ranked by the forecast return {p} bars ahead against the label; t-statistic with Newey-West "
        f"standard errors ({p} lags), 95% interval from a circular block bootstrap over {unit}s",
        "TS corr": f"the correlation over time of the forecast return {p} bars ahead with the label, within each "
        f"series (standardised, pooled); t-statistic with Newey-West standard errors over {unit}s ({p} lags; "
        "Driscoll-Kraay across series)",
        "significance": f"Diebold-Mariano tests of every model against every baseline on MAE, CRPS and WQL, over "
        f"{unit}s (losses averaged over the symbols of each), Newey-West variance with {p - 1} lags; the verdict "
        "of each score is against its strongest baseline",
        "label": label,
        **bands,
    }


def saved_evaluation(cfg: Config, split: str | None = None) -> EvaluationResult | None:
    """The last evaluation of the run's split as `write_outputs` saved it, or None when there is no whole one."""
    out = evaluation_dir(cfg, split or cfg.evaluate.split)
    if not whole_result_set(out, RESULTS, otherwise="`kronos evaluate` writes it again"):
        return None
    try:
        return EvaluationResult.from_json(json.loads((out / RESULTS).read_text()))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # written by another version
        log.warning("%s could not be read (%s); `kronos evaluate` writes it again", out / RESULTS, exc)
        return None


def write_outputs(result: EvaluationResult, out: Path, cfg: Config) -> None:
    """The leaderboard, its reports and plots as one set in the run's own directory under `<output_dir>/runs/`,
    which `out` then points at (`records.record.recorded_set`)."""
    with recorded_set(cfg, "evaluate", [out]) as run:
        tmp = run.staging
        plots = {label: Path(path).name for label, path in result.plots(tmp).items()}
        result.outputs = {
            "results": str(run.path / RESULTS),
            "report": str(run.path / "evaluation_report.txt"),
            "html": str(run.path / REPORT),
            **{label: str(run.path / name) for label, name in plots.items()},
        }
        write_text(tmp / "evaluation_report.txt", result.report_text())
        write_json(tmp / RESULTS, result.to_json())
        write_report(tmp)  # from the files just written: the page shows what the JSON says
