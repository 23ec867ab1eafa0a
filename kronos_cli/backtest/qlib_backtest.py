"""Portfolio backtests with Qlib's own engine: TopkDropoutStrategy, a SimulatorExecutor at the data's bar size,
Qlib's exchange with the market's rules, its quadratic market impact (`impact_cost`) and volume cap
(`volume_threshold`), built once per backtest range (`QlibMarket`); the fills come from Qlib's order indicators
and from the tradability checks TopkDropout makes before it sends an order (`backtest/fills.py`).

The only backtest module that imports qlib.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.backtest.fills import PRICE_LIMIT, SUSPENSION, Fills, count_fills
from kronos_cli.backtest.markets import EQUAL_WEIGHT, MarketRules, market_rules
from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.provider import pool_of, provider_uri
from kronos_cli.data.qlib_source import init_qlib
from kronos_cli.market.sessions import parse_freq
from kronos_cli.market.stamps import range_end

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


def check_capital(cfg: Config, keys: pd.MultiIndex, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """`backtest.account` and every `backtest.capacity` level buy at least one lot of the cheapest symbol with a
    signal in the range (its lowest close, in real shares: Qlib's adjusted close over its factor)."""
    from qlib.data import D  # lazy: qlib is an optional extra and slow to import

    b, lot = cfg.backtest, market_rules(cfg).trade_unit
    smallest = min([b.account, *b.capacity])
    if not lot:
        return
    init_qlib(provider_uri(cfg.data), cfg.data.region)
    names = sorted(set(keys.get_level_values("instrument")))
    freq = parse_freq(cfg.data.freq).qlib
    close = D.features(names, ["$close / $factor"], start_time=start, end_time=end, freq=freq).iloc[:, 0].dropna()
    if close.empty or smallest >= lot * close.min():
        return
    (symbol, day), price = close.idxmin(), float(close.min())
    key = "backtest.account" if smallest == b.account else "backtest.capacity"
    raise KronosError(
        f"{key} {smallest:,g} is below one lot of the cheapest symbol ({lot:g} shares of {symbol} at {price:,.2f} "
        f"on {stamp(pd.Timestamp(day))} = {lot * price:,.2f}); give every capital level at least that"
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


class QlibMarket:
    """Qlib's exchange over one backtest range, its quotes loaded once and shared by every simulation of that range:
    capital and cost levels change the account and the exchange's cost rates, never the quotes."""

    def __init__(self, cfg: Config, start: pd.Timestamp, end: pd.Timestamp, benchmark: str):
        self.cfg, self.start, self.end = cfg, start, end
        init_qlib(provider_uri(cfg.data), cfg.data.region)
        self.benchmark = benchmark_returns(cfg, benchmark, start, end)
        self._built: dict[tuple, object] = {}  # (limit, lot, volume limit) -> the Exchange holding those quotes
        self.refused: list[tuple[pd.Timestamp, str]] = []  # (bar, symbol) TopkDropout found untradable

    def exchange(self, rules: MarketRules):
        """Qlib's Exchange with `rules`: built with the first rules of its (limit, lot, volume limit), a copy with
        other cost rates after that (Qlib reads the rates at each deal; the quotes do not depend on them)."""
        from qlib.backtest.exchange import Exchange  # lazy: qlib is an optional extra and slow to import

        key = (rules.limit_threshold, rules.trade_unit, rules.volume_limit)
        if key not in self._built:
            with _quiet():
                self._built[key] = Exchange(
                    freq=parse_freq(self.cfg.data.freq).qlib,
                    start_time=self.start,
                    end_time=self.end,
                    deal_price=self.cfg.backtest.deal_price,
                    limit_threshold=rules.limit_threshold,
                    volume_threshold=volume_threshold(rules.volume_limit, self.cfg.data.freq),
                    trade_unit=rules.trade_unit,
                )
        ex = copy.copy(self._built[key])
        ex.open_cost, ex.close_cost, ex.min_cost = rules.open_cost, rules.close_cost, rules.min_cost
        ex.impact_cost = rules.impact_cost
        plain = ex.is_stock_tradable
        ex.is_stock_tradable = lambda stock_id, start_time, end_time, direction=None: self._record(
            plain(stock_id, start_time, end_time, direction), start_time, stock_id
        )  # an instance attribute: TopkDropout skips an untradable symbol without an order, and we count it
        return ex

    def _record(self, tradable: bool, when: pd.Timestamp, stock: str) -> bool:
        if not tradable:
            self.refused.append((pd.Timestamp(when), stock))
        return tradable

    def run(self, signal: pd.Series, rules: MarketRules, account: float) -> tuple[pd.DataFrame, pd.DataFrame, Fills]:
        """Qlib's bar report (account, return, cost, bench, turnover, ...), the positions held at each bar's close
        (datetime, instrument, amount, weight) and the fills of TopkDropout on `signal`."""
        backtest, executor, TopkDropoutStrategy = _qlib_backtest_api()
        b, freq = self.cfg.backtest, parse_freq(self.cfg.data.freq).qlib
        strategy = TopkDropoutStrategy(signal=signal, topk=b.topk, n_drop=b.n_drop, hold_thresh=b.hold_thresh)
        ex = executor.SimulatorExecutor(time_per_step=freq, generate_portfolio_metrics=True, verbose=False)
        exchange, self.refused = self.exchange(rules), []
        with _quiet():
            metrics, _ = backtest(
                start_time=self.start,
                end_time=self.end,
                strategy=strategy,
                executor=ex,
                account=account,
                benchmark=self.benchmark,
                exchange_kwargs={"exchange": exchange},
            )
        report, positions = next(iter(metrics.values()))  # one executor: one frequency
        held = _positions(positions)
        orders = _orders(ex.trade_account.get_trade_indicator().order_indicator_his, exchange, rules)
        return report, held, count_fills(orders, self._refusals(exchange, held, pd.DatetimeIndex(report.index)))

    def _refusals(self, exchange, held: pd.DataFrame, bars: pd.DatetimeIndex) -> pd.DataFrame:
        """The (bar, symbol) pairs TopkDropout left untradable, why (suspension or price limit), and whether the
        symbol was held at the bar's start (a locked holding) or not (a buy refused)."""
        rows = sorted(set(self.refused))
        by_bar = held.groupby("datetime")["instrument"].agg(set) if len(held) else pd.Series(dtype=object)
        before = {day: by_bar.get(prev, set()) for prev, day in zip(bars, bars[1:])}
        out = []
        for when, stock in rows:
            why = SUSPENSION if exchange.check_stock_suspended(stock, when, when) else PRICE_LIMIT
            out.append((when, stock, why, stock in before.get(when, set())))
        return pd.DataFrame(out, columns=["datetime", "instrument", "reason", "held"])


@contextlib.contextmanager
def _quiet():
    """Qlib's progress bar and numpy's empty-slice notes inside its indicators: our progress and results say what
    happened."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def volume_threshold(limit: float | None, freq: str) -> tuple[str, str] | None:
    """Qlib's volume threshold for a cap of `limit` x the bar's volume: cumulative over the day for daily bars (Qlib
    subtracts what was already dealt that day), the bar's own volume for intraday bars (Qlib's cumulative form
    needs its A-share-minute DayCumsum operator)."""
    if not limit:
        return None
    return ("current" if parse_freq(freq).intraday else "cum", f"{limit!r} * $volume")


def _orders(history: dict, exchange, rules: MarketRules) -> pd.DataFrame:
    """Every order TopkDropout sent, from Qlib's order indicators: bar, symbol, amount, dealt amount, the deal price
    and the volume cap (amounts in Qlib's adjusted shares; the cap NaN where there is none)."""
    rows = []
    for when, indicator in history.items():
        if "amount" not in indicator.data:
            continue
        asked, dealt = (_by_stock(indicator.data[k]) for k in ("amount", "deal_amount"))
        for stock, amount in asked.items():
            if not amount:
                continue
            price = exchange.get_deal_price(stock, when, when, direction=int(amount > 0))  # Qlib's BUY is 1
            cap = rules.volume_limit * exchange.get_volume(stock, when, when) if rules.volume_limit else np.nan
            rows.append((pd.Timestamp(when), stock, abs(amount), abs(dealt.get(stock, 0.0)), price, cap))
    return pd.DataFrame(rows, columns=["datetime", "instrument", "amount", "deal_amount", "price", "cap"])


def _by_stock(single) -> dict[str, float]:
    """A Qlib SingleData as {stock: value} (its own to_series needs an older pandas)."""
    return dict(zip(single.index.idx_list.tolist(), np.asarray(single.data, dtype=float).tolist()))


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
