"""`kronos backtest`: point-in-time forecasts of the test split -> signals -> IC and accuracy against realised
labels -> portfolio backtests (Qlib's TopkDropout, or the forecast's sign on one series) -> report files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from kronos_cli.backtest import qlib_backtest
from kronos_cli.backtest.annualization import BarsAYear, bars_a_year
from kronos_cli.backtest.markets import benchmark_for, market_rules
from kronos_cli.backtest.page import write_report
from kronos_cli.backtest.portfolios import Portfolios, one_series, simulator, trade, widest_pool
from kronos_cli.backtest.report import BacktestResult
from kronos_cli.backtest.sensitivity import sensitivity
from kronos_cli.config import Config
from kronos_cli.core.io import write_json, write_text
from kronos_cli.data.windows import origin_keys
from kronos_cli.forecast.device import resolve_device
from kronos_cli.forecast.signals import check_signals
from kronos_cli.market.sessions import parse_freq
from kronos_cli.market.stamps import range_end
from kronos_cli.metrics.accuracy import return_accuracy
from kronos_cli.metrics.ic import MIN_NAMES, ic_table, time_series_ic
from kronos_cli.metrics.portfolio import ACCUMULATIONS
from kronos_cli.records.record import recorded_set
from kronos_cli.records.runs import backtest_dir, load_pair
from kronos_cli.report.page import REPORT
from kronos_cli.report.plots import plot_capacity, plot_costs, plot_performance
from kronos_cli.runtime.split_forecasts import Scale, forecast_split, open_dataset, split_windows

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
    _check_before_forecasts(cfg, arrays, origins)
    dev = resolve_device(device)
    bench = benchmark_for(cfg)
    qlib_backtest.check_benchmark(cfg, bench)
    pair = load_pair(cfg, tokenizer, model)
    pair.warn_if_trained_otherwise(cfg)
    sf = forecast_split(cfg, arrays, origins, pair, dev, progress, scale=scale)
    table = sf.signal_table(b.signals, b.returns_signals)
    indexed = table.set_index(["datetime", "instrument"])
    year = _year(cfg)
    sim = simulator(cfg, indexed, bench)
    traded = trade(cfg, indexed, bench, year, progress, sim)
    curves = sensitivity(cfg, indexed, sim, traded, year, progress)  # the same signals: no forecast again
    symbols = widest_pool(indexed.index)
    result = BacktestResult(
        run_name=cfg.run_name,
        tokenizer=pair.sources["tokenizer"],
        predictor=pair.sources["model"],
        device=str(dev),
        strategy=traded.strategy,
        benchmark=traded.benchmark,
        backtest_range=traded.backtest_range,
        signal_range=[qlib_backtest.stamp(table["datetime"].min()), qlib_backtest.stamp(table["datetime"].max())],
        notes=traded.notes + (curves.notes if curves else []),
        signals=len(table),
        labelled=int(sf.real.known.sum()),
        symbols=symbols,
        forecast_cache=sf.cache_dir,
        reused_forecasts=sf.forecasts.reused,
        conventions=_conventions(cfg, sf.real.convention, year, traded),
        signal_quality={name: ic_table(indexed[name], indexed["label"]) for name in b.signals},
        forecast_accuracy=return_accuracy(sf.forecasts.return_paths().mean(axis=1), sf.real.path),
        portfolio=traded.stats,
        benchmark_stats=traded.bench_stats,
        fills={name: f.to_json() for name, f in traded.fills.items()},
        sensitivity=curves,
        daily_returns=_daily_json(traded.bars),
        config=cfg.to_dict(),
    )
    if symbols < MIN_NAMES:  # labels over the next P bars overlap: P - 1 lags
        lags = cfg.data.predict_window - 1
        result.series_quality = {name: time_series_ic(indexed[name], indexed["label"], lags) for name in b.signals}
    result.precision = sf.precision
    result.elapsed_s = round(time.perf_counter() - t0, 2)
    write_outputs(backtest_dir(cfg), result, table, traded.positions, traded.bars, cfg)
    return result


def _year(cfg: Config) -> BarsAYear:
    calendar = qlib_backtest.provider_calendar(cfg)
    return bars_a_year(market_rules(cfg), parse_freq(cfg.data.freq), calendar, cfg.backtest.bars_per_year)


def _check_before_forecasts(cfg: Config, arrays, origins) -> None:
    """What the signals' days and symbols say about the backtest, checked before hours of forecasts: signals in
    the range, a pool larger than topk (or one series), capital for a lot of the cheapest symbol."""
    b = cfg.backtest
    when = pd.DatetimeIndex(pd.to_datetime(arrays.timestamps[origins.rows]))
    qlib_backtest.check_signal_days(cfg, when.unique())
    names, _ = origin_keys(arrays, origins)
    keys = pd.MultiIndex.from_arrays([when, names], names=["datetime", "instrument"])
    if one_series(cfg, keys, pd.Timestamp(b.start_time), range_end(b.end_time)) is None:
        qlib_backtest.check_capital(cfg, keys, pd.Timestamp(b.start_time), range_end(b.end_time))


def _daily_json(daily: dict[str, pd.DataFrame]) -> dict[str, dict[str, list]]:
    return {
        n: {"date": [qlib_backtest.stamp(d) for d in df.index], **{c: df[c].round(8).tolist() for c in df}}
        for n, df in daily.items()
    }


def _conventions(cfg: Config, label: str, year: BarsAYear, traded: Portfolios) -> dict[str, object]:
    b, p, rules, freq = cfg.backtest, cfg.data.predict_window, market_rules(cfg), parse_freq(cfg.data.freq)
    return {
        "signal": f"computed at the close of bar t from the lookback ending on t: a statistic of the mean forecast "
        f"close over the next {p} bars minus the last close, in the window's lookback z-score; traded on bar t+1 "
        f"at the {b.deal_price}",
        "label": label,
        "universe": "point in time: a (bar, symbol) has a signal, a position and an IC term only while the symbol "
        "is a member of the pool on that bar",
        "strategy": traded.rules,
        "market": f"{b.market} ({rules.note}); price limit {rules.limit_threshold or 'none'}, lot "
        f"{rules.trade_unit or 'fractional'}, costs open {rules.open_cost:g} close {rules.close_cost:g} min "
        f"{rules.min_cost:g} (fractions of the traded value; min in the account's currency), impact "
        f"{rules.impact_cost:g} x (order value / bar value)^2 of the order, volume limit "
        f"{_share(rules.volume_limit)}; account {b.account:,.0f}",
        "bar": "day" if not freq.intraday else f"{freq} bar",
        "annualization": year.words,
        "annualization_bars": year.bars,
        "accumulation": b.accumulation,
        "returns": f"per bar, as fractions (0.01 = 1%); {ACCUMULATIONS[b.accumulation]}; volatility = std x "
        f"sqrt(bars a year); IR = mean / std x sqrt(bars a year), no risk-free rate; excess = the bar's return "
        f"minus the benchmark's, accumulated the same way; turnover = traded value / account value, a bar",
        "qlib_risk": "qlib_risk_* entries are Qlib's risk_analysis of the excess returns: summed (mean x bars a "
        "year), whatever backtest.accumulation says",
    }


def _share(limit: float | None) -> str:
    return f"{limit:g} of a bar's volume" if limit else "none"


def write_outputs(
    out: Path,
    result: BacktestResult,
    table: pd.DataFrame,
    positions: pd.DataFrame,
    daily: dict[str, pd.DataFrame],
    cfg: Config,
) -> None:
    """The signals, positions, plots, reports and results as one set in the run's own directory, which `out` then
    points at: a reader sees this run's files or the last one's, never a mix (`records.record.recorded_set`)."""
    names = {
        "results": "backtest_results.json",
        "report": "analysis_report.txt",
        "plot": "performance_plot.png",
        "signals": f"signals.{cfg.backtest.signal_format}",
        "positions": "positions.csv",
    }
    curves = result.sensitivity
    if curves and curves.capacity:
        names["capacity plot"] = "capacity_plot.png"
    if curves and curves.costs:
        names["cost plot"] = "cost_plot.png"
    names["html"] = REPORT
    with recorded_set(cfg, "backtest", [out]) as run:
        tmp, result.outputs = run.staging, {label: str(run.path / name) for label, name in names.items()}
        write_table = table.to_parquet if cfg.backtest.signal_format == "parquet" else table.to_csv
        write_table(tmp / names["signals"], index=False)
        positions.to_csv(tmp / names["positions"], index=False)
        title = f"{cfg.run_name}: {result.strategy} backtest"
        plot_performance(daily, tmp / names["plot"], title=title, benchmark=result.benchmark)
        if "capacity plot" in names:
            plot_capacity(curves.to_json()["capacity"], tmp / names["capacity plot"], f"{title}: capacity")
        if "cost plot" in names:
            plot_costs(curves.to_json()["costs"], tmp / names["cost plot"], f"{title}: cost sensitivity")
        write_text(tmp / names["report"], result.report_text())
        write_json(tmp / names["results"], result.to_json())
        write_report(tmp)  # from the files just written: the page shows what the JSON says
