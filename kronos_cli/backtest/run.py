"""`kronos backtest`: point-in-time forecasts of the test split -> signals -> IC and accuracy against realised
labels -> Qlib portfolio backtests -> report files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kronos_cli.backtest import qlib_backtest
from kronos_cli.backtest.markets import benchmark_for, market_rules
from kronos_cli.backtest.report import BacktestResult
from kronos_cli.config import Config
from kronos_cli.forecast.device import resolve_device
from kronos_cli.forecast.signals import check_signals
from kronos_cli.io import atomic_path, write_json, write_text
from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import ic_table
from kronos_cli.metrics.portfolio import ACCUMULATION, portfolio_stats
from kronos_cli.plots import plot_performance
from kronos_cli.runs import backtest_dir, load_pair
from kronos_cli.sessions import parse_freq
from kronos_cli.split_forecasts import Scale, forecast_split, open_dataset, split_windows

Progress = Callable[[int, int, str], None]


def run_backtest(
    cfg: Config,
    tokenizer: str | None = None,
    model: str | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    scale: Scale = Scale(),
) -> BacktestResult:
    t0, b = time.perf_counter(), cfg.backtest
    check_signals(b.signals)
    arrays = open_dataset(cfg)
    origins = split_windows(cfg, arrays, "test")
    qlib_backtest.check_signal_days(cfg, pd.DatetimeIndex(pd.to_datetime(arrays.timestamps[origins.rows])).unique())
    dev = resolve_device(device)
    bench = benchmark_for(cfg)
    qlib_backtest.check_benchmark(cfg, bench)
    pair = load_pair(cfg, tokenizer, model)
    pair.warn_if_trained_otherwise(cfg)
    sf = forecast_split(cfg, arrays, origins, pair, dev, progress, scale=scale)
    table = sf.signal_table(b.signals, b.returns_signals)
    indexed = table.set_index(["datetime", "instrument"])
    periods, per_day = qlib_backtest.bars_a_year(cfg)
    portfolio, daily, positions, bench_stats, rng, notes = _portfolios(cfg, indexed, bench, periods, progress)
    result = BacktestResult(
        run_name=cfg.run_name,
        tokenizer=pair.sources["tokenizer"],
        predictor=pair.sources["model"],
        device=str(dev),
        benchmark=bench,
        backtest_range=rng,
        signal_range=[qlib_backtest.stamp(table["datetime"].min()), qlib_backtest.stamp(table["datetime"].max())],
        notes=notes,
        signal_days=len(table),
        labelled=int(sf.real.known.sum()),
        forecast_cache=sf.cache_dir,
        reused_forecasts=sf.forecasts.reused,
        conventions=_conventions(cfg, sf.real.convention, periods, per_day),
        signal_quality={name: ic_table(indexed[name], indexed["label"]) for name in b.signals},
        forecast_accuracy=return_accuracy(sf.forecasts.return_paths().mean(axis=1), sf.real.path),
        portfolio=portfolio,
        benchmark_stats=bench_stats,
        daily_returns=_daily_json(daily),
        config=cfg.to_dict(),
    )
    result.precision = sf.precision
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    write_outputs(backtest_dir(cfg), result, table, positions, daily, cfg)
    return result


def _daily_json(daily: dict[str, pd.DataFrame]) -> dict[str, dict[str, list]]:
    return {
        n: {"date": [qlib_backtest.stamp(d) for d in df.index], **{c: df[c].round(8).tolist() for c in df}}
        for n, df in daily.items()
    }


def _conventions(cfg: Config, label: str, periods: float, per_day: float) -> dict[str, object]:
    b, p, rules = cfg.backtest, cfg.data.predict_window, market_rules(cfg)
    return {
        "signal": f"computed at the close of bar t from the lookback ending on t: a statistic of the mean forecast "
        f"close over the next {p} bars minus the last close, in the window's lookback z-score; Qlib trades "
        f"it on bar t+1 at the {b.deal_price}",
        "label": label,
        "universe": "point in time: a (day, stock) has a signal, a position and an IC term only while the stock is a "
        "member of the pool on that day",
        "market": f"{b.market} ({rules.note}); price limit {rules.limit_threshold or 'none'}, lot "
        f"{rules.trade_unit or 'fractional'}, costs open {rules.open_cost:g} close {rules.close_cost:g} min "
        f"{rules.min_cost:g}",
        "annualization": _annualization(rules.days_per_year, per_day, cfg.data.freq),
        "annualization_bars": periods,
        "accumulation": ACCUMULATION,
    }


def _annualization(days: int, per_day: float, freq: str) -> str:
    """How per-bar returns are annualised, in words: daily bars need no sum ("238 trading days a year")."""
    if not parse_freq(freq).intraday:
        return f"{days} trading days a year"
    bars = "1 bar" if per_day == 1 else f"{per_day:g} bars"
    return f"{days * per_day:,g} bars a year ({days} trading days x {bars} a day, {freq} bars)"


def _portfolios(cfg: Config, indexed: pd.DataFrame, bench: str, periods: float, progress: Progress | None = None):
    b = cfg.backtest
    start, end, notes = qlib_backtest.trading_range(cfg, indexed.index.get_level_values("datetime").unique())
    portfolio, daily, positions = {}, {}, []
    bench_daily = None
    for i, name in enumerate(b.signals):
        if progress:
            progress(i, len(b.signals), f"Qlib backtest of {name}")
        report, held = qlib_backtest.run_topk_dropout(cfg, indexed[name], start, end, bench)
        excess = report["return"] - report["bench"]
        portfolio[name] = {
            "with_cost": portfolio_stats(report["return"] - report["cost"], report["turnover"], periods),
            "without_cost": portfolio_stats(report["return"], report["turnover"], periods),
            "excess_with_cost": portfolio_stats(excess - report["cost"], periods=periods),
            "excess_without_cost": portfolio_stats(excess, periods=periods),
            "qlib_risk_excess_with_cost": qlib_backtest.qlib_risk(excess - report["cost"], periods),
            "qlib_risk_excess_without_cost": qlib_backtest.qlib_risk(excess, periods),
        }
        daily[name] = pd.DataFrame({c: report[c] for c in ("return", "cost", "bench", "turnover")})
        positions.append(held.assign(signal=name))
        bench_daily = report["bench"]
    if progress:
        progress(len(b.signals), len(b.signals), "Qlib backtests done")
    bench_stats = portfolio_stats(bench_daily, periods=periods) if bench_daily is not None else {}
    held = pd.concat(positions, ignore_index=True) if positions else pd.DataFrame()
    return portfolio, daily, held, bench_stats, [qlib_backtest.stamp(start), qlib_backtest.stamp(end)], notes


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
