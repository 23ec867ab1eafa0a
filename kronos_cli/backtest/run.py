"""`kronos backtest`: forecasts -> signals -> IC and accuracy -> Qlib portfolio backtests -> report files."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from kronos_cli.backtest import metrics, qlib_backtest
from kronos_cli.backtest.forecasting import cache_key, forecast_test_split
from kronos_cli.backtest.signals import make_signals, realised_returns
from kronos_cli.config import Config
from kronos_cli.data.store import read_manifest
from kronos_cli.errors import KronosError
from kronos_cli.forecast.device import resolve_device
from kronos_cli.io import atomic_path, write_json, write_text
from kronos_cli.plots import plot_performance
from kronos_cli.runs import backtest_dir, forecast_cache_dir, load_pair

log = logging.getLogger(__name__)


def run_backtest(
    cfg: Config,
    tokenizer: str | None = None,
    model: str | None = None,
    device: str = "auto",
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    manifest = read_manifest(cfg.data.dataset_path)
    if manifest["splits"].get("test", {}).get("windows", 0) == 0:
        raise KronosError(
            f"the dataset at {cfg.data.dataset_path} has no test windows; set data.test_time_range "
            f"and run `kronos prep` again"
        )
    dev = resolve_device(device)
    bench = qlib_backtest.benchmark_for(cfg)
    qlib_backtest.check_benchmark(cfg, bench)
    pair = load_pair(cfg, tokenizer, model)
    predictor = pair.predictor(dev, cfg.data.max_context, cfg.data.clip)
    out = backtest_dir(cfg)
    key = cache_key(pair.weights, cfg, manifest["config_hash"])
    fc = forecast_test_split(cfg, predictor, forecast_cache_dir(cfg, key), progress)
    symbols = [s["name"] for s in manifest["symbols"]]

    b = cfg.backtest
    signals = make_signals(fc, symbols, b.signals, returns=b.returns_signals)
    realised = realised_returns(fc, symbols)
    indexed = signals.set_index(["datetime", "instrument"])
    signal_quality = {name: metrics.ic_table(indexed[name], realised) for name in b.signals}
    accuracy = metrics.accuracy(fc.paths.mean(axis=1), fc.realised, fc.last_close)

    qlib_backtest.init_qlib(cfg.data.provider_uri, cfg.data.region)
    start, end, notes = qlib_backtest.trading_range(cfg, pd.DatetimeIndex(signals["datetime"].unique()))
    for note in notes:
        log.warning(note)
    portfolio, daily = {}, {}
    bench_daily = None
    for name in b.signals:
        report = qlib_backtest.run_topk_dropout(cfg, indexed[name], start, end, bench)
        with_cost = report["return"] - report["cost"]
        excess = report["return"] - report["bench"]
        excess_cost = excess - report["cost"]
        portfolio[name] = {
            "with_cost": metrics.portfolio_stats(with_cost, report["turnover"]),
            "without_cost": metrics.portfolio_stats(report["return"], report["turnover"]),
            "excess_with_cost": metrics.portfolio_stats(excess_cost),
            "excess_without_cost": metrics.portfolio_stats(excess),
            "qlib_risk_excess_with_cost": qlib_backtest.qlib_risk(excess_cost),
            "qlib_risk_excess_without_cost": qlib_backtest.qlib_risk(excess),
        }
        daily[name] = pd.DataFrame(
            {
                "return": report["return"],
                "cost": report["cost"],
                "bench": report["bench"],
                "turnover": report["turnover"],
            }
        )
        bench_daily = report["bench"]
    benchmark_stats = metrics.portfolio_stats(bench_daily) if bench_daily is not None else {}

    result = {
        "run_name": cfg.run_name,
        "tokenizer": pair.sources["tokenizer"],
        "predictor": pair.sources["model"],
        "device": str(dev),
        "benchmark": bench,
        "backtest_range": [f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"],
        "signal_range": [f"{signals['datetime'].min():%Y-%m-%d}", f"{signals['datetime'].max():%Y-%m-%d}"],
        "notes": notes,
        "test_windows": int(len(fc.paths)),
        "forecast_cache": str(forecast_cache_dir(cfg, key)),
        "reused_forecast_chunks": fc.reused_chunks,
        "conventions": {
            "annualization_days": metrics.ANNUAL_DAYS,
            "accumulation": metrics.ACCUMULATION,
            "signal_units": "normalised (z-score of each window's lookback)",
            "realised_return": f"close after {cfg.data.predict_window} bars / last observed close - 1",
        },
        "signal_quality": signal_quality,
        "forecast_accuracy": accuracy,
        "portfolio": portfolio,
        "benchmark_stats": benchmark_stats,
        "daily_returns": {
            name: {"date": [f"{d:%Y-%m-%d}" for d in df.index], **{c: df[c].round(8).tolist() for c in df.columns}}
            for name, df in daily.items()
        },
        "config": cfg.to_dict(),
        "elapsed_s": None,
    }
    result["elapsed_s"] = round(time.perf_counter() - t0, 2)
    _write_outputs(out, result, signals, daily, cfg)
    return result


def _write_outputs(out: Path, result: dict, signals: pd.DataFrame, daily: dict[str, pd.DataFrame], cfg: Config) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "backtest_results.json", result)
    if cfg.backtest.signal_format == "parquet":
        with atomic_path(out / "signals.parquet") as tmp:
            signals.to_parquet(tmp, index=False)
        result["signals_file"] = str(out / "signals.parquet")
    else:
        with atomic_path(out / "signals.csv") as tmp:
            signals.to_csv(tmp, index=False)
        result["signals_file"] = str(out / "signals.csv")
    plot_performance(daily, out / "performance_plot.png", title=f"{cfg.run_name}: TopkDropout backtest")
    write_text(out / "analysis_report.txt", render_report(result))
    result["outputs"] = {
        "results": str(out / "backtest_results.json"),
        "plot": str(out / "performance_plot.png"),
        "report": str(out / "analysis_report.txt"),
        "signals": result["signals_file"],
    }


def render_report(r: dict) -> str:
    lines = [
        f"Kronos backtest: {r['run_name']}",
        "=" * 60,
        f"tokenizer  {r['tokenizer']}",
        f"predictor  {r['predictor']}",
        f"benchmark  {r['benchmark']}    backtest {r['backtest_range'][0]}..{r['backtest_range'][1]}    "
        f"signals {r['signal_range'][0]}..{r['signal_range'][1]}",
        f"test windows {r['test_windows']}",
        "",
    ]
    for note in r["notes"]:
        lines.append(f"note: {note}")
    c = r["conventions"]
    lines += [
        f"Returns are daily, annualised with {c['annualization_days']} trading days and accumulated by "
        f"{c['accumulation']} (Qlib's conventions). Signals are in {c['signal_units']}.",
        "",
        "Signal quality (against the realised return over the predict horizon)",
        f"{'signal':<8}{'IC':>9}{'ICIR':>9}{'Rank IC':>9}{'RankICIR':>10}",
    ]
    for name, q in r["signal_quality"].items():
        lines.append(f"{name:<8}{q['IC']:>9.4f}{q['ICIR']:>9.4f}{q['Rank IC']:>9.4f}{q['Rank ICIR']:>10.4f}")
    a = r["forecast_accuracy"]
    lines += [
        "",
        "Forecast accuracy (close, normalised units)",
        f"MAE {a['MAE']:.4f}  MSE {a['MSE']:.4f}  R2 {a['R2']:.4f}  directional accuracy "
        f"{a['directional_accuracy']:.1%}  correlation {a['correlation']:.4f}",
        "",
        "Portfolio (TopkDropout)",
        f"{'signal':<8}{'ann.ret':>9}{'vol':>8}{'IR':>8}{'maxDD':>9}{'win':>7}{'turn':>7}{'excess':>9}"
        f"{'exc.IR':>8}  (with cost)",
    ]
    for name, p in r["portfolio"].items():
        w, e = p["with_cost"], p["excess_with_cost"]
        lines.append(
            f"{name:<8}{w['annualized_return']:>9.2%}{w['volatility']:>8.2%}{w['information_ratio']:>8.2f}"
            f"{w['max_drawdown']:>9.2%}{w['win_rate']:>7.0%}{w.get('turnover', float('nan')):>7.2f}"
            f"{e['annualized_return']:>9.2%}{e['information_ratio']:>8.2f}"
        )
    bst = r["benchmark_stats"]
    if bst:
        lines.append(
            f"{'bench':<8}{bst['annualized_return']:>9.2%}{bst['volatility']:>8.2%}"
            f"{bst['information_ratio']:>8.2f}{bst['max_drawdown']:>9.2%}{bst['win_rate']:>7.0%}"
        )
    lines.append("")
    return "\n".join(lines)
