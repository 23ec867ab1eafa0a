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


def trading_range(cfg: Config, signal_days: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp, list[str]]:
    """The backtest range, inside the configured one and the days that have signals; notes say what moved."""
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    b = cfg.backtest
    want_lo, want_hi = pd.Timestamp(b.start_time), pd.Timestamp(b.end_time)
    first, last = signal_days.min(), signal_days.max()
    if first > want_hi or last < want_lo:
        raise KronosError(
            f"the test split's signals cover {first:%Y-%m-%d}..{last:%Y-%m-%d}, which does not "
            f"overlap the backtest range {b.start_time}..{b.end_time}; adjust backtest.start_time/"
            f"end_time or data.test_time_range"
        )
    cal = pd.DatetimeIndex(D.calendar(start_time=want_lo, end_time=want_hi, freq="day"))
    notes = []
    lo, hi = max(want_lo, first), min(want_hi, last)
    if lo > want_lo:
        held = int(((cal >= want_lo) & (cal < lo)).sum())
        notes.append(
            f"the backtest range starts {held} trading day(s) before the first signal; it starts at "
            f"{lo:%Y-%m-%d} instead of holding cash"
        )
    full = pd.DatetimeIndex(D.calendar(freq="day"))
    if hi >= full[-1]:  # Qlib needs the next trading day to settle the last one
        hi = full[-2]
    if hi < min(want_hi, last):
        notes.append(f"the backtest ends {hi:%Y-%m-%d}, the provider's second-to-last trading day")
    if hi < want_hi and hi == last:
        notes.append(f"signals end {last:%Y-%m-%d}, before backtest.end_time {b.end_time}")
    days = cal[(cal >= lo) & (cal <= hi)]
    if len(days) < 2:
        raise KronosError(f"fewer than two trading days with signals between {b.start_time} and {b.end_time}")
    return days[0], days[-1], notes


def run_topk_dropout(
    cfg: Config, signal: pd.Series, start: pd.Timestamp, end: pd.Timestamp, benchmark: str
) -> pd.DataFrame:
    """Qlib's daily portfolio report (account, return, cost, bench, turnover, ...) for one signal."""
    backtest, executor, TopkDropoutStrategy = _qlib_backtest_api()
    b = cfg.backtest
    init_qlib(cfg.data.provider_uri, cfg.data.region)
    strategy = TopkDropoutStrategy(signal=signal, topk=b.topk, n_drop=b.n_drop, hold_thresh=b.hold_thresh)
    ex = executor.SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, verbose=False)
    chatter = io.StringIO()  # Qlib's own progress bar; our progress and results say what happened
    with warnings.catch_warnings(), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's empty-slice notes inside Qlib's indicators
        metrics, _ = backtest(
            start_time=start,
            end_time=end,
            strategy=strategy,
            executor=ex,
            account=b.account,
            benchmark=benchmark,
            exchange_kwargs={
                "freq": "day",
                "limit_threshold": b.limit_threshold,
                "deal_price": b.deal_price,
                "open_cost": b.open_cost,
                "close_cost": b.close_cost,
                "min_cost": b.min_cost,
            },
        )
    report, _ = metrics["1day"]
    return report


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
