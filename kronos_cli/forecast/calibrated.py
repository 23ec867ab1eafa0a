"""Calibrated sampling: the temperature and top_p `kronos evaluate --tune-sampling` chose on the validation split,
kept in the run as `sampling.json` with the digests of the weights they were chosen for.

`backtest.sampling: calibrated` (backtest, signals, evaluate, serve -c) and `--sampling FILE` (predict, serve)
read it here; a file calibrated for other weights than the ones in use is an error for a run and a warning for
an explicit file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from kronos_cli.errors import KronosError
from kronos_cli.io import file_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibratedSampling:
    temperature: float
    top_p: float
    path: str
    weights: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the weights it was tuned for

    def matches(self, weights: tuple[Path, ...]) -> bool:
        """Whether these weight files are the ones the sampling was tuned for (True when the file names none)."""
        if not self.weights:
            return True
        return sorted(self.weights.values()) == sorted(file_digest(Path(w)) for w in weights)


def weight_digests(weights: tuple[Path, ...]) -> dict[str, str]:
    return {str(w): file_digest(Path(w)) for w in weights}


def read_sampling(path: str | Path) -> CalibratedSampling:
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
    except (ValueError, KeyError, TypeError) as exc:
        raise KronosError(
            f"{path} is not a sampling.json written by `kronos evaluate --tune-sampling` ({exc})"
        ) from None
    if not (0 < temperature <= 100 and 0 < top_p <= 1):
        raise KronosError(f"{path}: temperature {temperature} or top_p {top_p} out of range (0, 100] and (0, 1]")
    return CalibratedSampling(temperature, top_p, str(path), weights)


def sampling_for(path: str | Path, weights: tuple[Path, ...], strict: bool) -> CalibratedSampling:
    """The calibrated sampling at `path` for a model with these weight files: another model's is an error when
    `strict` (a run's own sampling.json after retraining), else a warning (a file the user chose)."""
    calibrated = read_sampling(path)
    if not calibrated.matches(weights):
        what = f"{path} was calibrated for other weights than the model in use"
        if strict:
            raise KronosError(f"{what}; run `kronos evaluate -c CONFIG --tune-sampling` again")
        log.warning("%s; using its temperature and top_p anyway", what)
    return calibrated
