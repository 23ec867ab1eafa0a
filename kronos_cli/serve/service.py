"""The forecasting service behind the HTTP API: request checks, dynamic batching onto the model, responses."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import pandas as pd

from kronos_cli import __version__
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import json_floats
from kronos_cli.forecast.calibrated import Calibration, bar_quantiles
from kronos_cli.forecast.candles import mended, plausible
from kronos_cli.forecast.predictor import KronosPredictor, SeriesJob
from kronos_cli.forecast.spec import resolve_sampling
from kronos_cli.market.bars import FEATURES, features, reconcile_candles
from kronos_cli.market.sessions import future_timestamps
from kronos_cli.market.stamps import calendar_features
from kronos_cli.metrics.recalibration import BandCorrection
from kronos_cli.model.sampling import GREEDY
from kronos_cli.runtime.environment import package_version
from kronos_cli.serve.batcher import Abandoned, DynamicBatcher
from kronos_cli.serve.schema import ForecastRequest


class RequestError(KronosError):
    """A request the service cannot answer; `field` names the offending part of the body."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; checked before a request joins a batch."""

    min_bars: int = 16
    max_pred_len: int = 512
    max_samples: int = 100
    max_series: int = 256  # per /v1/forecast/batch call
    max_body_bytes: int = 8 * 2**20

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                raise KronosError(f"{f.name} must be >= 1, got {getattr(self, f.name)}", setting=f.name)
        if self.min_bars < 2:
            raise KronosError(
                f"min_bars must be >= 2 (the bar spacing needs two bars), got {self.min_bars}", setting="min_bars"
            )


@dataclass(frozen=True)
class Batching:
    """How requests share the model: batch size and wait, the queue bound, the deadline and the long lane."""

    max_batch: int = 64  # sample paths (series x samples) forecast together
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for others
    max_queue: int = 1024  # sample paths waiting; more answers 429 (a call is always admitted to an empty queue)
    request_timeout_s: float = 60.0  # waiting plus running; longer answers 504 and the work is dropped
    long_horizon: int = 128  # requests forecasting more bars take the long lane (served in turn with the short)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "long_horizon"):
            if getattr(self, name) < 1:
                raise KronosError(f"{name} must be >= 1, got {getattr(self, name)}", setting=name)
        if not (self.max_wait_ms >= 0 and math.isfinite(self.max_wait_ms)):
            raise KronosError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}", setting="max_wait_ms")
        if not (self.request_timeout_s > 0 and math.isfinite(self.request_timeout_s)):
            raise KronosError(
                f"request_timeout_s must be > 0 seconds, got {self.request_timeout_s}", setting="request_timeout_s"
            )


def describe_sampling(calibration: Calibration | None) -> dict[str, Any]:
    """The sampling of requests that do not choose theirs: the reference's, or a calibrated file's (whose bands
    every answer's close quantiles are read through)."""
    default = resolve_sampling(calibration=calibration)
    return {
        "temperature": default.temperature,
        "top_p": default.top_p,
        "source": f"calibrated: {calibration.path}" if calibration else "the reference's defaults",
        "bands": calibration.bands.describe() if calibration and calibration.bands is not None else None,
    }


@dataclass(frozen=True)
class Prepared:
    """A checked request: the model's job plus what its answer needs."""

    request: ForecastRequest
    job: SeriesJob
    future: pd.DatetimeIndex
    tz: tzinfo | None
    where: str = ""
    input_repaired: int = 0  # lookback bars widened into candles (`bars.reconcile_candles`)


_EPOCH, _MICROSECOND = datetime(1970, 1, 1), timedelta(microseconds=1)


