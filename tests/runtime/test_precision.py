"""`--dtype auto`: bf16 on CUDA only where the precision check on the run's windows passes, fp32 elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.runtime.precision import PRECISION_BAR, auto_dtype, check_setting, concrete, passes


def _report(corr: float, mae_fp32: float = 0.02, change: float = 0.0) -> dict:
    return {
        "dtype": "bf16",
        "windows": 256,
        "units": "returns",
        "mean_abs_forecast_diff": 1e-4,
        "mae_fp32": mae_fp32,
        "mae_bf16": mae_fp32 + change,
        "mae_difference": change,
        "signal_rank_correlation": corr,
    }


def _check(report: dict, calls: list):
    def check(dtype: str) -> dict:
        calls.append(dtype)
        return {**report, "passed": passes(report)}

    return check


def test_auto_decodes_in_bf16_on_cuda_only_where_the_check_passes():
    calls: list = []
    assert auto_dtype("auto", "cpu", _check(_report(1.0), calls)) == ("fp32", None)
    assert auto_dtype("auto", "mps", _check(_report(1.0), calls)) == ("fp32", None)
    assert calls == []  # no check off CUDA: bf16 saves nothing there
    dtype, report = auto_dtype("auto", "cuda", _check(_report(0.999), calls))
    assert dtype == "bf16" and report["chosen"] == "bf16" and report["passed"] and calls == ["bf16"]
    dtype, report = auto_dtype("auto", "cuda", _check(_report(0.95), calls))
    assert dtype == "fp32" and report["chosen"] == "fp32" and not report["passed"]


def test_a_given_precision_is_kept_and_a_wrong_one_refused():
    calls: list = []
    for given in ("fp32", "bf16", "fp16"):
        assert auto_dtype(given, "cuda", _check(_report(0.5), calls)) == (given, None)
    assert calls == []
    assert concrete("auto") == "fp32" and concrete("bf16") == "bf16"
    with pytest.raises(KronosError, match="dtype must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        check_setting("fp8")


@pytest.mark.parametrize(
    ("corr", "change", "ok"),
    [
        (PRECISION_BAR["signal_rank_correlation"], 0.0, True),
        (0.98, 0.0, False),  # the signal ranks windows otherwise
        (1.0, 0.02 * 0.02, False),  # 2% more error than fp32's
        (1.0, 0.005 * 0.02, True),
        (1.0, -0.001, True),  # less error is no reason to refuse
        (float("nan"), 0.0, False),  # a sample too small to rank
    ],
)
def test_the_bar_bf16_must_clear(corr, change, ok):
    assert passes(_report(corr, change=change)) is ok


@pytest.mark.slow
def test_the_check_forecasts_the_runs_windows_in_both_precisions(prepared, tiny_checkpoints):
    """The check that `auto` runs on CUDA, run here on the CPU (bf16 through CPU autocast): a real report of the
    sample's forecasts, and the choice follows it."""
    from kronos_cli.data.store import DatasetArrays
    from kronos_cli.data.windows import split_origins
    from kronos_cli.records.runs import load_pair
    from kronos_cli.runtime.split_forecasts import precision_deviation, sampling_of

    cfg, _ = prepared
    cfg.output_dir = str(cfg.data.dataset_path) + "-out"
    arrays = DatasetArrays(cfg.data.dataset_path)
    origins = split_origins(arrays, "test")
    pair = load_pair(None, *(str(p) for p in tiny_checkpoints))
    spec = pair.resolve(cfg, sampling=sampling_of(cfg), device="cpu")
    dtype, report = auto_dtype(
        "auto", "cuda", lambda low: precision_deviation(cfg, arrays, origins, pair, spec.replace(dtype=low))
    )
    assert report["windows"] == min(256, len(origins)) and report["dtype"] == "bf16"
    assert np.isfinite(report["mae_fp32"]) and 0 < report["mean_abs_forecast_diff"] < 0.05
    assert dtype == ("bf16" if passes(report) else "fp32") == report["chosen"]
