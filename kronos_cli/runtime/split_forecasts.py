"""The forecasts of a prepared split's signal days by one model pair, with what happened after them.

Sampled with the backtest's settings and each window's own seed, cached under the run's output directory by
window (so any command, batch size or worker reuses them), and joined with the realised labels and paths. The
backtest, `kronos evaluate` and selection by validation skill all read forecasts through here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.labels import Realised, realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys, split_origins
from kronos_cli.forecast.calibrated import Calibration, sampling_for
from kronos_cli.forecast.signals import signal_table
from kronos_cli.forecast.spec import ForecastSpec, sampling_of_config
from kronos_cli.forecast.windows import WindowForecasts, forecast_windows
from kronos_cli.model.checkpoint import WEIGHTS_NAME
from kronos_cli.model.sampling import Sampling
from kronos_cli.records.runs import ModelPair, best_model_dir, sampling_file
from kronos_cli.runtime.distributed import Launch
from kronos_cli.runtime.precision import auto_dtype, concrete, deviation, sample_of
from kronos_cli.runtime.sharding import forecast_everywhere, window_cache

log = logging.getLogger(__name__)

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


def calibration_of(cfg: Config, weights: tuple[Path, ...] | None = None) -> Calibration | None:
    """The run's calibrated sampling (`backtest.sampling: calibrated`, from `kronos evaluate --tune-sampling`),
    checked against its fine-tuned weights (or `weights`); None when the sampling is as configured."""
    if cfg.backtest.sampling != "calibrated":
        return None
    pair_weights = weights or tuple(best_model_dir(cfg, s) / WEIGHTS_NAME for s in ("tokenizer", "predictor"))
    return sampling_for(sampling_file(cfg), pair_weights, strict=True)


def sampling_of(cfg: Config, weights: tuple[Path, ...] | None = None) -> Sampling:
    """The backtest's sampling: as configured, or with the temperature and top_p the run's calibration chose
    (`calibration_of`)."""
    return sampling_of_config(cfg, calibration_of(cfg, weights))


def split_windows(cfg: Config, arrays: DatasetArrays, split: str) -> Origins:
    origins = split_origins(arrays, split)
    if not len(origins):
        raise KronosError(
            f"the dataset at {cfg.data.dataset_path} has no {split} signals; set "
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
    precision: dict | None = None  # bf16/fp16 forecasts against fp32 on a sample of windows

    @property
    def days(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.origin_ns)).unique().sort_values()

    def signal_table(self, names: list[str], returns: bool = False) -> pd.DataFrame:
        """datetime, instrument, the signals and the label, sorted by day and instrument."""
        table = signal_table(self.forecasts, self.origin_ns, self.names, names, returns)
        table["label"] = self.real.label
        return table.sort_values(["datetime", "instrument"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Scale:
    """How a split is forecast: the precision (auto: bf16 on CUDA where the precision check passes, else fp32;
    `runtime/precision.py`), and the workers (`--nproc`, `--gpus`, nodes; None: this one)."""

    dtype: str = "auto"
    launch: Launch | None = None


def forecast_split(
    cfg: Config,
    arrays: DatasetArrays,
    origins: Origins,
    pair: ModelPair,
    device,
    progress: Progress | None = None,
    sampling: Sampling | None = None,
    scale: Scale = Scale(),
) -> SplitForecasts:
    """Forecasts of `origins` by `pair` on `device` (cached; by many workers when `scale` says so), and what
    happened after each."""
    given = scale.dtype
    spec = pair.resolve(cfg, sampling=sampling or sampling_of(cfg), dtype=concrete(given), device=device)
    forecaster, sampling = pair.forecaster(spec), spec.sampling
    dtype, checked = auto_dtype(
        given,
        forecaster.device.type,
        lambda low: precision_deviation(cfg, arrays, origins, pair, spec.replace(dtype=low)),
    )
    spec, forecaster = spec.replace(dtype=dtype), forecaster.with_dtype(dtype)
    forecast_everywhere(cfg, arrays, origins, pair, forecaster, sampling, scale.launch, progress)
    cache = window_cache(cfg, arrays, pair, forecaster, sampling)
    fc = forecast_windows(forecaster, arrays, origins, sampling, cfg.backtest.batch_size, cache, progress)
    names, origin_ns = origin_keys(arrays, origins)
    real = realised(arrays, origins, cfg.data.predict_window, cfg.backtest.deal_price)
    sf = SplitForecasts(origins, names, origin_ns, fc, real, str(cache.directory))
    clipped = fc.clipped()
    if clipped:
        log.warning(
            "%d of %d forecast closes lay outside the plausible range (the tokenizer's range, at least 1%% of the "
            "lookback mean) and were clipped to it",
            clipped,
            fc.paths.size,
        )
    if checked is not None:  # dtype auto on CUDA: the check that chose the precision
        sf.precision = checked
    elif spec.dtype != "fp32":
        sf.precision = precision_deviation(cfg, arrays, origins, pair, spec, fc)
    return sf


def precision_deviation(
    cfg: Config,
    arrays: DatasetArrays,
    origins: Origins,
    pair: ModelPair,
    spec: ForecastSpec,
    low: WindowForecasts | None = None,
) -> dict:
    """`spec.dtype`'s forecasts against fp32's on a sample of `origins` (`precision.sample_of`), the same seeds,
    both cached: `low` holds the run's forecasts of every origin in that precision, else the sample is forecast
    in it too (the check of `dtype auto`)."""
    idx = sample_of(len(origins))
    sample = origins.subset(idx)

    def forecast(at: ForecastSpec) -> WindowForecasts:
        f = pair.forecaster(at)
        cache = window_cache(cfg, arrays, pair, f, at.sampling)
        return forecast_windows(f, arrays, sample, at.sampling, cfg.backtest.batch_size, cache)

    exact = forecast(spec.replace(dtype="fp32"))
    low = forecast(spec) if low is None else low.subset(idx)
    real = realised(arrays, sample, cfg.data.predict_window, cfg.backtest.deal_price).path
    return deviation(spec.dtype, low, exact, real)
