"""Calibrated sampling: the temperature and top_p `kronos evaluate --tune-sampling` chose on the validation split,
and the bands it fitted there (`metrics/recalibration.py`), kept in the run as `sampling.json` with the digests of
the weights they were chosen for.

`backtest.sampling: calibrated` (backtest, signals, evaluate, serve -c) and `--sampling FILE` (predict, serve)
read it here; a file calibrated for other weights than the ones in use is an error for a run and a warning for
an explicit file. Version 2 added the bands; a file without them (version 1) still gives its temperature and top_p.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import file_digest, write_json
from kronos_cli.forecast.candles import CLOSE, repair
from kronos_cli.metrics.recalibration import BandCorrection
from kronos_cli.model.sampling import Sampling

log = logging.getLogger(__name__)
VERSION = 2  # 2: the bands fitted on the validation split ("bands"); 1: temperature and top_p only


@dataclass(frozen=True)
class Calibration:
    """A sampling.json: the temperature and top_p chosen on validation, the weights they were chosen for, and the
    bands fitted there. Not a sampling of its own: `applied_to` puts its choice into a `Sampling`."""

    temperature: float
    top_p: float
    path: str
    weights: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the weights it was tuned for
    bands: BandCorrection | None = None  # the quantiles of the paths recalibrated on validation (None: version 1)

    def applied_to(self, sampling: Sampling) -> Sampling:
        """`sampling` with the temperature and top_p this calibration chose (its paths, top_k and seed kept)."""
        return dataclasses.replace(sampling, temperature=self.temperature, top_p=self.top_p)

    def matches(self, weights: tuple[Path, ...]) -> bool:
        """Whether these weight files are the ones the sampling was tuned for (True when the file names none)."""
        if not self.weights:
            return True
        return sorted(self.weights.values()) == sorted(file_digest(Path(w)) for w in weights)


def weight_digests(weights: tuple[Path, ...]) -> dict[str, str]:
    return {str(w): file_digest(Path(w)) for w in weights}


def write_sampling(path: Path, record: dict, bands: BandCorrection | None) -> Path:
    """`sampling.json`: the tuning's `record` (temperature, top_p, weights, what was measured) and its bands."""
    return write_json(path, {"version": VERSION, **record, "bands": bands.to_json() if bands else None})


def read_sampling(path: str | Path) -> Calibration:
    """A sampling.json written by `kronos evaluate --tune-sampling`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise KronosError(
            f"no calibrated sampling at {path}; run `kronos evaluate -c CONFIG --tune-sampling` first "
            f"(or set backtest.sampling=configured)"
        )
    try:
        data = json.loads(path.read_text())
        temperature, top_p = float(data["temperature"]), float(data["top_p"])
        weights = {str(k): str(v) for k, v in dict(data.get("weights", {})).items()}
        bands = BandCorrection.from_json(data["bands"]) if data.get("bands") is not None else None
    except (ValueError, KeyError, TypeError) as exc:
        raise KronosError(
            f"{path} is not a sampling.json written by `kronos evaluate --tune-sampling` ({exc})"
        ) from None
    if not (0 < temperature <= 100 and 0 < top_p <= 1):
        raise KronosError(f"{path}: temperature {temperature} or top_p {top_p} out of range (0, 100] and (0, 1]")
    return Calibration(temperature, top_p, str(path), weights, bands)


def sampling_for(path: str | Path, weights: tuple[Path, ...], strict: bool) -> Calibration:
    """The calibrated sampling at `path` for a model with these weight files: another model's is an error when
    `strict` (a run's own sampling.json after retraining), else a warning (a file the user chose)."""
    calibrated = read_sampling(path)
    if not calibrated.matches(weights):
        what = f"{path} was calibrated for other weights than the model in use"
        if strict:
            raise KronosError(f"{what}; run `kronos evaluate -c CONFIG --tune-sampling` again")
        log.warning("%s; using its temperature, top_p and bands anyway", what)
    return calibrated


def bar_quantiles(paths: np.ndarray, qs: Sequence[float], bands: BandCorrection | None, raw: bool) -> np.ndarray:
    """Quantiles `qs` of sampled bars (S, P, 6): (Q, P, 6), each feature's from its paths, the close's from a
    calibration's `bands` when given. Each quantile bar is then mended into a valid candle unless `raw`: on every
    path the high is at least the close, so the high's quantile is at least the close's, and the close's wider band
    lifts it (and lowers the low's)."""
    # one level at a time, cast back: numpy 2 keeps float32 for a scalar level (not for a list), numpy 1 never does
    levels = [np.quantile(paths, q, axis=0).astype(paths.dtype, copy=False) for q in qs]
    out = np.stack(levels) if len(qs) else np.empty((0, *paths.shape[1:]))
    if bands is None or not len(qs):
        return out
    out[..., CLOSE] = bands.quantiles(paths[..., CLOSE], qs)
    return out if raw else repair(out)[0]
