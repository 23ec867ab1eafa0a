"""The forecasts of a prepared split's signal days by one model pair, with what happened after them.

Sampled with the backtest's settings and each window's own seed, cached under the run's output directory by
window (so any command, batch size or worker reuses them), and joined with the realised labels and paths. The
backtest, `kronos evaluate` and selection by validation skill all read forecasts through here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import Config
from kronos_cli.data.labels import Realised, realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys, split_origins
from kronos_cli.errors import KronosError
from kronos_cli.forecast.cache import ForecastCache
from kronos_cli.forecast.calibrated import sampling_for
from kronos_cli.forecast.signals import signal_table
from kronos_cli.forecast.windows import Sampling, WindowForecasts, cache_key, forecast_windows
from kronos_cli.model.checkpoint import WEIGHTS_NAME
from kronos_cli.runs import ModelPair, best_model_dir, forecast_cache_dir, sampling_file

Progress = Callable[[int, int, str], None]


def labelled_progress(progress: Progress | None, label: str) -> Progress | None:
    """`progress` with `label` in front of each note (which model, which sampling setting)."""
    if progress is None:
        return None
    return lambda done, total, note="": progress(done, total, f"{label}: {note}")


# What a prepared dataset's windows depend on: a config that differs here needs `kronos prep` again.
WINDOW_FIELDS = (
    "source",
    "instrument",
    "freq",
    "start_time",
    "end_time",
    "lookback_window",
    "predict_window",
    "train_time_range",
    "val_time_range",
    "test_time_range",
    "embargo",
    "universe",
)


def open_dataset(cfg: Config) -> DatasetArrays:
    """The prepared dataset, checked against the config's windows: its shape, splits, pool and dates."""
    arrays = DatasetArrays(cfg.data.dataset_path)
    built, asked = arrays.manifest.get("data_config", {}), dataclasses.asdict(cfg.data)
    differ = [k for k in WINDOW_FIELDS if k in built and _plain(built[k]) != _plain(asked[k])]
    if differ:
        k = differ[0]
        raise KronosError(
            f"the dataset at {arrays.path} was built with data.{k}={built[k]}, but the config asks for "
            f"{asked[k]}{f' (and {len(differ) - 1} more)' if len(differ) > 1 else ''}; run `kronos prep` again "
            f"with this config"
        )
    return arrays


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def sampling_of(cfg: Config, weights: tuple[Path, ...] | None = None) -> Sampling:
    """The backtest's sampling: as configured, or with the temperature and top_p `kronos evaluate
    --tune-sampling` calibrated for the run (`backtest.sampling: calibrated`), checked against the run's
    fine-tuned weights (or `weights`)."""
    b = cfg.backtest
    temperature, top_p = b.temperature, b.top_p
    if b.sampling == "calibrated":
        pair_weights = weights or tuple(best_model_dir(cfg, s) / WEIGHTS_NAME for s in ("tokenizer", "predictor"))
        calibrated = sampling_for(sampling_file(cfg), pair_weights, strict=True)
        temperature, top_p = calibrated.temperature, calibrated.top_p
    return Sampling(temperature, top_p, b.top_k, b.sample_count, cfg.seed)


def split_windows(cfg: Config, arrays: DatasetArrays, split: str) -> Origins:
    origins = split_origins(arrays, split)
    if not len(origins):
        raise KronosError(
            f"the dataset at {cfg.data.dataset_path} has no {split} signal days; set "
            f"data.{split}_time_range and run `kronos prep` again"
        )
    return origins


@dataclass
class SplitForecasts:
    """A split's windows (in the dataset's order), their forecasts and their realised labels and paths."""

    origins: Origins
    names: np.ndarray  # (N,) symbol of each window
    origin_ns: np.ndarray  # (N,) signal day (ns)
    forecasts: WindowForecasts
    real: Realised
    cache_dir: str

    @property
    def days(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.origin_ns)).unique().sort_values()

    def signal_table(self, names: list[str], returns: bool = False) -> pd.DataFrame:
        """datetime, instrument, the signals and the label, sorted by day and instrument."""
        table = signal_table(self.forecasts, self.origin_ns, self.names, names, returns)
        table["label"] = self.real.label
        return table.sort_values(["datetime", "instrument"], kind="stable").reset_index(drop=True)


def forecast_split(
    cfg: Config,
    arrays: DatasetArrays,
    origins: Origins,
    pair: ModelPair,
    device,
    progress: Progress | None = None,
    sampling: Sampling | None = None,
) -> SplitForecasts:
    """Forecasts of `origins` by `pair` on `device` (cached), and what happened after each."""
    sampling = sampling or sampling_of(cfg)
    forecaster = pair.forecaster(device, cfg.data.max_context, cfg.data.clip)
    key = cache_key(
        pair.weights,
        arrays.manifest["config_hash"],
        sampling,
        cfg.data.lookback_window,
        cfg.data.predict_window,
        forecaster.max_context,
        forecaster.clip,
    )
    cache = ForecastCache(forecast_cache_dir(cfg, key), (sampling.sample_count, cfg.data.predict_window))
    fc = forecast_windows(forecaster, arrays, origins, sampling, cfg.backtest.batch_size, cache, progress)
    names, origin_ns = origin_keys(arrays, origins)
    real = realised(arrays, origins, cfg.data.predict_window, cfg.backtest.deal_price)
    return SplitForecasts(origins, names, origin_ns, fc, real, str(cache.directory))
