"""Portfolio backtests with Qlib's own engine: TopkDropoutStrategy, a daily SimulatorExecutor, Qlib's exchange.

The only backtest module that imports qlib.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import pandas as pd

from kronos_cli.config import Config
from kronos_cli.data.qlib_source import init_qlib
from kronos_cli.errors import KronosError

log = logging.getLogger(__name__)

POOL_BENCHMARKS = {"csi300": "SH000300", "csi800": "SH000906", "csi1000": "SH000852"}


def benchmark_for(cfg: Config) -> str:
    if cfg.backtest.benchmark:
        return cfg.backtest.benchmark
    pool = cfg.data.instrument if isinstance(cfg.data.instrument, str) else None
    if pool not in POOL_BENCHMARKS:
        raise KronosError(
            f"no default benchmark for the pool {cfg.data.instrument!r}; set backtest.benchmark (for example SH000300)"
        )
    return POOL_BENCHMARKS[pool]


def check_benchmark(cfg: Config, bench: str) -> None:
    path = Path(cfg.data.provider_uri) / "features" / bench.lower() / f"close.{cfg.data.freq}.bin"
    if not path.is_file():
        raise KronosError(
            f"the benchmark {bench} is not in the provider at {cfg.data.provider_uri} (no {path.name} "
            f"under features/{bench.lower()}); set backtest.benchmark to an index the provider has"
        )


def check_signal_days(cfg: Config, signal_days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The signal days inside the backtest range, or a one-line error when there are none."""
    b = cfg.backtest
    inside = signal_days[(signal_days >= pd.Timestamp(b.start_time)) & (signal_days <= pd.Timestamp(b.end_time))]
    if inside.empty:
        raise KronosError(
            f"no pool member has a signal between backtest.start_time and backtest.end_time ({b.start_time}.."
            f"{b.end_time}); the test split's signals cover {signal_days.min():%Y-%m-%d}..{signal_days.max():%Y-%m-%d}"
            f". Move the backtest range into them (or data.test_time_range over it)"
        )
    return inside


def trading_range(cfg: Config, signal_days: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp, list[str]]:
    """The backtest range, inside the configured one and the days that have signals; notes say what moved.

    Qlib's TopkDropout trades on day T with the signal of the trading day before it, so a signal of the
    provider's last day ranks tomorrow's trades (see `kronos signals`) and is not traded here.
    """
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    b = cfg.backtest
    want_lo, want_hi = pd.Timestamp(b.start_time), pd.Timestamp(b.end_time)
    inside = check_signal_days(cfg, signal_days)
    cal = pd.DatetimeIndex(D.calendar(start_time=want_lo, end_time=want_hi, freq="day"))
    notes = []
    lo, hi = inside.min(), want_hi
    held = int(((cal >= want_lo) & (cal < lo)).sum())
    if held:
        notes.append(
            f"the backtest range starts {held} trading day(s) before the first signal; it starts at "
            f"{lo:%Y-%m-%d} instead of holding cash"
        )
    full = pd.DatetimeIndex(D.calendar(freq="day"))
    if hi >= full[-1]:  # Qlib needs the next trading day to settle the last one
        hi = full[-2]
        notes.append(
            f"the backtest ends {hi:%Y-%m-%d}, the provider's second-to-last trading day (the last day's "
            f"signals rank trades for the day after it)"
        )
    days = cal[(cal >= lo) & (cal <= hi)]
    if len(days) < 2:
        raise KronosError(f"fewer than two trading days with signals between {b.start_time} and {b.end_time}")
    return days[0], days[-1], notes


def run_topk_dropout(
    cfg: Config, signal: pd.Series, start: pd.Timestamp, end: pd.Timestamp, benchmark: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Qlib's daily portfolio report (account, return, cost, bench, turnover, ...) and the positions held at
    each day's close (date, instrument, amount, weight) for one signal."""
    backtest, executor, TopkDropoutStrategy = _qlib_backtest_api()
    b = cfg.backtest
    init_qlib(cfg.data.provider_uri, cfg.data.region)
    strategy = TopkDropoutStrategy(signal=signal, topk=b.topk, n_drop=b.n_drop, hold_thresh=b.hold_thresh)
    ex = executor.SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, verbose=False)
    chatter = io.StringIO()  # Qlib's own progress bar; our progress and results say what happened
    with warnings.catch_warnings(), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's empty-slice notes inside Qlib's indicators
        exchange = {
            "freq": "day",
            "limit_threshold": b.limit_threshold,
            "deal_price": b.deal_price,
            "open_cost": b.open_cost,
            "close_cost": b.close_cost,
            "min_cost": b.min_cost,
        }
        metrics, _ = backtest(
            start_time=start,
            end_time=end,
            strategy=strategy,
            executor=ex,
            account=b.account,
            benchmark=benchmark,
            exchange_kwargs=exchange,
        )
    report, positions = metrics["1day"]
    return report, _positions(positions)


def _positions(positions: dict) -> pd.DataFrame:
    rows = []
    for day, pos in sorted(positions.items()):
        held = pos.position if hasattr(pos, "position") else pos
        for inst, info in held.items():
            if isinstance(info, dict) and "amount" in info:
                rows.append((pd.Timestamp(day), inst, float(info["amount"]), float(info.get("weight", float("nan")))))
    return pd.DataFrame(rows, columns=["datetime", "instrument", "amount", "weight"])


def _qlib_backtest_api():
    """Qlib's backtest entry points. Importing them imports gym, which prints a deprecation banner on stderr
    that means nothing to our users; it is swallowed here, once."""
    with contextlib.redirect_stderr(io.StringIO()):
        from qlib.backtest import backtest, executor  # lazy: qlib is an optional extra, slow to import
        from qlib.contrib.strategy import TopkDropoutStrategy  # lazy: as above
    return backtest, executor, TopkDropoutStrategy


def qlib_risk(returns: pd.Series) -> dict[str, float]:
    from qlib.contrib.evaluate import risk_analysis  # lazy: qlib is an optional extra

    return {k: float(v) for k, v in risk_analysis(returns, freq="day")["risk"].items()}
