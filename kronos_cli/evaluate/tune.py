"""`kronos evaluate --tune-sampling`: the temperature and top_p, and the bands, that give the run's model calibrated
forecasts on the validation split, written to the run's `sampling.json` for `backtest.sampling: calibrated`,
`kronos signals`, `kronos predict --sampling` and `kronos serve --sampling`.

A grid (`evaluate.tune_temperatures` x `evaluate.tune_top_ps`) over a seeded subset of the validation windows
(`evaluate.tune_windows`), `backtest.sample_count` paths each; the validation split, never the test split, so that
the test scores stay honest. Temperature and top_p alone leave the bands far too narrow (the paths' spread is the
model's, and a few paths' empirical quantiles cover less than their level), so at each setting bands are fitted to
the paths' standardised residuals (`metrics/recalibration.py`) and the setting whose bands have the lowest CRPS is
chosen. The bands change the quantiles only: the paths, their mean and the backtest's signals stay the model's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kronos_cli.config import Config
from kronos_cli.core.tables import Table, num, pct
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins
from kronos_cli.evaluate.coverage import coverage_table
from kronos_cli.forecast.calibrated import weight_digests, write_sampling
from kronos_cli.forecast.device import resolve_device
from kronos_cli.metrics.probabilistic import Ensemble, Predictive, coverage, intervals
from kronos_cli.metrics.recalibration import BandCorrection, Recalibrated, fit_bands
from kronos_cli.model.sampling import Sampling
from kronos_cli.records.runs import load_pair, sampling_file
from kronos_cli.runtime.split_forecasts import forecast_split, labelled_progress, open_dataset, split_windows

log = logging.getLogger(__name__)
FEW_WINDOWS = 200  # validation windows below which the bands' outer edges rest on a handful of residuals
Progress = Callable[[int, int, str], None]


@dataclass
class TuneResult:
    # temperature, top_p, CRPS and coverage of the paths; "calibrated": the same through the bands fitted on them
    # (None: none could be fitted)
    grid: list[dict[str, Any]]
    before: dict[str, Any]  # the configured setting's
    chosen: dict[str, Any]
    windows: int
    sample_count: int
    path: str
    bands: dict[str, Any] | None = None  # what the chosen setting's bands were fitted for (`BandCorrection.describe`)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def tables(self) -> list[Table]:
        return [self._grid(), self._coverage()]

    def _grid(self) -> Table:
        criterion = "after the bands" if self.chosen.get("calibrated") else "of the paths"
        t = Table(
            f"Sampling on {self.windows:,} validation windows, {self.sample_count} paths each (the lowest CRPS "
            f"{criterion} chosen, written to {self.path})",
            ["temperature", "top_p", "CRPS %", "cov50", "cov80", "cov90", "bands: CRPS %", "cov50", "cov80", "cov90"],
            caption="Paths: their empirical quantiles; bands: the quantiles recalibrated on these windows. CRPS of "
            "paths: the fair estimator (what the model's distribution scores with unlimited paths); of bands: the "
            "CRPS of the quantiles served.",
        )
        for i, g in enumerate(self.grid):
            b = g.get("calibrated") or {}
            t.add(num(g["temperature"], 2), num(g["top_p"], 2), *_scores(g), *_scores(b) if b else ["-"] * 4)
            if g is self.chosen or g == self.chosen:
                t.bold |= {(i, c) for c in range(len(t.columns))}
        return t

    def _coverage(self) -> Table:
        b, c = self.before, self.chosen
        rows = [
            (f"before: configured T {b['temperature']:g}, top_p {b['top_p']:g}, paths", b),
            (f"chosen T {c['temperature']:g}, top_p {c['top_p']:g}, paths", c),
        ]
        if c.get("calibrated"):
            rows.append(("after: chosen, bands (fitted on these windows)", c["calibrated"]))
        return coverage_table(
            f"Coverage on the validation split ({self.windows:,} windows) before and after calibration",
            rows,
            "The bands are fitted on these windows, so they hold here by construction: the test split's coverage "
            "after calibration, in the evaluation, is the honest measure."
            if c.get("calibrated")
            else "No bands could be fitted (fewer than 2 paths, or too few windows whose paths differ).",
        )


def _scores(row: dict[str, Any]) -> list[str]:
    return [pct(row["CRPS"], 3), pct(row["0.5"], 1), pct(row["0.8"], 1), pct(row["0.9"], 1)]


def _measured(predictive: Predictive | Recalibrated, obs: np.ndarray) -> dict[str, float]:
    """CRPS and coverage of `predictive` over the known outcomes."""
    crps = float(np.nanmean(np.where(np.isfinite(obs), predictive.crps(np.nan_to_num(obs)), np.nan)))
    return {"CRPS": crps, **coverage(intervals(predictive), obs)}


def _measure(paths: np.ndarray, obs: np.ndarray) -> tuple[dict[str, Any], BandCorrection | None]:
    """The paths' CRPS and coverage, and the same through bands fitted on them (None when none could be)."""
    bands = fit_bands(paths, obs)
    return {
        **_measured(Ensemble(paths), obs),
        "calibrated": _measured(Recalibrated(paths, bands), obs) if bands else None,
    }, bands


