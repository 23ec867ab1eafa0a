"""`kronos backtest`: point-in-time forecasts of the test split -> signals -> IC and accuracy against realised
labels -> Qlib portfolio backtests -> report files."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kronos_cli.backtest import qlib_backtest
from kronos_cli.backtest.report import BacktestResult
from kronos_cli.config import Config
from kronos_cli.data.labels import realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import origin_keys, split_origins
from kronos_cli.errors import KronosError
from kronos_cli.forecast.cache import ForecastCache
from kronos_cli.forecast.device import resolve_device
from kronos_cli.forecast.signals import check_signals, signal_table
from kronos_cli.forecast.windows import Sampling, cache_key, forecast_windows
from kronos_cli.io import atomic_path, write_json, write_text
from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import ic_table
from kronos_cli.metrics.portfolio import ACCUMULATION, ANNUAL_DAYS, portfolio_stats
from kronos_cli.plots import plot_performance
from kronos_cli.runs import backtest_dir, forecast_cache_dir, load_pair

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def open_dataset(cfg: Config) -> DatasetArrays:
    """The prepared dataset, checked against the config's window shape."""
    arrays = DatasetArrays(cfg.data.dataset_path)
    m, d = arrays.manifest, cfg.data
    for key, want in (("lookback_window", d.lookback_window), ("predict_window", d.predict_window)):
        if m[key] != want:
            raise KronosError(
                f"the dataset at {arrays.path} was built with {key}={m[key]}, but the config asks "
                f"for {want}; run `kronos prep` again with this config"
            )
    return arrays


def sampling_of(cfg: Config) -> Sampling:
    b = cfg.backtest
    return Sampling(b.temperature, b.top_p, b.top_k, b.sample_count, cfg.seed)


