"""Forecasting a split's windows across processes, GPUs and nodes, through the same launcher as training.

Each window's forecast depends only on its inputs and its own seed, so the windows can be cut into one
contiguous, equally sized shard per worker and forecast anywhere. Every worker writes its forecasts as cache
chunks (atomically, keyed by window) and sends them to rank 0, which stores the ones its cache lacks; the
command that launched the workers then reads every window from the cache and goes on alone (metrics, the
Qlib backtest). A restarted or repeated job finds its finished chunks and forecasts only the rest.

- `--nproc N` / `--gpus N` (with `--nnodes`, `--rdzv-endpoint`, ...): torch elastic starts the workers; on a
  node that does not host rank 0 the command ends after its workers (its shards went to rank 0).
- Under torchrun or srun (RANK and WORLD_SIZE set), every process is a worker; rank 0 continues, the others
  end with `WorkerDone` once their shard has been gathered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from kronos_cli.config import Config
from kronos_cli.core.errors import WorkerDone
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys
from kronos_cli.forecast.cache import ForecastCache
from kronos_cli.forecast.device import resolve_device
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.forecast.windows import WindowForecasts, cache_key, forecast_batch, forecast_windows
from kronos_cli.model.sampling import Sampling
from kronos_cli.records.runs import ModelPair, forecast_cache_dir, load_pair
from kronos_cli.runtime.distributed import Context, Launch, backend_device, launch, process_age, setup, teardown

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def window_cache(cfg: Config, arrays: DatasetArrays, pair: ModelPair, forecaster: KronosPredictor, sampling: Sampling):
    """The forecast cache of this pair, data, sampling, window shape and precision."""
    key = cache_key(
        pair.weights,
        arrays.manifest["config_hash"],
        sampling,
        cfg.data.lookback_window,
        cfg.data.predict_window,
        forecaster.max_context,
        forecaster.clip,
        forecaster.dtype,
    )
    return ForecastCache(forecast_cache_dir(cfg, key), (sampling.paths, cfg.data.predict_window))


def spec_of(forecaster: KronosPredictor, sampling: Sampling, horizon: int) -> ForecastSpec:
    """The spec a worker rebuilds `forecaster` from (its context, clip and precision), with the windows' sampling."""
    f = forecaster
    return ForecastSpec(horizon, f.max_context, f.clip, sampling, dtype=f.dtype, compile=f.compile)