def _tune_windows(cfg: Config, arrays: DatasetArrays) -> Origins:
    """A seeded subset of `evaluate.tune_windows` validation windows."""
    origins = split_windows(cfg, arrays, "val")
    rng = np.random.default_rng(cfg.seed)
    return origins.subset(
        np.sort(rng.choice(len(origins), size=min(cfg.evaluate.tune_windows, len(origins)), replace=False))
    )


def tune_sampling(cfg: Config, device: str = "auto", progress: Progress | None = None) -> TuneResult:
    arrays = open_dataset(cfg)
    origins = _tune_windows(cfg, arrays)
    pair, dev, b = load_pair(cfg), resolve_device(device), cfg.backtest
    settings = [(t, p) for t in cfg.evaluate.tune_temperatures for p in cfg.evaluate.tune_top_ps]
    if (b.temperature, b.top_p) not in settings:
        settings.append((b.temperature, b.top_p))
    grid, fitted = [], []
    for temperature, top_p in settings:
        sampling = Sampling(temperature=temperature, top_k=b.top_k, top_p=top_p, paths=b.sample_count, seed=cfg.seed)
        labelled = labelled_progress(progress, f"T {temperature:g}, top_p {top_p:g}")
        sf = forecast_split(cfg, arrays, origins, pair, dev, labelled, sampling)
        row, bands = _measure(sf.forecasts.return_paths(), sf.real.path)
        grid.append({"temperature": temperature, "top_p": top_p, **row})
        fitted.append(bands)
    before = next(g for g in grid if (g["temperature"], g["top_p"]) == (b.temperature, b.top_p))
    i = _choose(grid)
    _check_bands(fitted[i], len(origins), b.sample_count)
    record = {"split": "val", "windows": len(origins), "sample_count": b.sample_count, "configured": before}
    record.update(**grid[i], weights=weight_digests(pair.weights))
    path = write_sampling(sampling_file(cfg), record, fitted[i])
    described = fitted[i].describe() if fitted[i] else None
    return TuneResult(grid, before, grid[i], len(origins), b.sample_count, str(path), described)


def _check_bands(bands: BandCorrection | None, windows: int, paths: int) -> None:
    if bands is None:
        log.warning(
            "no bands could be fitted (backtest.sample_count %d; they need at least 2 paths that differ on enough "
            "windows): only the temperature and top_p are calibrated",
            paths,
        )
    elif windows < FEW_WINDOWS:
        log.warning(
            "the bands were fitted on %d validation windows: their 5%% and 95%% edges rest on about %d residuals "
            "each; more validation windows (evaluate.tune_windows, data.val_time_range) make them steadier",
            windows,
            max(1, windows // 20),
        )


def _choose(grid: list[dict[str, Any]]) -> int:
    """The setting whose bands have the lowest CRPS (the paths' own CRPS where no bands could be fitted)."""
    with_bands = [i for i, g in enumerate(grid) if g["calibrated"]]
    if with_bands:
        return min(with_bands, key=lambda i: grid[i]["calibrated"]["CRPS"])
    return min(range(len(grid)), key=lambda i: grid[i]["CRPS"])
