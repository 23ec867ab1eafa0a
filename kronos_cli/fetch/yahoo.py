"""Yahoo Finance through yfinance: any Yahoo ticker, daily and intraday bars within Yahoo's limits.

Prices are adjusted as Qlib's own Yahoo collector adjusts them: Yahoo's open, high, low and close are split-adjusted;
`factor` = Adj Close / Close carries the dividends, every price is multiplied by it and the volume divided by it,
so a Qlib provider gets `$factor` and `$close / $factor` is the price that traded (split-adjusted).
"""

from __future__ import annotations

import functools

import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.frames import bar_frame
from kronos_cli.fetch.retry import Retrier, SymbolError, network_error
from kronos_cli.market.sessions import BarFreq

INTERVALS = {None: "1d", 1: "1m", 2: "2m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 90: "90m"}
KEPT_DAYS = {1: 30, 2: 60, 5: 60, 15: 60, 30: 60, 60: 730, 90: 60}  # how far back Yahoo serves intraday bars
# Yahoo suffix -> the exchange's calendar (no suffix: a US listing)
SUFFIX_CALENDARS = {
    "HK": "XHKG", "L": "XLON", "T": "XTKS", "DE": "XFRA", "F": "XFRA", "TO": "XTSE", "SS": "XSHG", "SZ": "XSHE",
    "PA": "XPAR", "AS": "XAMS", "AX": "XASX", "KS": "XKRX", "NS": "XBOM", "BO": "XBOM", "SW": "XSWX", "MI": "XMIL",
}  # fmt: skip


class YahooSource:
    name = "yfinance"
    pause_s = 0.5  # between symbols: Yahoo publishes no limit; a request or two a second is what it tolerates

    def __init__(self, yf, retry: Retrier) -> None:
        self.yf, self.retry = yf, retry
        yf.config.debug.hide_exceptions = False  # raise, do not log-and-return-empty: a failure must be seen

    def interval(self, freq: BarFreq) -> str:
        if freq.minutes not in INTERVALS:
            offered = ", ".join("day" if k is None else f"{k}min" for k in INTERVALS)
            raise KronosError(f"yfinance offers no {freq} bars; choose interval from {offered}", setting="interval")
        return INTERVALS[freq.minutes]

    def default_calendar(self, symbols: tuple[str, ...]) -> str:
        found = {SUFFIX_CALENDARS.get(s.rsplit(".", 1)[1].upper(), "XNYS") if "." in s else "XNYS" for s in symbols}
        if len(found) > 1:
            raise KronosError(
                f"these tickers trade on different calendars ({', '.join(sorted(found))}); fetch each market into its "
                f"own directory, or pass calendar",
                setting="calendar",
            )
        return found.pop() if found else "XNYS"

    def check_range(self, start: pd.Timestamp, freq: BarFreq, now: pd.Timestamp) -> None:
        """Yahoo keeps intraday bars for a limited time: an older start is a mistake, said before downloading."""
        kept = KEPT_DAYS.get(freq.minutes)
        if kept is not None and start < now - pd.Timedelta(days=kept):
            raise KronosError(
                f"Yahoo keeps {freq} bars for the last {kept} days only; set start on or after "
                f"{now - pd.Timedelta(days=kept):%Y-%m-%d} (or fetch daily bars)",
                setting="start",
            )

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, self.yf.exceptions.YFRateLimitError) or network_error(exc)

    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, freq: BarFreq) -> pd.DataFrame:
        ticker = self.yf.Ticker(symbol)
        history = functools.partial(
            ticker.history,
            start=start.strftime("%Y-%m-%d"),
            end=(end + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),  # yfinance's end is exclusive
            interval=self.interval(freq),
            auto_adjust=False,
            actions=True,
        )
        try:
            df = self.retry(history, self.transient, symbol)
        except self.yf.exceptions.YFTickerMissingError as exc:
            raise SymbolError(f"Yahoo has no bars of {symbol} in the range ({_reason(exc)})") from None
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:  # yfinance's quote lookup
                raise SymbolError(f"Yahoo knows no ticker {symbol} (check it on finance.yahoo.com)") from None
            raise
        if df is None or df.empty:
            raise SymbolError(f"Yahoo has no bars of {symbol} between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
        return _frame(df, freq)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _frame(df: pd.DataFrame, freq: BarFreq) -> pd.DataFrame:
    idx = pd.DatetimeIndex(df.index)
    idx = idx.tz_localize(None) if idx.tz is not None else idx  # the exchange's wall clock
    if not freq.intraday:
        idx = idx.normalize()
    close = df["Close"].to_numpy(dtype=float)
    adj = df["Adj Close"].to_numpy(dtype=float) if "Adj Close" in df else close
    factor = adj / close
    return bar_frame(
        idx,
        df["Open"].to_numpy(float) * factor,
        df["High"].to_numpy(float) * factor,
        df["Low"].to_numpy(float) * factor,
        adj,
        df["Volume"].to_numpy(float) / factor,
        df["Volume"].to_numpy(float) * close,  # the amount traded does not change with the adjustment
        factor,
    )
