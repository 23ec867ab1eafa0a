"""Portfolio backtests with Qlib's own engine: TopkDropoutStrategy, a SimulatorExecutor at the data's bar size,
Qlib's exchange with the market's rules.

The only backtest module that imports qlib.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import pandas as pd

from kronos_cli.backtest.markets import EQUAL_WEIGHT, market_rules
from kronos_cli.calendar import range_end
from kronos_cli.config import Config
from kronos_cli.data.provider import pool_of, provider_uri
from kronos_cli.data.qlib_source import init_qlib
from kronos_cli.errors import KronosError
from kronos_cli.sessions import parse_freq

log = logging.getLogger(__name__)


def check_benchmark(cfg: Config, bench: str) -> None:
    if bench == EQUAL_WEIGHT:
        return
    uri, freq = provider_uri(cfg.data), parse_freq(cfg.data.freq).qlib
    path = Path(uri) / "features" / bench.lower() / f"close.{freq}.bin"
    if not path.is_file():
        raise KronosError(
            f"the benchmark {bench} is not in the provider at {uri} (no {path.name} under features/"
            f"{bench.lower()}); set backtest.benchmark to an index the provider has, or to {EQUAL_WEIGHT}"
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
    """The backtest range, inside the configured one and the days that have signals; notes say what moved, and a
    warning is logged when the configured range was cut short of what the user asked for.

    Qlib's TopkDropout trades on day T with the signal of the trading day before it, so a signal of the
    provider's last day ranks tomorrow's trades (see `kronos signals`) and is not traded here: a range that
    ends on the provider's last day ends on the day before it, as every backtest must (an info line, no more).
    """
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    b, freq = cfg.backtest, parse_freq(cfg.data.freq).qlib
    want_lo, want_hi = pd.Timestamp(b.start_time), range_end(b.end_time)
    inside = check_signal_days(cfg, signal_days)
    cal = pd.DatetimeIndex(D.calendar(start_time=want_lo, end_time=want_hi, freq=freq))
    notes = []
    lo, hi = inside.min(), want_hi
    held = int(((cal >= want_lo) & (cal < lo)).sum())
    if held:
        notes.append(
            f"the backtest range starts {held} bar(s) before the first signal; it starts at {stamp(lo)} instead "
            f"of holding cash"
        )
        log.warning(notes[-1])
    full = pd.DatetimeIndex(D.calendar(freq=freq))
    if hi >= full[-1]:  # Qlib needs the next bar to settle the last one
        hi = full[-2]
        notes.append(
            f"the backtest ends {stamp(hi)}, the provider's second-to-last bar (the last bar's signals rank "
            f"trades for the bar after it)"
        )
        past_data = want_hi > range_end(full[-1].normalize())  # asked for days after the provider's last one
        if past_data:
            notes[-1] += f"; backtest.end_time {b.end_time} is after the provider's last bar {stamp(full[-1])}"
        log.log(logging.WARNING if past_data else logging.INFO, notes[-1])
    days = cal[(cal >= lo) & (cal <= hi)]
    if len(days) < 2:
        raise KronosError(f"fewer than two bars with signals between {b.start_time} and {b.end_time}")
    return days[0], days[-1], notes


def stamp(t: pd.Timestamp) -> str:
    """A date, or a date and time for a bar inside a day."""
    return f"{t:%Y-%m-%d}" if t == t.normalize() else f"{t:%Y-%m-%d %H:%M}"


def benchmark_returns(cfg: Config, bench: str, start: pd.Timestamp, end: pd.Timestamp) -> str | pd.Series:
    """What Qlib's account takes as the benchmark: an index's code, or the bar returns of the equal-weight
    pool (each bar's mean close-to-close return of the stocks that are members then)."""
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    if bench != EQUAL_WEIGHT:
        return bench
    pool = pool_of(cfg.data)
    members = D.instruments(market=pool) if isinstance(pool, str) else pool
    freq = parse_freq(cfg.data.freq).qlib
    ret = D.features(members, ["$close/Ref($close,1)-1"], start_time=start, end_time=end, freq=freq)
    return ret.iloc[:, 0].groupby(level="datetime").mean().fillna(0.0)


def run_topk_dropout(
    cfg: Config, signal: pd.Series, start: pd.Timestamp, end: pd.Timestamp, benchmark: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Qlib's daily portfolio report (account, return, cost, bench, turnover, ...) and the positions held at
    each day's close (date, instrument, amount, weight) for one signal."""
    backtest, executor, TopkDropoutStrategy = _qlib_backtest_api()
    b, rules, freq = cfg.backtest, market_rules(cfg), parse_freq(cfg.data.freq).qlib
    init_qlib(provider_uri(cfg.data), cfg.data.region)
    strategy = TopkDropoutStrategy(signal=signal, topk=b.topk, n_drop=b.n_drop, hold_thresh=b.hold_thresh)
    ex = executor.SimulatorExecutor(time_per_step=freq, generate_portfolio_metrics=True, verbose=False)
    chatter = io.StringIO()  # Qlib's own progress bar; our progress and results say what happened
    with warnings.catch_warnings(), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's empty-slice notes inside Qlib's indicators
        exchange = {
            "freq": freq,
            "limit_threshold": rules.limit_threshold,
            "trade_unit": rules.trade_unit,
            "deal_price": b.deal_price,
            "open_cost": rules.open_cost,
            "close_cost": rules.close_cost,
            "min_cost": rules.min_cost,
        }
        metrics, _ = backtest(
            start_time=start,
            end_time=end,
            strategy=strategy,
            executor=ex,
            account=b.account,
            benchmark=benchmark_returns(cfg, benchmark, start, end),
            exchange_kwargs=exchange,
        )
    report, positions = next(iter(metrics.values()))  # one executor: one frequency
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


def qlib_risk(returns: pd.Series, periods: float) -> dict[str, float]:
    """Qlib's risk analysis of per-bar returns annualised with `periods` bars a year: summed (mean x periods, an
    information ratio of mean / std x sqrt(periods)), whatever the report's accumulation."""
    with contextlib.redirect_stderr(io.StringIO()):  # importing it imports gym: see `_qlib_backtest_api`
        from qlib.contrib.evaluate import risk_analysis  # lazy: qlib is an optional extra

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a flat series' 0 / 0 ratio: NaN, not a warning
        risk = risk_analysis(returns, N=periods, freq=None)["risk"]
    return {k: float(v) for k, v in risk.items()}


def provider_calendar(cfg: Config) -> pd.DatetimeIndex:
    """Every bar of the provider's calendar at the data's bar size."""
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    init_qlib(provider_uri(cfg.data), cfg.data.region)
    return pd.DatetimeIndex(D.calendar(freq=parse_freq(cfg.data.freq).qlib))


def series_prices(cfg: Config, instrument: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """One instrument's open and close on every bar of the calendar from `start` to `end` (NaN where it has no
    bar), the prices Qlib's exchange trades at."""
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    init_qlib(provider_uri(cfg.data), cfg.data.region)
    freq = parse_freq(cfg.data.freq).qlib
    bars = pd.DatetimeIndex(D.calendar(start_time=start, end_time=end, freq=freq))
    df = D.features([instrument], ["$open", "$close"], start_time=start, end_time=end, freq=freq)
    df = df.droplevel("instrument") if "instrument" in df.index.names else df
    return df.set_axis(["open", "close"], axis=1).reindex(bars)
