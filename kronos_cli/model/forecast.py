"""KronosPredictor: price bars in, forecast bars out (normalisation, stamps, tokenizer, engine)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kronos_cli.bars import FEATURE_COLUMNS, prepare_frame
from kronos_cli.errors import KronosError
from kronos_cli.model.engine import SamplingParams, generate
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer
from kronos_cli.timefeatures import time_stamps

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


def check_pair(tokenizer: KronosTokenizer, model: Kronos) -> None:
    """A tokenizer and a predictor fit when their bit widths agree."""
    t, m = tokenizer.config, model.config
    if (t.s1_bits, t.s2_bits) != (m.s1_bits, m.s2_bits):
        raise KronosError(
            f"tokenizer (s1_bits={t.s1_bits}, s2_bits={t.s2_bits}) and predictor (s1_bits={m.s1_bits}, "
            f"s2_bits={m.s2_bits}) do not fit; use the tokenizer the predictor was trained with"
        )


def resolve_device(device: str | torch.device | None) -> torch.device:
    """auto/None picks cuda:0, then mps, then cpu; an unavailable device is a user error."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise KronosError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise KronosError(f"device {name} was asked for but CUDA is not available here; use --device cpu "
                              f"(or install a CUDA build of torch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise KronosError(f"device {name} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise KronosError(f"device {name} was asked for but MPS is not available here; use --device cpu")
    return dev


def normalise(x: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-series z-score over the lookback rows (axis -2), clipped; returns (x, mean, std)."""
    mean = x.mean(axis=-2, keepdims=True)
    std = x.std(axis=-2, keepdims=True)
    return np.clip((x - mean) / (std + 1e-5), -clip, clip).astype(np.float32), mean, std


class KronosPredictor:
    """Forecast OHLCV bars with a tokenizer and a predictor (the reference's API, plus sample paths)."""

    def __init__(self, model: Kronos, tokenizer: KronosTokenizer, device: str | torch.device | None = None,
                 max_context: int = 512, clip: float = 5):
        check_pair(tokenizer, model)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer.to(self.device).eval()
        self.max_context = max_context
        self.clip = clip

    @classmethod
    def from_pretrained(cls, tokenizer: str, model: str, device: str | None = None, max_context: int = 512,
                        clip: float = 5) -> KronosPredictor:
        tok = KronosTokenizer.from_pretrained(tokenizer)
        return cls(Kronos.from_pretrained(model), tok, device, max_context, clip)

    @classmethod
    def from_bundle(cls, path: str, device: str | None = None) -> KronosPredictor:
        """A predictor from a `kronos export` bundle (one file, loaded with weights_only=True)."""
        from kronos_cli.export.artifacts import load_bundle

        tok, model, norm = load_bundle(path)
        return cls(model, tok, device, max_context=norm["max_context"], clip=norm["clip"])

    @torch.no_grad()
    def forecast_normalised(self, x: np.ndarray, x_stamp: np.ndarray, y_stamp: np.ndarray, pred_len: int,
                            T: float = 1.0, top_k: int = 0, top_p: float = 0.9, sample_count: int = 1,
                            seed: int | None = None, use_cache: bool = True,
                            progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Forecasts in normalised units: x (B, L, 6) already normalised and clipped -> (B, S, P, 6)."""
        if sample_count < 1:
            raise KronosError(f"sample_count must be >= 1, got {sample_count}")
        params = SamplingParams(T, top_k, top_p)
        dev = self.device
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        stamp = torch.from_numpy(np.concatenate([x_stamp, y_stamp], axis=1).astype(np.float32)).to(dev)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=dev)
            generator.manual_seed(seed)
        batch, hist = xt.shape[:2]
        if use_cache:
            s1, s2 = self.tokenizer.encode(xt, half=True)
            s1, s2 = generate(self.model, s1, s2, stamp, pred_len, self.max_context, sample_count, params,
                              generator, use_cache=True, progress=progress)
        else:  # the reference algorithm throughout: paths encoded separately, full recompute per step
            s1, s2 = self.tokenizer.encode(xt.repeat_interleave(sample_count, 0), half=True)
            s1, s2 = generate(self.model, s1, s2, stamp.repeat_interleave(sample_count, 0), pred_len,
                              self.max_context, 1, params, generator, use_cache=False, progress=progress)
        total = hist + pred_len
        start = max(0, total - self.max_context)
        bars = self.tokenizer.decode([s1[:, start:], s2[:, start:]], half=True)[:, -pred_len:]
        return bars.float().cpu().numpy().reshape(batch, sample_count, pred_len, -1)

    def forecast(self, x: np.ndarray, x_stamp: np.ndarray, y_stamp: np.ndarray, pred_len: int,
                 **kwargs) -> Forecast:
        """Forecasts of raw bars x (B, L, 6): normalise on the lookback, generate, de-normalise."""
        xn, mean, std = normalise(np.asarray(x, dtype=np.float32), self.clip)
        out = self.forecast_normalised(xn, x_stamp, y_stamp, pred_len, **kwargs)
        return Forecast(out * (std[:, None] + 1e-5) + mean[:, None])

    def predict(self, df: pd.DataFrame, x_timestamp, y_timestamp, pred_len: int, T: float = 1.0, top_k: int = 0,
                top_p: float = 0.9, sample_count: int = 1, verbose: bool = True, seed: int | None = None,
                return_samples: bool = False):
        """Forecast one series; a DataFrame of open..amount indexed by `y_timestamp`.

        With `return_samples`, returns (mean frame, samples array (sample_count, pred_len, 6)).
        """
        frames = self.predict_batch([df], [x_timestamp], [y_timestamp], pred_len, T, top_k, top_p, sample_count,
                                    verbose, seed, return_samples)
        return frames[0]

    def predict_batch(self, df_list: Sequence[pd.DataFrame], x_timestamp_list: Sequence,
                      y_timestamp_list: Sequence, pred_len: int, T: float = 1.0, top_k: int = 0,
                      top_p: float = 0.9, sample_count: int = 1, verbose: bool = True, seed: int | None = None,
                      return_samples: bool = False) -> list:
        """Forecast several series of equal history length in one batch (the reference's rules)."""
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
            xs_i, ys_i = time_stamps(xt), time_stamps(yt)
            if len(xs_i) != len(x):
                raise KronosError(f"{where}: x_timestamp has {len(xs_i)} entries for {len(x)} rows")
            if len(ys_i) != pred_len:
                raise KronosError(f"{where}: y_timestamp has {len(ys_i)} entries, expected pred_len={pred_len}")
            xs.append(x), xst.append(xs_i), yst.append(ys_i)
        lengths = sorted({len(x) for x in xs})
        if len(lengths) > 1:
            raise KronosError(f"batch prediction needs series of one history length, got lengths {lengths}")
        fc = self.forecast(np.stack(xs), np.stack(xst), np.stack(yst), pred_len, T=T, top_k=top_k, top_p=top_p,
                           sample_count=sample_count, seed=seed)
        out = []
        for i, yt in enumerate(y_timestamp_list):
            frame = pd.DataFrame(fc.mean[i], columns=FEATURE_COLUMNS, index=yt)
            out.append((frame, fc.samples[i]) if return_samples else frame)
        return out
