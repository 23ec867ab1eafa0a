"""One resolved forecast specification: what a forecast is asked, decided once at the edge and passed down.

Every setting of a forecast comes from, in this order: the command line (or a request), the run's config, what the
checkpoint or bundle records about its training (`Conventions`), the released model's published context, the
library's default. `resolve_spec` is the one place that applies the order; the predictor is built from its result
(`ForecastSpec.predictor`) and the layers below never look at a `Config` or a flag for these settings again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.calibrated import Calibration
from kronos_cli.forecast.predictor import KronosPredictor, check_dtype
from kronos_cli.model.compiled import check_compile
from kronos_cli.model.config import DEFAULT_CONTEXT, Conventions
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.sampling import Sampling
from kronos_cli.model.tokenizer import KronosTokenizer

DEFAULT_CLIP = 5.0  # the reference's clip of normalised bars


@dataclass(frozen=True)
class ForecastSpec:
    """What a forecast is asked: `horizon` bars (pred_len) after `lookback` history bars, the predictor's
    `context` (max_context) and the normalised bars' `clip`, the `sampling`, the precision (`dtype`) and the
    `device` (None: the best available).

    `lookback` is a demand (a series shorter than it is refused); without one, `trained_lookback` (the windows the
    model was trained on) is a preference (a shorter series is forecast from what it has), and without either a
    series is forecast from as many bars as the context holds."""

    horizon: int | None
    context: int = DEFAULT_CONTEXT
    clip: float = DEFAULT_CLIP
    sampling: Sampling = Sampling()
    lookback: int | None = None
    trained_lookback: int | None = None
    dtype: str = "fp32"
    device: str | None = None
    compile: str | bool = "auto"  # the decode step compiled (`model/compiled.decode_plan`): auto, on, off

    def __post_init__(self) -> None:
        if self.horizon is None:
            raise KronosError(
                "pred_len is not set: give it, or a config or model that records a predict_window", setting="pred_len"
            )
        if self.horizon < 1:
            raise KronosError(f"pred_len must be > 0, got {self.horizon}", setting="pred_len")
        if self.context < 2:
            raise KronosError(f"max_context must be >= 2, got {self.context}", setting="max_context")
        if self.lookback is not None and self.lookback < 2:
            raise KronosError(f"lookback must be at least 2, got {self.lookback}", setting="lookback")
        if not self.clip > 0:
            raise KronosError(f"clip must be > 0, got {self.clip}", setting="clip")
        check_dtype(self.dtype)
        object.__setattr__(self, "compile", check_compile(self.compile))  # YAML's true/false read as on/off

    def predictor(self, model: Kronos, tokenizer: KronosTokenizer) -> KronosPredictor:
        """The predictor this spec describes (its context, clip, precision and device)."""
        return KronosPredictor(model, tokenizer, self.device, self.context, self.clip, self.dtype, self.compile)

    def replace(self, **changes: Any) -> ForecastSpec:
        return dataclasses.replace(self, **changes)


def _first(*values):
    """The first value that is set (not None): the order of precedence written out."""
    return next((v for v in values if v is not None), None)


def resolve_spec(
    *,
    horizon: int | None = None,
    lookback: int | None = None,
    context: int | None = None,
    sampling: Sampling | None = None,
    dtype: str | None = None,
    device: str | None = None,
    compile: str | bool | None = None,
    cfg: Config | None = None,
    recorded: Conventions = Conventions(),
    released_context: int | None = None,
) -> ForecastSpec:
    """The forecast settings in their order: the keyword arguments (the command line's flags or a request), then
    the run's config `cfg`, then what the checkpoint `recorded`, then the release's context, then the defaults.

    Without a horizon, the one the model was trained for; the lookback is only ever given (the trained one is
    `trained_lookback`); the sampling, when not given, is the config's (`sampling_of_config`) or the reference's."""
    d = cfg.data if cfg is not None else None
    return ForecastSpec(
        horizon=_first(horizon, d and d.predict_window, recorded.predict_window),
        lookback=lookback,
        trained_lookback=_first(d and d.lookback_window, recorded.lookback_window),
        context=_first(context, d and d.max_context, recorded.max_context, released_context, DEFAULT_CONTEXT),
        clip=_first(d and d.clip, recorded.clip, DEFAULT_CLIP),
        sampling=_first(sampling, cfg and sampling_of_config(cfg), Sampling()),
        dtype=dtype or "fp32",
        device=device,
        compile=_first(compile, cfg and cfg.forecast.compile, "auto"),
    )


def sampling_of_config(cfg: Config, calibrated: Calibration | None = None, paths: int | None = None) -> Sampling:
    """A run's sampling: `backtest.temperature`, `top_p`, `top_k`, `sample_count` and the run's `seed`, with the
    temperature and top_p a calibration chose when one is given (`backtest.sampling: calibrated`)."""
    b = cfg.backtest
    configured = Sampling(b.temperature, b.top_k, b.top_p, paths or b.sample_count, cfg.seed)
    return calibrated.applied_to(configured) if calibrated else configured


REFERENCE_SAMPLING = Sampling()  # the reference's predict defaults: temperature 1.0, top_p 0.9, no top-k


def resolve_sampling(
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int = 0,
    paths: int = 1,
    seed: int | None = None,
    calibration: Calibration | None = None,
) -> Sampling:
    """The sampling of a forecast asked for one series (predict's flags, a served request): the temperature and
    top_p given, else the `calibration`'s (a sampling.json), else the reference's."""
    base = calibration.applied_to(REFERENCE_SAMPLING) if calibration else REFERENCE_SAMPLING
    return Sampling(_first(temperature, base.temperature), top_k, _first(top_p, base.top_p), paths, seed)
