"""Crypto spot bars through ccxt, on any exchange it supports: OHLCV paged past the exchange's per-call limit, under
ccxt's own rate limiter. Bars are stamped at their start in UTC, on the 24/7 calendar; prices are not adjusted."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.frames import bar_frame
from kronos_cli.fetch.retry import Retrier, SymbolError
from kronos_cli.market.sessions import BarFreq

log = logging.getLogger(__name__)
DEFAULT_PAGE = 500  # bars a call when the exchange does not say its limit
TIMEFRAMES = {None: "1d", 1: "1m", 3: "3m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 120: "2h", 240: "4h",
              360: "6h", 480: "8h", 720: "12h"}  # fmt: skip


class CcxtSource:
    name = "ccxt"
    pause_s = 0.0  # between symbols: ccxt's own rate limiter spaces the requests

    def __init__(self, ccxt, retry: Retrier, exchange: str, page: int | None = None) -> None:
        if exchange not in ccxt.exchanges:
            raise KronosError(
                f"ccxt knows no exchange {exchange!r}; choose one of ccxt.exchanges (binance, kraken, okx, ...)"
            )
        self.ccxt = ccxt
        # spot markets only: loading every market type costs a request each on exchanges such as binance
        self.ex = getattr(ccxt, exchange)({"enableRateLimit": True, "options": {"fetchMarkets": {"types": ["spot"]}}})
        self.page, self.retry = page, retry

    def interval(self, freq: BarFreq) -> str:
        tf = TIMEFRAMES.get(freq.minutes)
        offered = self.ex.timeframes or {}
        if tf is None or tf not in offered:
            raise KronosError(f"{self.ex.id} offers no {freq} bars; its timeframes are {', '.join(offered)}")
        return tf

    def default_calendar(self, symbols: tuple[str, ...]) -> str:
        return "24/7"

    def transient(self, exc: BaseException) -> bool:
        c = self.ccxt
        return isinstance(exc, (c.NetworkError, c.RateLimitExceeded)) and not isinstance(exc, c.BadSymbol)

    def _page_size(self) -> int:
        if self.page:
            return self.page
        try:
            return int(self.ex.features["spot"]["fetchOHLCV"]["limit"])
        except (KeyError, TypeError, ValueError):
            return DEFAULT_PAGE

    def _market(self, symbol: str) -> str:
        self.retry(self.ex.load_markets, self.transient, f"{self.ex.id} markets")
        if symbol not in self.ex.markets:
            near = [m for m in self.ex.symbols if m.replace("/", "") == symbol.replace("/", "").upper()]
            hint = f"; did you mean {near[0]}?" if near else " (symbols are written BASE/QUOTE, e.g. BTC/USDT)"
            raise SymbolError(f"{self.ex.id} has no market {symbol}{hint}")
        return symbol

    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, freq: BarFreq) -> pd.DataFrame:
        market, tf, page = self._market(symbol), self.interval(freq), self._page_size()
        since, stop = _ms(start), _ms(end)
        rows: list[list] = []
        while since <= stop:
            call = functools.partial(self.ex.fetch_ohlcv, market, tf, since=since, limit=page)
            got = self.retry(call, self.transient, symbol)
            got = [r for r in got if r[0] >= since]
            if not got:
                break
            rows += [r for r in got if r[0] <= stop]
            since = int(got[-1][0]) + 1  # the next page starts after the last bar returned
            if len(got) < page and got[-1][0] >= stop:
                break
        if not rows:
            raise SymbolError(f"{self.ex.id} has no {tf} bars of {symbol} between {start} and {end}")
        a = np.asarray(rows, dtype=np.float64)
        idx = pd.to_datetime(a[:, 0].astype(np.int64), unit="ms")
        return bar_frame(idx, a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5])


def _ms(t: pd.Timestamp) -> int:
    t = pd.Timestamp(t)
    t = t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t
    return int(t.value // 1_000_000)