def _timestamps(req: ForecastRequest, where: str) -> tuple[np.ndarray, tzinfo | None]:
    """Strictly increasing naive datetime64 stamps (aware ones in the last bar's zone) and that zone."""
    stamps = [b.timestamp for b in req.bars]
    tz = stamps[-1].tzinfo
    naive = []
    for i, t in enumerate(stamps):
        if (t.tzinfo is None) != (tz is None):
            raise RequestError(
                f"{where}bars[{i}].timestamp",
                "mixes timezone-aware and naive timestamps; give every bar an offset or none",
            )
        try:
            naive.append(t.astimezone(tz).replace(tzinfo=None) if tz is not None else t)
        except OverflowError:  # an offset that moves a bar past year 1 or 9999
            raise RequestError(
                f"{where}bars[{i}].timestamp",
                f"{t.isoformat()} in the last bar's offset lies outside 0001-9999; timestamps must lie between "
                "1677-09-22 and 2262-04-11 (pandas' nanosecond range)",
            ) from None
    # Microseconds since 1970 in Python, then viewed as datetime64[us] (a parsed datetime carries no finer
    # resolution): numpy's own conversion of datetime objects holds the GIL for ~170 ms per 90,000 bars.
    wall = np.array([(t - _EPOCH) // _MICROSECOND for t in naive], dtype=np.int64).view("datetime64[us]")
    diffs = np.diff(wall.astype(np.int64))
    if (diffs <= 0).any():
        row = int(np.argmax(diffs <= 0)) + 1
        what = "duplicates the bar before it" if diffs[row - 1] == 0 else "is earlier than the bar before it"
        raise RequestError(
            f"{where}bars[{row}].timestamp",
            f"{pd.Timestamp(wall[row])} {what}; bars must be sorted by time with no duplicates",
        )
    return wall, tz


def _optional_column(req: ForecastRequest, name: str, where: str) -> np.ndarray | None:
    values = [getattr(b, name) for b in req.bars]
    missing = [v is None for v in values]
    if all(missing):
        return None
    if any(missing):
        row = missing.index(True)
        raise RequestError(
            f"{where}bars[{row}].{name}", f"missing while other bars give {name}; give it for every bar or for none"
        )
    return np.array(values, dtype=np.float64)


def prepare(
    req: ForecastRequest,
    limits: Limits,
    max_context: int,
    where: str = "",
    default_lookback: int | None = None,
    calibration: Calibration | None = None,
    calendar: str | None = None,
) -> Prepared:
    """Check a request against the limits and turn it into a `SeriesJob`; `where` prefixes field names; the
    forecast's timestamps continue on `calendar` (else on the sessions the bars show)."""
    n = len(req.bars)
    if n < limits.min_bars:
        raise RequestError(f"{where}bars", f"{n} bar(s) given; the server needs at least {limits.min_bars}")
    if req.pred_len > limits.max_pred_len:
        raise RequestError(
            f"{where}pred_len", f"{req.pred_len} is above this server's limit of {limits.max_pred_len} (max_pred_len)"
        )
    if req.samples > limits.max_samples:
        raise RequestError(
            f"{where}samples", f"{req.samples} is above this server's limit of {limits.max_samples} (max_samples)"
        )
    wall, tz = _timestamps(req, where)
    prices = np.array([(b.open, b.high, b.low, b.close) for b in req.bars], dtype=np.float64)
    volume, amount = _optional_column(req, "volume", where), _optional_column(req, "amount", where)
    try:
        x = features(prices, volume, amount, "the request")
    except KronosError as exc:
        raise RequestError(f"{where}bars", str(exc)) from None
    used = min(req.lookback or default_lookback or n, n, max_context)
    try:
        x, repaired = reconcile_candles(x[-used:], req.bad_candles, f"the lookback (the last {used} bars)")
    except KronosError as exc:
        raise RequestError(f"{where}bars", str(exc)) from None
    hist = wall[-used:]
    try:
        future = future_timestamps(hist, req.pred_len, calendar)
        stamps = calendar_features(hist), calendar_features(future)
    except KronosError as exc:
        raise RequestError(f"{where}bars", str(exc)) from None
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise RequestError(
            f"{where}bars",
            "timestamps must lie between 1677-09-22 and 2262-04-11 (pandas' nanosecond range), the forecast's too",
        ) from None
    sampling = resolve_sampling(
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        paths=req.samples,
        seed=req.seed,
        calibration=calibration,
    )
    # The bars the model uses live on in `job`, copied in their memory order (a slice would keep every bar's
    # features alive), and the request keeps none (about 1 KB of Python objects each): a request waiting for the
    # model holds only what its forecast needs, however many bars it sent.
    job = SeriesJob(x.copy(order="K"), *stamps, sampling)
    return Prepared(req.model_copy(update={"bars": []}), job, future, tz, where, repaired)


def quantile_key(q: float) -> str:
    return f"{q:g}"


def _bars_json(stamps: list[str], values: np.ndarray) -> list[dict[str, Any]]:
    return [dict(zip(FEATURES, row), timestamp=t) for t, row in zip(stamps, json_floats(values))]


def respond(p: Prepared, paths: np.ndarray, clip: float, bands: BandCorrection | None = None) -> dict[str, Any]:
    """The JSON answer (see `ForecastResponse`) for sample paths (S, P, 6) of a prepared request, bounded to the
    plausible range of the tokenizer's `clip`; with `bands`, the close's quantiles are the bands'."""
    if not np.isfinite(paths).all():  # float32 normalisation overflows for values beyond about 1e19
        raise RequestError(
            f"{p.where}bars",
            "the forecast overflowed float32: the values are too large to "
            "normalise; scale them down (e.g. volume in lots, amount in thousands)",
        )
    future = p.future.tz_localize(p.tz) if p.tz is not None else p.future
    stamps = [t.isoformat() for t in future]
    req = p.request
    paths, clipped = plausible(paths, p.job.x, clip)
    paths, repaired = mended(paths, req.raw)
    quantiles = bar_quantiles(paths, req.quantiles, bands, req.raw)
    return {
        "bars": _bars_json(stamps, paths.mean(axis=0)),
        "quantiles": {quantile_key(q): _bars_json(stamps, v) for q, v in zip(req.quantiles, quantiles)},
        "lookback": len(p.job.x),
        "pred_len": req.pred_len,
        "samples": req.samples,
        "seed": req.seed,
        "repaired_bars": repaired,
        "input_bars_repaired": p.input_repaired,
        "clipped_values": clipped,
    }


def _parameters(module) -> int:
    return sum(t.numel() for t in module.parameters())


class ForecastService:
    """Owns the forecaster and the batcher; the HTTP layer only parses, authenticates and answers."""

    def __init__(
        self,
        forecaster: KronosPredictor,
        limits: Limits,
        batching: Batching = Batching(),
        sources: dict[str, str] | None = None,
        default_lookback: int | None = None,
        calibration: Calibration | None = None,
        calendar: str | None = None,
    ):
        self.forecaster, self.limits, self.batching = forecaster, limits, batching
        self.sources = sources or {}
        self.default_lookback = default_lookback  # the lookback the model was trained with, when it records one
        self.calibration = calibration  # the sampling.json whose choice and bands requests get by default
        self.calendar = calendar  # forecast timestamps continue on this market calendar (None: the bars' sessions)
        # A batch holds up to max_batch sample paths (rows of the model's batch): memory follows rows.
        self.batcher: DynamicBatcher[Prepared, np.ndarray] = DynamicBatcher(
            self._run,
            batching.max_batch,
            batching.max_wait_ms / 1e3,
            weight=lambda p: p.job.sampling.paths,
            lane=lambda p: int(p.request.pred_len > batching.long_horizon),
            max_queue=batching.max_queue,
            timeout_s=batching.request_timeout_s,
        )
        self.started = time.time()
        self.requests = 0
        self.rejected = 0  # answered 4xx for the request's content
        self.disconnected = 0  # callers that went away before their answer

    def _run(self, items: list[Prepared], abandoned) -> list[np.ndarray]:
        def check(_step: int, _steps: int) -> None:
            if abandoned():
                raise Abandoned("every caller of this batch went away")

        return self.forecaster.forecast_jobs([p.job for p in items], progress=check)

    def warm_up(self) -> None:
        """One small forecast, so that a broken device fails at start and the first caller waits no longer."""
        bars = np.linspace(1.0, 2.0, 32, dtype=np.float32)[:, None].repeat(6, axis=1)
        stamps = calendar_features(pd.date_range("2024-01-01", periods=34, freq="D"))
        self.forecaster.forecast_jobs([SeriesJob(bars, stamps[:32], stamps[32:], GREEDY)])

    async def start(self) -> None:
        await asyncio.to_thread(self.warm_up)
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def forecast(self, requests: Sequence[ForecastRequest], batch_call: bool = False) -> list[dict[str, Any]]:
        """Answers to requests, in order; a RequestError names the field (prefixed `requests[i].` in a batch call)."""
        return await self.answer(self.check(requests, batch_call))

    def check(self, requests: Sequence[ForecastRequest], batch_call: bool = False) -> list[Prepared]:
        """The requests checked and turned into the model's jobs (no I/O: the HTTP layer runs it on a thread)."""
        if batch_call and len(requests) > self.limits.max_series:
            raise RequestError(
                "requests",
                f"{len(requests)} series in one call; this server takes at most {self.limits.max_series} (max_series)",
            )
        ctx = self.forecaster.max_context
        return [
            prepare(
                r,
                self.limits,
                ctx,
                f"requests[{i}]." if batch_call else "",
                self.default_lookback,
                self.calibration,
                self.calendar,
            )
            for i, r in enumerate(requests)
        ]

    async def answer(self, prepared: list[Prepared]) -> list[dict[str, Any]]:
        """The answers to checked requests, once the model has run them."""
        paths = await self.batcher.submit(prepared)
        bands = self.calibration.bands if self.calibration else None
        return [respond(p, x, self.forecaster.clip, bands) for p, x in zip(prepared, paths)]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "uptime_s": round(time.time() - self.started, 3),
            "device": str(self.forecaster.device),
            "requests": self.requests,
            "rejected": self.rejected,
            "disconnected": self.disconnected,
            "queued": self.batcher.queued,
            "queued_paths": self.batcher.waiting_weight,
            "max_queue": self.batching.max_queue,
            "batching": self.batcher.stats.as_dict(),
        }

    def model_info(self) -> dict[str, Any]:
        p = self.forecaster
        return {
            "tokenizer": {
                "source": self.sources.get("tokenizer", ""),
                "parameters": _parameters(p.tokenizer),
                "config": dataclasses.asdict(p.tokenizer.config),
            },
            "model": {
                "source": self.sources.get("model", ""),
                "parameters": _parameters(p.model),
                "config": dataclasses.asdict(p.model.config),
            },
            "device": str(p.device),
            "max_context": p.max_context,
            "clip": p.clip,
            "features": list(FEATURES),
            "batching": dataclasses.asdict(self.batching),
            "limits": dataclasses.asdict(self.limits),
            "sampling": describe_sampling(self.calibration),
            "versions": {
                "kronos_cli": __version__,
                "python": sys.version.split()[0],
                **{d: package_version(d) for d in ("torch", "numpy", "fastapi", "uvicorn", "pydantic")},
            },
        }
