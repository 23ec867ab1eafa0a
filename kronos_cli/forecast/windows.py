"""Forecasting many prepared windows: per-window seeds, batches, and a cache that survives interruptions.

Each window's sample paths depend only on its inputs, the models, the sampling settings and a seed derived from
(seed, symbol, origin time): not on the batch size, the order of windows or which of them came from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kronos_cli.core.io import file_digest
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, gather, origin_keys
from kronos_cli.forecast.cache import ForecastCache
from kronos_cli.forecast.candles import price_bounds
from kronos_cli.forecast.memory import auto_batch_size
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.market.bars import EPS, FEATURES, normalise_lookback
from kronos_cli.model.sampling import Sampling

log = logging.getLogger(__name__)
CLOSE = FEATURES.index("close")
Progress = Callable[[int, int, str], None]


def window_seed(seed: int, symbol: str, origin_ns: int) -> int:
    """The sampling seed of one window, fixed by (seed, symbol, origin time) alone."""
    digest = hashlib.sha256(f"{seed}|{symbol}|{int(origin_ns)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


ENGINE_VERSION = 3  # 3: batch-invariant products (model/invariant.py) round otherwise than version 2's


def cache_key(
    weights: tuple[Path, ...],
    data_hash: str,
    sampling: Sampling,
    lookback: int,
    predict: int,
    max_context: int,
    clip: float,
    dtype: str = "fp32",
) -> str:
    """Everything a cached forecast depends on: the weights' bytes, the data, the sampling, the window shape, the
    precision of the arithmetic and the engine's version."""
    parts = {
        "weights": [file_digest(w) for w in weights],
        "data": data_hash,
        # named as before the sampling types were one, so that earlier runs' cached forecasts stay found
        "sampling": {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "sample_count": sampling.paths,
            "seed": sampling.seed,
        },
        "lookback": lookback,
        "predict": predict,
        "max_context": max_context,
        "clip": clip,
        "paths": "close",
        **({"dtype": dtype} if dtype != "fp32" else {}),
        # The engine's arithmetic: each version rounds differently from the one before, which can flip a sampled
        # token; one version's cached forecasts are not mixed with another's.
        "engine": ENGINE_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


WINDOW_FIELDS = ("paths", "last", "mean", "std", "last_close")  # the per-window arrays of WindowForecasts


@dataclass
class WindowForecasts:
    """Forecast close paths of signal windows in the model's units, and what turns them into prices."""

    paths: np.ndarray  # (N, S, P) float32: forecast close, normalised with the window's lookback statistics
    last: np.ndarray  # (N,) float32: the last lookback close in the same units (what the model saw)
    mean: np.ndarray  # (N,) lookback mean of the close
    std: np.ndarray  # (N,) lookback std of the close
    last_close: np.ndarray  # (N,) float64: the last close in prices
    reused: int = 0  # windows that came from the cache
    clip: float = 5.0  # the tokenizer's range in these units: what `price_paths` bounds the forecasts to

    @classmethod
    def concat(cls, parts: list[WindowForecasts]) -> WindowForecasts:
        """The windows of `parts`, in order (shards forecast by several workers)."""
        joined = [np.concatenate([getattr(p, f) for p in parts]) for f in WINDOW_FIELDS]
        return cls(*joined, reused=sum(p.reused for p in parts), clip=parts[0].clip)

    def subset(self, index: np.ndarray) -> WindowForecasts:
        return WindowForecasts(*(getattr(self, f)[index] for f in WINDOW_FIELDS), clip=self.clip)

    def _unbounded(self) -> np.ndarray:
        return self.paths * (self.std[:, None, None] + EPS) + self.mean[:, None, None]

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        bottom, top = price_bounds(self.mean.astype(np.float64), self.std.astype(np.float64), self.clip, True)
        return bottom[:, None, None], top[:, None, None]

    def price_paths(self) -> np.ndarray:
        """(N, S, P) forecast close in prices, inside the plausible range (`candles.plausible`)."""
        return np.clip(self._unbounded(), *self._bounds())

    def clipped(self) -> int:
        """How many forecast closes lay outside the plausible range (and were clipped to it)."""
        raw, (bottom, top) = self._unbounded(), self._bounds()
        return int(np.count_nonzero((raw < bottom) | (raw > top)))

    def return_paths(self) -> np.ndarray:
        """(N, S, P) forecast close as a return on the last close."""
        return self.price_paths() / self.last_close[:, None, None] - 1


def forecast_batch(
    forecaster: KronosPredictor, x: np.ndarray, stamps: np.ndarray, seeds: list[int], sampling: Sampling, predict: int
) -> WindowForecasts:
    """Forecast raw lookback bars x (B, L, 6) with stamps (B, L + P, 5), each window with its own seed."""
    x = np.ascontiguousarray(x, dtype=np.float32)  # one memory layout, one summation order: the same statistics
    look = x.shape[1]
    xn, mean, std = normalise_lookback(x, forecaster.clip)
    paths = forecaster.forecast_normalised(xn, stamps[:, :look], stamps[:, look:], predict, sampling, seeds=seeds)
    paths = paths[..., CLOSE]
    return WindowForecasts(
        paths,
        xn[:, -1, CLOSE],
        mean[:, 0, CLOSE],
        std[:, 0, CLOSE],
        x[:, -1, CLOSE].astype(np.float64),
        clip=forecaster.clip,
    )


def forecast_windows(
    forecaster: KronosPredictor,
    arrays: DatasetArrays,
    origins: Origins,
    sampling: Sampling,
    batch_size: int | str,
    cache: ForecastCache | None = None,
    progress: Progress | None = None,
) -> WindowForecasts:
    """Forecasts of a dataset's signal windows, batch by batch (`batch_size` windows, or "auto": what the free
    memory holds); cached windows are not forecast again."""
    look, pred = arrays.manifest["lookback_window"], arrays.manifest["predict_window"]
    n, s = len(origins), sampling.paths
    if batch_size == "auto":
        batch_size = auto_batch_size(forecaster, look, pred, s)
    names, origin_ns = origin_keys(arrays, origins)
    out = WindowForecasts(
        np.empty((n, s, pred), np.float32),
        np.empty(n, np.float32),
        np.empty(n, np.float32),
        np.empty(n, np.float32),
        np.empty(n, np.float64),
        clip=forecaster.clip,
    )
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        x, stamps = gather(arrays, origins.rows[idx], look, pred)
        xn, mean, std = normalise_lookback(x, forecaster.clip)
        out.last[idx], out.mean[idx], out.std[idx] = xn[:, -1, CLOSE], mean[:, 0, CLOSE], std[:, 0, CLOSE]
        out.last_close[idx] = x[:, -1, CLOSE]
        found = np.zeros(len(idx), dtype=bool)
        if cache is not None:
            found, paths = cache.lookup(names[idx], origin_ns[idx])
            out.paths[idx[found]] = paths
            out.reused += int(found.sum())
        todo = idx[~found]
        if len(todo):
            seeds = [window_seed(sampling.seed, names[i], origin_ns[i]) for i in todo]
            got = forecast_batch(forecaster, x[~found], stamps[~found], seeds, sampling, pred).paths
            out.paths[todo] = got
            if cache is not None:
                cache.store(names[todo], origin_ns[todo], got)
        if progress:
            progress(int(idx[-1]) + 1, n, f"{int(idx[-1]) + 1:,}/{n:,} windows")
    if out.reused:
        log.info("reused %d cached forecasts of %d", out.reused, n)
    return out
