"""KronosPredictor: price bars in, forecast bars out (normalisation, stamps, tokenizer, engine).

The reference's `KronosPredictor` API (`predict`, `predict_batch`) plus sample paths, normalised-unit forecasts for
prepared windows, and `forecast_jobs` for series that each carry their own sampling and seed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.device import resolve_device
from kronos_cli.market.bars import FEATURES, denormalise, normalise_lookback, prepare_frame
from kronos_cli.market.stamps import calendar_features
from kronos_cli.model.bundle import load_bundle
from kronos_cli.model.compiled import DecodePlan, cache_is_warm, check_compile, decode_plan
from kronos_cli.model.config import DEFAULT_CONTEXT, check_pair
from kronos_cli.model.engine import BufferPool, decode_windows, generate, path_counts
from kronos_cli.model.invariant import batch_invariant
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.sampling import RowSampler, Sampling
from kronos_cli.model.tokenizer import KronosTokenizer

log = logging.getLogger(__name__)


@dataclass
class Forecast:
    """De-normalised forecasts: `samples` (B, S, P, 6) paths and their `mean` (B, P, 6)."""

    samples: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=1)

    def quantile(self, q: float) -> np.ndarray:
        return np.quantile(self.samples, q, axis=1)


@dataclass(frozen=True)
class SeriesJob:
    """One series of a mixed batch: raw bars x (L, 6), stamps x_stamp (L, 5) and y_stamp (P, 5), own sampling
    (its paths and seed included)."""

    x: np.ndarray
    x_stamp: np.ndarray
    y_stamp: np.ndarray
    sampling: Sampling = Sampling()

    @property
    def shape(self) -> tuple[int, int]:
        """(history length, horizon, paths): what series must share to batch together."""
        return len(self.x), len(self.y_stamp), self.sampling.paths


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_dtype(name: str) -> str:
    """A forecasting precision by name, or a one-line error listing them."""
    if name not in DTYPES:
        raise KronosError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}", setting="dtype")
    return name


class KronosPredictor:
    """Forecast OHLCV bars with a tokenizer and a predictor (the reference's API, plus sample paths).

    `max_context` is the longest token sequence the predictor attends to (longer histories slide, longer horizons
    decode in windows); `clip` bounds the normalised bars. `dtype` ("fp32", the exact default; "bf16" or "fp16")
    is the precision of the models' matrix products (torch autocast); sampling, normalisation and the returned
    bars stay float32. All four are fixed at construction (read-only attributes): another setting is another
    predictor, built with `with_dtype` or from a `ForecastSpec` (`forecast/spec.py`).
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device | None = None,
        max_context: int = DEFAULT_CONTEXT,
        clip: float = 5,
        dtype: str = "fp32",
        compile: str | bool = "auto",
    ):
        check_pair(tokenizer.config, model.config)
        self._device = resolve_device(device)
        self.model = model.to(self._device).eval()
        self.tokenizer = tokenizer.to(self._device).eval()
        self._max_context, self._clip, self._dtype = int(max_context), float(clip), check_dtype(dtype)
        self._compile = check_compile(compile)
        self._local = threading.local()  # each thread's BufferPool: the last forecast's caches, lent to the next

    device = property(lambda self: self._device, doc="where the models run (torch.device)")
    max_context = property(lambda self: self._max_context, doc="the longest token sequence the predictor sees")
    clip = property(lambda self: self._clip, doc="the normalised bars' bound (the tokenizer's range)")
    dtype = property(lambda self: self._dtype, doc='the precision of the matrix products: "fp32", "bf16", "fp16"')
    compile = property(lambda self: self._compile, doc='the decode step compiled: "auto", "on", "off"')

    def with_dtype(self, dtype: str) -> KronosPredictor:
        """This predictor's models and settings at another precision (the same modules: no copy of the weights)."""
        if check_dtype(dtype) == self._dtype:
            return self
        return KronosPredictor(
            self.model, self.tokenizer, self._device, self._max_context, self._clip, dtype, self._compile
        )

    @classmethod
    def from_pretrained(
        cls, tokenizer: str, model: str, device: str | None = None, max_context: int = DEFAULT_CONTEXT, clip: float = 5
    ) -> KronosPredictor:
        tok = KronosTokenizer.from_pretrained(tokenizer)
        return cls(Kronos.from_pretrained(model), tok, device, max_context, clip)

    @classmethod
    def from_bundle(cls, path: str, device: str | None = None) -> KronosPredictor:
        """A predictor from a `kronos export` bundle (one file, loaded with weights_only=True)."""
        tok, model, norm = load_bundle(path)
        return cls(model, tok, device, max_context=norm.max_context, clip=norm.clip)

    def _generator(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    @torch.no_grad()
    def forecast_normalised(
        self,
        x: np.ndarray,
        x_stamp: np.ndarray,
        y_stamp: np.ndarray,
        pred_len: int,
        sampling: Sampling = Sampling(),
        *,
        use_cache: bool = True,
        progress: Callable[[int, int], None] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Forecasts in normalised units: x (B, L, 6) already normalised and clipped -> (B, S, P, 6), S paths each.

        `sampling.seed` seeds one generator for the whole batch; `seeds` gives every series its own, so that a
        series' forecast does not depend on the batch it is in (point-in-time backtests rely on it).
        """
        batch, paths = x.shape[0], sampling.paths
        stamp = np.concatenate([x_stamp, y_stamp], axis=1)
        if seeds is not None:
            if len(seeds) != batch:
                raise ValueError(f"{len(seeds)} seeds for {batch} series")
            sampler = RowSampler([paths] * batch, [sampling] * batch, [self._generator(s) for s in seeds])
        else:
            sampler = RowSampler.uniform(batch * paths, sampling, self._generator(sampling.seed))
        if use_cache:  # per-window seeds: a window's bits must not depend on its batch (no compiled step under auto)
            bars = self._generate(x, stamp, pred_len, paths, sampler, progress, self._plan(pred_len, seeds is not None))
        else:  # the reference algorithm throughout: paths encoded separately, full recompute per step
            rows = (np.repeat(x, paths, axis=0), np.repeat(stamp, paths, axis=0))
            bars = self._generate(*rows, pred_len, 1, sampler, progress, None)
        return bars.reshape(batch, paths, pred_len, -1)

    def _generate(
        self,
        x: np.ndarray,
        stamp: np.ndarray,
        pred_len: int,
        sample_count: int | Sequence[int],
        sampler: RowSampler,
        progress: Callable[[int, int], None] | None,
        plan: DecodePlan | None,
    ) -> np.ndarray:
        """Normalised bars x (B, L, 6) and stamps (B, L + P, 5) -> forecast rows (B*S or sum S, P, 6), KV-cached
        (with `plan`, which may compile the decode step) or, without one, the reference's full recompute."""
        use_cache = plan is not None
        dev = self.device
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        st = torch.from_numpy(np.ascontiguousarray(stamp, dtype=np.float32)).to(dev)
        hist = xt.shape[1]
        low = self._dtype != "fp32"
        with torch.autocast(dev.type, dtype=DTYPES[self._dtype], enabled=low):
            with batch_invariant():
                h1, h2 = self.tokenizer.encode(xt, half=True)
            s1, s2 = generate(
                self.model,
                h1,
                h2,
                st,
                pred_len,
                self.max_context,
                sample_count,
                use_cache=use_cache,
                progress=progress,
                sampler=sampler,
                pool=self._pool(),
                plan=plan,
            )
            shared = (h1, h2, path_counts(sample_count, h1.shape[0], dev)[0]) if use_cache else None
            with batch_invariant():
                return decode_windows(self.tokenizer, s1, s2, hist, self.max_context, shared).float().cpu().numpy()

    def _plan(self, steps: int, invariant: bool) -> DecodePlan:
        """Whether this call's decode step is compiled (`model/compiled.decode_plan`): `compile` on, or auto when
        its `steps` pay for compiling and no row must keep its bits whatever its batch (`invariant`)."""
        # the cache's directory is read only where auto may compile: not for every batch of the server
        warm = self._compile == "auto" and not invariant and cache_is_warm()
        plan = decode_plan(self._device.type, self._dtype == "bf16", steps, self._compile, invariant, warm)
        log.debug("decode step: %s", plan.reason)
        return plan

    def _pool(self) -> BufferPool:
        if not hasattr(self._local, "pool"):
            self._local.pool = BufferPool()
        return self._local.pool

    @torch.no_grad()
    def forecast_jobs(
        self, jobs: Sequence[SeriesJob], progress: Callable[[int, int], None] | None = None
    ) -> list[np.ndarray]:
        """Forecast series that each carry their own sampling, seed and path count -> (S, P, 6) raw bars each.

        Series of one history length, horizon and path count run as one batch (the paths of a series then share
        one copy of its history, as alone). Every series draws from its own generator and every product is
        batch-invariant (`model/invariant.py`), so its result equals `forecast` of that series alone with the same
        seed, bit for bit, whatever it is batched with. This is what the server's dynamic batching calls;
        `progress(step, steps)` is called after every decode step (an exception it raises stops the forecast).
        """
        out: list[np.ndarray | None] = [None] * len(jobs)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.shape, []).append(i)
        for (_, pred_len, paths), members in groups.items():
            group = [jobs[i] for i in members]
            # Each series on its own, exactly as `forecast` normalises a single series (same summation order).
            stats = [normalise_lookback(np.asarray(j.x, dtype=np.float32)[None], self.clip) for j in group]
            xn = np.concatenate([st[0] for st in stats])
            mean, std = np.concatenate([st[1] for st in stats]), np.concatenate([st[2] for st in stats])
            stamp = np.stack([np.concatenate([j.x_stamp, j.y_stamp]) for j in group])
            counts = [paths] * len(group)
            sampler = RowSampler(counts, [j.sampling for j in group], [self._generator(j.sampling.seed) for j in group])
            rows = self._generate(xn, stamp, pred_len, paths, sampler, progress, self._plan(pred_len, True))
            for k, i in enumerate(members):
                out[i] = denormalise(rows[k * paths : (k + 1) * paths], mean[k], std[k])
        return out  # type: ignore[return-value]

    def forecast(self, x: np.ndarray, x_stamp: np.ndarray, y_stamp: np.ndarray, pred_len: int, *args, **kw) -> Forecast:
        """Forecasts of raw bars x (B, L, 6): normalise on the lookback, generate, de-normalise (`args`, `kw`:
        `forecast_normalised`'s sampling, use_cache, progress, seeds)."""
        xn, mean, std = normalise_lookback(np.asarray(x, dtype=np.float32), self.clip)
        out = self.forecast_normalised(xn, x_stamp, y_stamp, pred_len, *args, **kw)
        return Forecast(denormalise(out, mean[:, None], std[:, None]))

    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp,
        y_timestamp,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        seed: int | None = None,
        return_samples: bool = False,
    ):
        """Forecast one series; a DataFrame of open..amount indexed by `y_timestamp`.

        The reference's signature: `T` is the temperature and `sample_count` the number of paths (a `Sampling`
        is built from them); `verbose` is accepted so that the reference's calls run unchanged, and does nothing
        (the reference shows a tqdm bar). With `return_samples`, returns (mean frame, samples array
        (sample_count, pred_len, 6)).
        """
        frames = self.predict_batch(
            [df], [x_timestamp], [y_timestamp], pred_len, T, top_k, top_p, sample_count, verbose, seed, return_samples
        )
        return frames[0]

    def predict_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence,
        y_timestamp_list: Sequence,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = True,
        seed: int | None = None,
        return_samples: bool = False,
    ) -> list:
        """Forecast several series of equal history length in one batch (the reference's rules and arguments, as
        `predict`'s)."""
        if not all(isinstance(v, (list, tuple)) for v in (df_list, x_timestamp_list, y_timestamp_list)):
            raise KronosError("df_list, x_timestamp_list and y_timestamp_list must be lists or tuples")
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
            raise KronosError("df_list, x_timestamp_list and y_timestamp_list must have the same length")
        if not df_list:
            raise KronosError("df_list is empty")
        if pred_len <= 0:
            raise KronosError(f"pred_len must be > 0, got {pred_len}")
        xs, xst, yst = [], [], []
        for i, (df, xt, yt) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list)):
            where = "input" if len(df_list) == 1 else f"DataFrame at index {i}"
            x = prepare_frame(df, where)
            xs_i, ys_i = calendar_features(xt), calendar_features(yt)
            if len(xs_i) != len(x):
                raise KronosError(f"{where}: x_timestamp has {len(xs_i)} entries for {len(x)} rows")
            if len(ys_i) != pred_len:
                raise KronosError(f"{where}: y_timestamp has {len(ys_i)} entries, expected pred_len={pred_len}")
            xs.append(x), xst.append(xs_i), yst.append(ys_i)
        lengths = sorted({len(x) for x in xs})
        if len(lengths) > 1:
            raise KronosError(f"batch prediction needs series of one history length, got lengths {lengths}")
        # One series keeps its column-major layout, as in the reference's `predict` (see `bars.features`).
        x = xs[0][None] if len(xs) == 1 else np.stack(xs)
        sampling = Sampling(temperature=T, top_k=top_k, top_p=top_p, paths=sample_count, seed=seed)
        fc = self.forecast(x, np.stack(xst), np.stack(yst), pred_len, sampling)
        out = []
        for i, yt in enumerate(y_timestamp_list):
            frame = pd.DataFrame(fc.mean[i], columns=list(FEATURES), index=yt)
            out.append((frame, fc.samples[i]) if return_samples else frame)
        return out
