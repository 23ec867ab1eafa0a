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
from scipy.stats import spearmanr

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.tables import Table, num, pct
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
    """How a split is forecast: the precision, and the workers (`--nproc`, `--gpus`, nodes; None: this one)."""

    dtype: str = "fp32"
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
    spec = pair.resolve(cfg, sampling=sampling or sampling_of(cfg), dtype=scale.dtype, device=device)
    forecaster, sampling = pair.forecaster(spec), spec.sampling
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
    if spec.dtype != "fp32":
        sf.precision = precision_deviation(cfg, arrays, sf, pair, spec)
    return sf


PRECISION_SAMPLE = 256  # windows forecast again in fp32 to measure what bf16/fp16 changed


def precision_deviation(
    cfg: Config, arrays: DatasetArrays, sf: SplitForecasts, pair: ModelPair, spec: ForecastSpec
) -> dict:
    """How far `dtype`'s forecasts are from fp32's on up to PRECISION_SAMPLE evenly spread windows (forecast in
    fp32 with the same seeds, and cached): returns are fractions of the last close, the signal is the mean
    forecast return at the horizon."""
    n = len(sf.origins)
    idx = np.unique(np.linspace(0, n - 1, min(PRECISION_SAMPLE, n)).astype(np.int64))
    exact, sampling, dtype = pair.forecaster(spec.replace(dtype="fp32")), spec.sampling, spec.dtype
    cache = window_cache(cfg, arrays, pair, exact, sampling)
    ref = forecast_windows(exact, arrays, sf.origins.subset(idx), sampling, cfg.backtest.batch_size, cache)
    low, high = sf.forecasts.subset(idx).return_paths().mean(axis=1), ref.return_paths().mean(axis=1)
    real = sf.real.path[idx]
    known = np.isfinite(real)
    mae_low, mae_high = float(np.abs(low - real)[known].mean()), float(np.abs(high - real)[known].mean())
    corr = spearmanr(low[:, -1], high[:, -1]).statistic if len(idx) > 2 else float("nan")
    return {
        "dtype": dtype,
        "windows": int(len(idx)),
        "units": "forecast returns, fraction of the last close; signal = mean forecast return at the horizon",
        "mean_abs_forecast_diff": float(np.abs(low - high).mean()),
        "mae_fp32": mae_high,
        f"mae_{dtype}": mae_low,
        "mae_difference": mae_low - mae_high,
        "signal_rank_correlation": float(corr),
    }


def precision_table(p: dict) -> Table:
    """What forecasting in bf16/fp16 changed, against fp32 on a sample of the same windows."""
    t = Table(
        f"Precision: {p['dtype']} against fp32 on {p['windows']:,} windows",
        ["mean |diff|", "MAE fp32", f"MAE {p['dtype']}", "MAE change", "signal rank corr."],
        caption=p["units"],
    )
    t.add(
        pct(p["mean_abs_forecast_diff"], 3),
        pct(p["mae_fp32"], 3),
        pct(p[f"mae_{p['dtype']}"], 3),
        pct(p["mae_difference"], 3),
        num(p["signal_rank_correlation"], 4),
    )
    return t
