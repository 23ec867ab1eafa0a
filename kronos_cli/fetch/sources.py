"""The sources by name: each wraps its client library (an optional extra) behind one small interface."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from kronos_cli.fetch.ashares import AkshareSource, a_share_code, qlib_symbol
from kronos_cli.fetch.crypto import CcxtSource
from kronos_cli.fetch.extras import client
from kronos_cli.fetch.request import FetchRequest
from kronos_cli.fetch.retry import Retrier
from kronos_cli.fetch.yahoo import YahooSource
from kronos_cli.market.sessions import BarFreq


class Source(Protocol):
    name: str
    pause_s: float  # between symbols, unless the request says otherwise

    def interval(self, freq: BarFreq) -> str: ...  # the source's name for the bar size, or a KronosError

    def default_calendar(self, symbols: tuple[str, ...]) -> str: ...

    def transient(self, exc: BaseException) -> bool: ...  # worth retrying

    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, freq: BarFreq) -> pd.DataFrame: ...


def open_source(req: FetchRequest, page: int | None = None) -> Source:
    """The source a request names, its client library imported (or a KronosError naming the pip install); each of
    its requests is retried on transient failures as `req.politeness` says."""
    lib = client(req.source)
    retry = Retrier(req.politeness)
    if req.source == "yfinance":
        return YahooSource(lib, retry)
    if req.source == "akshare":
        return AkshareSource(lib, retry)
    return CcxtSource(lib, retry, req.exchange, page)


def stored_name(source: str, symbol: str) -> str:
    """The name a symbol is stored under (a file's stem, a Qlib instrument): BTC/USDT as BTCUSDT, an A-share as
    SH600000, a Yahoo index ^GSPC as GSPC."""
    if source == "akshare":
        return qlib_symbol(a_share_code(symbol))
    return symbol.upper().replace("/", "").replace(":", "").replace("^", "")
