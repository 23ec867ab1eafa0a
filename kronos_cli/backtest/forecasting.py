"""Forecasting every test window in large batches, chunked and cached so that an interrupted run resumes.

The cache key covers the weights of both models, the dataset, the sampling settings and the seed; chunk i
is sampled with seed + i, so a chunk's forecasts do not depend on which other chunks came from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kronos_cli.bars import EPS
from kronos_cli.config import Config
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.io import atomic_path

log = logging.getLogger(__name__)
CLOSE = 3


@dataclass
class TestForecasts:
    """Per test window: forecast close paths (N, S, P) and what was observed, all in normalised units."""

    paths: np.ndarray  # (N, S, P) forecast close
    last_close: np.ndarray  # (N,) last observed close
    realised: np.ndarray  # (N, P) realised close over the horizon
    close_mean: np.ndarray  # (N,) lookback mean of the raw close (to turn units into prices)
    close_std: np.ndarray  # (N,)
    origin: np.ndarray  # (N,) int64 ns: the last observed bar's time
    symbol: np.ndarray  # (N,) symbol index
    reused_chunks: int = 0


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(weights: tuple[Path, ...], cfg: Config, manifest_hash: str) -> str:
    b = cfg.backtest
    parts = {
        "weights": [file_digest(w) for w in weights],
        "data": manifest_hash,
        "sampling": [b.temperature, b.top_p, b.top_k, b.sample_count],
        "seed": cfg.seed,
        "max_context": cfg.data.max_context,
        "batch": b.batch_size,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def forecast_test_split(
    cfg: Config, predictor: KronosPredictor, cache_dir: Path, progress: Callable[[int, int, str], None] | None = None
) -> TestForecasts:
    b = cfg.backtest
    ds = WindowDataset(cfg.data.dataset_path, "test", cfg.data.lookback_window, cfg.data.predict_window)
    look, pred = ds.lookback, cfg.data.predict_window
    n = len(ds)
    cache_dir.mkdir(parents=True, exist_ok=True)
    chunks = range(0, n, b.batch_size)
    paths = np.empty((n, b.sample_count, pred), np.float32)
    reused = 0
    for k, start in enumerate(chunks):
        idx = np.arange(start, min(start + b.batch_size, n))
        file = cache_dir / f"chunk_{k:05d}.npy"
        if file.is_file():
            paths[idx] = np.load(file, allow_pickle=False)
            reused += 1
        else:
            x, stamp = ds.__getitems__(idx)
            out = predictor.forecast_normalised(
                x[:, :look],
                stamp[:, :look],
                stamp[:, look : look + pred],
                pred,
                T=b.temperature,
                top_k=b.top_k,
                top_p=b.top_p,
                sample_count=b.sample_count,
                seed=cfg.seed + k,
            )
            paths[idx] = out[..., CLOSE]
            with atomic_path(file) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, paths[idx], allow_pickle=False)
        if progress:
            progress(min(start + b.batch_size, n), n, f"{min(start + b.batch_size, n):,}/{n:,} windows")
    if reused:
        log.info("reused %d cached forecast chunk(s) of %d from %s", reused, len(chunks), cache_dir)
    starts = ds.index[:, 0]
    rows = starts[:, None] + np.arange(ds.window)
    raw_close = np.asarray(ds.arrays.features[rows][..., CLOSE], dtype=np.float64)  # (N, W)
    hist = raw_close[:, :look]
    mean, std = hist.mean(axis=1), hist.std(axis=1)
    norm = np.clip((raw_close - mean[:, None]) / (std[:, None] + EPS), -ds.clip, ds.clip)
    return TestForecasts(
        paths=paths,
        last_close=norm[:, look - 1].astype(np.float32),
        realised=norm[:, look : look + pred].astype(np.float32),
        close_mean=mean,
        close_std=std,
        origin=np.asarray(ds.arrays.timestamps[starts + look - 1]),
        symbol=np.asarray(ds.index[:, 1]),
        reused_chunks=reused,
    )