def shard_of(n: int, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s contiguous share of n windows; shares differ in size by at most one."""
    return np.array_split(np.arange(n), world)[rank]


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs: the config, how to load the pair, the windows and how to forecast them (the
    launching process's forecast spec: context, clip, sampling, precision)."""

    cfg: Config
    locator: tuple[str | None, str | None, str | None]  # load_pair's (tokenizer, model, bundle)
    origins: Origins
    forecast: ForecastSpec
    device: str = "auto"
    backend: str | None = None  # "nccl" or "gloo" when the elastic launcher started the worker


def _gather_to_main(ctx: Context, names: np.ndarray, origins: np.ndarray, paths: np.ndarray, cache) -> None:
    """Rank 0 stores the forecasts of every other rank that its cache lacks (no shared disk needed)."""
    parts = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object((names, origins, paths), parts, dst=0)
    if not ctx.is_main:
        return
    cache = ForecastCache(cache.directory, cache.path_shape)  # again: on a shared disk the others' chunks are there
    for rank, (n, o, p) in enumerate(parts or []):
        if rank == 0 or not len(n):
            continue
        found, _ = cache.lookup(n, o)
        if not found.all():
            cache.store(n[~found], o[~found], p[~found])


def _load(job: ShardJob | BatchJob, ctx: Context) -> tuple[ModelPair, KronosPredictor]:
    """A worker's pair and forecaster, as the launching process had them (context, clip, precision)."""
    pair = load_pair(None, *job.locator)
    return pair, pair.forecaster(job.forecast.replace(device=str(ctx.device)))


@record
def forecast_shard(job: ShardJob) -> dict[str, float]:
    """A worker: forecast this rank's shard into the cache, then hand it to rank 0; returns its windows, how
    many came from the cache, and the seconds spent forecasting."""
    ctx = setup(backend_device(job.backend) or resolve_device(job.device), job.backend)
    try:
        return _forecast_shard(job, ctx)
    finally:
        teardown(ctx)


def _forecast_shard(job: ShardJob, ctx: Context) -> dict[str, float]:
    cfg = job.cfg
    arrays = DatasetArrays(cfg.data.dataset_path)
    pair, forecaster = _load(job, ctx)
    cache = window_cache(cfg, arrays, pair, forecaster, job.forecast.sampling)
    mine = job.origins.subset(shard_of(len(job.origins), ctx.rank, ctx.world_size))
    startup = process_age()  # spawn to first forward
    t0 = time.perf_counter()
    fc = forecast_windows(forecaster, arrays, mine, job.forecast.sampling, cfg.backtest.batch_size, cache)
    seconds = time.perf_counter() - t0
    if ctx.distributed:
        names, origin_ns = origin_keys(arrays, mine)
        _gather_to_main(ctx, names, origin_ns, fc.paths, cache)
    log.info("rank %d forecast %d windows in %.1f s (%d from the cache)", ctx.rank, len(mine), seconds, fc.reused)
    return {"windows": len(mine), "reused": fc.reused, "seconds": seconds, "startup": startup or 0.0}


class CacheWatcher:
    """While workers run: windows/s and time left from the cache chunks they write (every worker's, on a
    shared disk; this node's otherwise), reported through `progress` about once a second."""

    def __init__(self, cache: ForecastCache, origins: Origins, arrays: DatasetArrays, progress: Progress | None):
        self.cache, self.progress, self.total = cache, progress, len(origins)
        names, origin_ns = origin_keys(arrays, origins)
        found, _ = cache.lookup(names, origin_ns)
        self.base = int(found.sum())
        self.seen = set(cache.directory.glob("chunk_*.npz"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kronos-shard-progress", daemon=True)

    def __enter__(self) -> CacheWatcher:
        if self.progress is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _new_windows(self) -> int:
        done = 0
        for chunk in set(self.cache.directory.glob("chunk_*.npz")) - self.seen:
            try:
                with np.load(chunk, allow_pickle=False) as z:
                    done += len(z["names"])
            except Exception:  # still being renamed into place, or unreadable: counted once readable
                continue
        return done

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            done = min(self.total, self.base + self._new_windows())
            self.progress(done, self.total, f"{done:,}/{self.total:,} windows (all workers)")


def forecast_everywhere(
    cfg: Config,
    arrays: DatasetArrays,
    origins: Origins,
    pair: ModelPair,
    forecaster: KronosPredictor,
    sampling: Sampling,
    launch_opts: Launch | None,
    progress: Progress | None = None,
) -> dict[int, dict[str, float]]:
    """Fill the cache with `origins`' forecasts by many workers, when a launcher or torchrun asks for them;
    returns each local worker's figures (rank -> windows, reused, seconds, startup: from its spawn to
    its first forward; empty when none ran). Raises
    `WorkerDone` in a process whose share is done and that does not carry on (not rank 0)."""
    job = ShardJob(cfg, pair.locator, origins, spec_of(forecaster, sampling, cfg.data.predict_window))
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    if torchrun and not dist.is_initialized():  # started by torchrun or srun (not inside a training job's group)
        job = replace(job, device=str(forecaster.device))
        mine = forecast_shard(job)
        if os.environ["RANK"] != "0":
            raise WorkerDone(f"rank {os.environ['RANK']}: its windows are with rank 0")
        return {0: mine}
    if launch_opts is None or not launch_opts.uses_launcher:
        return {}
    job = replace(job, backend="nccl" if launch_opts.gpus else "gloo")
    t0 = time.perf_counter()
    with CacheWatcher(window_cache(cfg, arrays, pair, forecaster, sampling), origins, arrays, progress):
        results = launch(forecast_shard, job, launch_opts)
    done = sum(r["windows"] - r["reused"] for r in results.values())
    slowest = max((r["seconds"] for r in results.values()), default=0.0)
    log.info(
        "%d workers forecast %d windows in %.1f s (%.1f s forecasting: %.1f windows/s on this node)",
        launch_opts.workers_per_node * launch_opts.nnodes,
        len(origins),
        time.perf_counter() - t0,
        slowest,
        done / slowest if slowest else 0.0,
    )
    if 0 not in results:
        raise WorkerDone(f"this node's workers forecast {sum(r['windows'] for r in results.values()):,} windows")
    return results


@dataclass(frozen=True)
class BatchJob:
    """Windows given as arrays (not in a prepared dataset): raw lookback bars, stamps and seeds."""

    locator: tuple[str | None, str | None, str | None]
    x: np.ndarray  # (B, L, 6)
    stamps: np.ndarray  # (B, L + P, 5)
    seeds: list[int]
    forecast: ForecastSpec
    backend: str | None = None


@record
def forecast_batch_shard(job: BatchJob) -> WindowForecasts | None:
    """A worker: forecast this rank's share of the windows; rank 0 returns all of them, in order."""
    ctx = setup(backend_device(job.backend) or resolve_device("auto"), job.backend)
    try:
        _, forecaster = _load(job, ctx)
        idx = shard_of(len(job.x), ctx.rank, ctx.world_size)
        f = job.forecast
        mine = forecast_batch(
            forecaster, job.x[idx], job.stamps[idx], [job.seeds[i] for i in idx], f.sampling, f.horizon
        )
        if not ctx.distributed:
            return mine
        parts = [None] * ctx.world_size if ctx.is_main else None
        dist.gather_object(mine, parts, dst=0)
        return WindowForecasts.concat(parts) if ctx.is_main else None
    finally:
        teardown(ctx)


def forecast_batch_everywhere(
    pair: ModelPair,
    forecaster: KronosPredictor,
    x: np.ndarray,
    stamps: np.ndarray,
    seeds: list[int],
    sampling: Sampling,
    predict: int,
    launch_opts: Launch | None = None,
) -> WindowForecasts:
    """`forecast_batch` of these windows, by the launcher's workers when `launch_opts` asks for several."""
    if launch_opts is None or not launch_opts.uses_launcher:
        return forecast_batch(forecaster, x, stamps, seeds, sampling, predict)
    forecast = spec_of(forecaster, sampling, predict)
    job = BatchJob(pair.locator, x, stamps, seeds, forecast, "nccl" if launch_opts.gpus else "gloo")
    results = launch(forecast_batch_shard, job, launch_opts)
    if 0 not in results:
        raise WorkerDone("this node's workers forecast their windows; rank 0 continues")
    return results[0]
