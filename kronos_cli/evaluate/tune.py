"""`kronos evaluate --tune-sampling`: the temperature and top_p that give the run's model the lowest CRPS on the
validation split, written to the run's `sampling.json` for `backtest.sampling: calibrated`, `kronos signals`,
`kronos predict --sampling` and `kronos serve --sampling`.

A grid (`evaluate.tune_temperatures` x `evaluate.tune_top_ps`) over a seeded subset of the validation windows
(`evaluate.tune_windows`); the validation split, never the test split, so that the test scores stay honest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kronos_cli.config import Config
from kronos_cli.forecast.calibrated import weight_digests
from kronos_cli.forecast.device import resolve_device
from kronos_cli.forecast.windows import Sampling
from kronos_cli.io import write_json
from kronos_cli.metrics.probabilistic import Ensemble, coverage, intervals
from kronos_cli.runs import load_pair, sampling_file
from kronos_cli.split_forecasts import forecast_split, labelled_progress, open_dataset, split_windows
from kronos_cli.tables import Table, num, pct

Progress = Callable[[int, int, str], None]


@dataclass
class TuneResult:
    grid: list[dict[str, float]]  # temperature, top_p, CRPS, coverage of each setting
    before: dict[str, float]  # the configured setting's scores
    chosen: dict[str, float]
    windows: int
    path: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def tables(self) -> list[Table]:
        t = Table(
            f"Sampling on {self.windows:,} validation windows (lowest CRPS chosen, written to {self.path})",
            ["temperature", "top_p", "CRPS %", "cov50", "cov80", "cov90"],
            caption=f"configured: T {self.before['temperature']:g}, top_p {self.before['top_p']:g}, CRPS "
            f"{pct(self.before['CRPS'], 3)}, cov90 {pct(self.before['0.9'], 1)}; calibrated: "
            f"T {self.chosen['temperature']:g}, top_p {self.chosen['top_p']:g}, CRPS "
            f"{pct(self.chosen['CRPS'], 3)}, cov90 {pct(self.chosen['0.9'], 1)}",
        )
        for i, g in enumerate(self.grid):
            t.add(
                num(g["temperature"], 2),
                num(g["top_p"], 2),
                pct(g["CRPS"], 3),
                pct(g["0.5"], 1),
                pct(g["0.8"], 1),
                pct(g["0.9"], 1),
            )
            if g is self.chosen or g == self.chosen:
                t.bold |= {(i, c) for c in range(6)}
        return [t]


def tune_sampling(cfg: Config, device: str = "auto", progress: Progress | None = None) -> TuneResult:
    arrays = open_dataset(cfg)
    origins = split_windows(cfg, arrays, "val")
    rng = np.random.default_rng(cfg.seed)
    keep = np.sort(rng.choice(len(origins), size=min(cfg.evaluate.tune_windows, len(origins)), replace=False))
    origins, pair, dev, b = origins.subset(keep), load_pair(cfg), resolve_device(device), cfg.backtest
    settings = [(t, p) for t in cfg.evaluate.tune_temperatures for p in cfg.evaluate.tune_top_ps]
    if (b.temperature, b.top_p) not in settings:
        settings.append((b.temperature, b.top_p))
    grid = []
    for temperature, top_p in settings:
        sampling = Sampling(temperature, top_p, b.top_k, b.sample_count, cfg.seed)
        labelled = labelled_progress(progress, f"T {temperature:g}, top_p {top_p:g}")
        sf = forecast_split(cfg, arrays, origins, pair, dev, labelled, sampling)
        ens, obs = Ensemble(sf.forecasts.return_paths()), sf.real.path
        crps = float(np.nanmean(np.where(np.isfinite(obs), ens.crps(np.nan_to_num(obs)), np.nan)))
        grid.append({"temperature": temperature, "top_p": top_p, "CRPS": crps, **coverage(intervals(ens), obs)})
    before = next(g for g in grid if (g["temperature"], g["top_p"]) == (b.temperature, b.top_p))
    chosen = min(grid, key=lambda g: g["CRPS"])
    path = sampling_file(cfg)
    write_json(
        path,
        {
            **chosen,
            "split": "val",
            "windows": len(origins),
            "sample_count": b.sample_count,
            "configured": before,
            "weights": weight_digests(pair.weights),
        },
    )
    return TuneResult(grid, before, chosen, len(origins), str(path))
