"""Forecasting in bf16/fp16 against fp32 on a sample of a split's windows, and `--dtype auto`'s choice from it.

A reduced precision is measured, never assumed: the same windows (up to PRECISION_SAMPLE, evenly spread) are
forecast in fp32 with the same seeds, and the report says how far the forecast returns moved, what it did to
their error against what happened, and how the signal's ranking changed. `auto` decodes in bf16 on CUDA where
that check passes (`PRECISION_BAR`) and in fp32 everywhere else: on a CPU bf16 saves nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy.stats import spearmanr

from kronos_cli.core.errors import KronosError
from kronos_cli.core.tables import Table, num, pct
from kronos_cli.forecast.predictor import DTYPES
from kronos_cli.forecast.windows import WindowForecasts

log = logging.getLogger(__name__)

PRECISION_SAMPLE = 256  # windows forecast again in fp32 to measure what bf16/fp16 changed
# What `--dtype auto` asks of bf16 before it decodes a run in it: the signal ranks the sample's windows as fp32
# does (Spearman correlation of the horizon's mean forecast return) and the forecasts' error against what happened
# grows by at most 1% of fp32's.
PRECISION_BAR = {"signal_rank_correlation": 0.99, "relative_mae_increase": 0.01}
SETTINGS = ("auto", *DTYPES)  # the predictor's precisions, and auto


def sample_of(n: int) -> np.ndarray:
    """The windows of a split of n that a precision check forecasts twice: up to PRECISION_SAMPLE, evenly spread."""
    return np.unique(np.linspace(0, n - 1, min(PRECISION_SAMPLE, n)).astype(np.int64))


def deviation(dtype: str, low: WindowForecasts, exact: WindowForecasts, real: np.ndarray) -> dict:
    """How far `low`'s forecasts (in `dtype`) are from `exact`'s (fp32, same windows and seeds); `real` (windows,
    horizon) is what happened, as returns. Returns are fractions of the last close; the signal is the mean forecast
    return at the horizon."""
    lo, hi = low.return_paths().mean(axis=1), exact.return_paths().mean(axis=1)
    known = np.isfinite(real)
    mae_low, mae_high = float(np.abs(lo - real)[known].mean()), float(np.abs(hi - real)[known].mean())
    corr = spearmanr(lo[:, -1], hi[:, -1]).statistic if len(lo) > 2 else float("nan")
    report = {
        "dtype": dtype,
        "windows": int(len(lo)),
        "units": "forecast returns, fraction of the last close; signal = mean forecast return at the horizon",
        "mean_abs_forecast_diff": float(np.abs(lo - hi).mean()),
        "mae_fp32": mae_high,
        f"mae_{dtype}": mae_low,
        "mae_difference": mae_low - mae_high,
        "signal_rank_correlation": float(corr),
    }
    return {**report, "passed": passes(report)}


def passes(report: dict) -> bool:
    """Whether a precision report meets `PRECISION_BAR` (a correlation that is not a number fails)."""
    corr_ok = bool(report["signal_rank_correlation"] >= PRECISION_BAR["signal_rank_correlation"])
    limit = PRECISION_BAR["relative_mae_increase"] * report["mae_fp32"]
    return corr_ok and report["mae_difference"] <= limit


def check_setting(setting: str) -> str:
    """A forecasting precision setting (auto, fp32, bf16, fp16), or a one-line error listing them."""
    if setting not in SETTINGS:
        raise KronosError(f"dtype must be one of {', '.join(SETTINGS)}, got {setting!r}", setting="dtype")
    return setting


def concrete(setting: str) -> str:
    """The precision of a forecast that has no sample of windows to check bf16 on (one day's signals, a served
    request): auto is fp32 there."""
    return "fp32" if check_setting(setting) == "auto" else setting


def auto_dtype(setting: str, device_type: str, check: Callable[[str], dict]) -> tuple[str, dict | None]:
    """The precision a run forecasts in, and the check that chose it (None where none ran).

    `setting` other than auto is kept. auto: fp32 off CUDA; on CUDA, `check("bf16")` (a `deviation` report of bf16
    against fp32 on a sample of the run's windows) and bf16 where it passes, else fp32."""
    if setting != "auto":
        return setting, None
    if device_type != "cuda":
        return "fp32", None
    report = check("bf16")
    chosen = "bf16" if report["passed"] else "fp32"
    log.info(
        "dtype auto: bf16 %s the precision check on %d windows: forecasting in %s",
        "passed" if report["passed"] else "failed",
        report["windows"],
        chosen,
    )
    return chosen, {**report, "chosen": chosen}


def precision_table(p: dict) -> Table:
    """What forecasting in bf16/fp16 changed, against fp32 on a sample of the same windows."""
    title = f"Precision: {p['dtype']} against fp32 on {p['windows']:,} windows"
    if "chosen" in p:
        title += f" (dtype auto chose {p['chosen']})"
    t = Table(
        title, ["mean |diff|", "MAE fp32", f"MAE {p['dtype']}", "MAE change", "signal rank corr."], caption=p["units"]
    )
    t.add(
        pct(p["mean_abs_forecast_diff"], 3),
        pct(p["mae_fp32"], 3),
        pct(p[f"mae_{p['dtype']}"], 3),
        pct(p["mae_difference"], 3),
        num(p["signal_rank_correlation"], 4),
    )
    return t