def run_backtest(
    cfg: Config,
    tokenizer: str | None = None,
    model: str | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> BacktestResult:
    t0, b = time.perf_counter(), cfg.backtest
    check_signals(b.signals)
    arrays = open_dataset(cfg)
    origins = split_origins(arrays, "test")
    if not len(origins):
        raise KronosError(
            f"the dataset at {cfg.data.dataset_path} has no test signal days; set "
            f"data.test_time_range and run `kronos prep` again"
        )
    qlib_backtest.check_signal_days(cfg, pd.DatetimeIndex(pd.to_datetime(arrays.timestamps[origins.rows])).unique())
    dev = resolve_device(device)
    bench = qlib_backtest.benchmark_for(cfg)
    qlib_backtest.check_benchmark(cfg, bench)
    pair = load_pair(cfg, tokenizer, model)
    pair.warn_if_trained_otherwise(cfg)
    forecaster = pair.predictor(dev, cfg.data.max_context, cfg.data.clip)
    sampling, pred = sampling_of(cfg), cfg.data.predict_window
    key = cache_key(
        pair.weights,
        arrays.manifest["config_hash"],
        sampling,
        cfg.data.lookback_window,
        pred,
        forecaster.max_context,
        forecaster.clip,
    )
    cache = ForecastCache(forecast_cache_dir(cfg, key), (sampling.sample_count, pred))
    fc = forecast_windows(forecaster, arrays, origins, sampling, b.batch_size, cache, progress)

    names, origin_ns = origin_keys(arrays, origins)
    real = realised(arrays, origins, pred, b.deal_price)
    table = signal_table(fc, origin_ns, names, b.signals, b.returns_signals)
    table["label"] = real.label
    table = table.sort_values(["datetime", "instrument"], kind="stable").reset_index(drop=True)
    indexed = table.set_index(["datetime", "instrument"])
    quality = {name: ic_table(indexed[name], indexed["label"]) for name in b.signals}
    accuracy = return_accuracy(fc.return_paths().mean(axis=1), real.path)

    portfolio, daily, positions, bench_stats, rng, notes = _portfolios(cfg, indexed, bench, progress)
    result = BacktestResult(
        run_name=cfg.run_name,
        tokenizer=pair.sources["tokenizer"],
        predictor=pair.sources["model"],
        device=str(dev),
        benchmark=bench,
        backtest_range=rng,
        signal_range=[f"{table['datetime'].min():%Y-%m-%d}", f"{table['datetime'].max():%Y-%m-%d}"],
        notes=notes,
        signal_days=len(table),
        labelled=int(real.known.sum()),
        forecast_cache=str(cache.directory),
        reused_forecasts=fc.reused,
        conventions=_conventions(cfg, real.convention),
        signal_quality=quality,
        forecast_accuracy=accuracy,
        portfolio=portfolio,
        benchmark_stats=bench_stats,
        daily_returns={
            n: {"date": [f"{d:%Y-%m-%d}" for d in df.index], **{c: df[c].round(8).tolist() for c in df}}
            for n, df in daily.items()
        },
        config=cfg.to_dict(),
    )
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    write_outputs(backtest_dir(cfg), result, table, positions, daily, cfg)
    return result


def _conventions(cfg: Config, label: str) -> dict[str, object]:
    b, p = cfg.backtest, cfg.data.predict_window
    return {
        "signal": f"computed at the close of day t from the lookback ending on t: a statistic of the mean forecast "
        f"close over the next {p} bars minus the last close, in the window's lookback z-score; Qlib trades "
        f"it on day t+1 at the {b.deal_price}",
        "label": label,
        "universe": "point in time: a (day, stock) has a signal, a position and an IC term only while the stock is a "
        "member of the pool on that day",
        "annualization_days": ANNUAL_DAYS,
        "accumulation": ACCUMULATION,
    }


def _portfolios(cfg: Config, indexed: pd.DataFrame, bench: str, progress: Progress | None = None):
    b = cfg.backtest
    qlib_backtest.init_qlib(cfg.data.provider_uri, cfg.data.region)
    start, end, notes = qlib_backtest.trading_range(cfg, indexed.index.get_level_values("datetime").unique())
    for note in notes:
        log.warning(note)
    portfolio, daily, positions = {}, {}, []
    bench_daily = None
    for i, name in enumerate(b.signals):
        if progress:
            progress(i, len(b.signals), f"Qlib backtest of {name}")
        report, held = qlib_backtest.run_topk_dropout(cfg, indexed[name], start, end, bench)
        excess = report["return"] - report["bench"]
        portfolio[name] = {
            "with_cost": portfolio_stats(report["return"] - report["cost"], report["turnover"]),
            "without_cost": portfolio_stats(report["return"], report["turnover"]),
            "excess_with_cost": portfolio_stats(excess - report["cost"]),
            "excess_without_cost": portfolio_stats(excess),
            "qlib_risk_excess_with_cost": qlib_backtest.qlib_risk(excess - report["cost"]),
            "qlib_risk_excess_without_cost": qlib_backtest.qlib_risk(excess),
        }
        daily[name] = pd.DataFrame({c: report[c] for c in ("return", "cost", "bench", "turnover")})
        positions.append(held.assign(signal=name))
        bench_daily = report["bench"]
    if progress:
        progress(len(b.signals), len(b.signals), "Qlib backtests done")
    bench_stats = portfolio_stats(bench_daily) if bench_daily is not None else {}
    held = pd.concat(positions, ignore_index=True) if positions else pd.DataFrame()
    return portfolio, daily, held, bench_stats, [f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"], notes


def write_outputs(
    out: Path,
    result: BacktestResult,
    table: pd.DataFrame,
    positions: pd.DataFrame,
    daily: dict[str, pd.DataFrame],
    cfg: Config,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    signals = out / f"signals.{cfg.backtest.signal_format}"
    with atomic_path(signals) as tmp:
        (table.to_parquet if cfg.backtest.signal_format == "parquet" else table.to_csv)(tmp, index=False)
    with atomic_path(out / "positions.csv") as tmp:
        positions.to_csv(tmp, index=False)
    plot_performance(
        daily, out / "performance_plot.png", title=f"{cfg.run_name}: TopkDropout backtest", benchmark=result.benchmark
    )
    result.outputs = {
        "results": str(out / "backtest_results.json"),
        "report": str(out / "analysis_report.txt"),
        "plot": str(out / "performance_plot.png"),
        "signals": str(signals),
        "positions": str(out / "positions.csv"),
    }
    write_text(out / "analysis_report.txt", result.report_text())
    write_json(out / "backtest_results.json", result.to_json())
