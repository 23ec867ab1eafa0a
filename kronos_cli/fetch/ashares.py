"""China A-shares through akshare (Eastmoney's daily and 5/15/30/60-minute bars; Sina's index constituents with their
inclusion dates). Eastmoney stamps a minute bar at its end; here it is stamped at its start, as the XSHG grid is.

Prices are back-adjusted (hfq) with `factor` = adjusted close / raw close, as Qlib's cn_data keeps them: two
requests a symbol, raw and adjusted. Volume is in shares (Eastmoney counts lots of 100). An index's members are
today's members from the day each joined: a stock that left the index before today is not known to the source, so
the pool is point-in-time for joins, not for departures.
"""

from __future__ import annotations

import functools

import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.frames import bar_frame
from kronos_cli.fetch.retry import Retrier, SymbolError, network_error
from kronos_cli.market.sessions import BarFreq

POOLS = {"csi300": "000300", "csi500": "000905", "csi800": "000906", "csi1000": "000852", "sse50": "000016"}
LOT = 100  # shares in one of Eastmoney's volume units
MINUTES = (5, 15, 30, 60)  # Eastmoney's minute bars (its 1-minute ones reach five days back only)


class AkshareSource:
    name = "akshare"
    pause_s = 0.5  # between symbols: Eastmoney blocks clients that ask too fast

    def __init__(self, ak, retry: Retrier) -> None:
        self.ak, self.retry = ak, retry

    def interval(self, freq: BarFreq) -> str:
        if freq.minutes not in MINUTES and freq.intraday:
            raise KronosError(
                f"akshare (Eastmoney) offers no {freq} bars; choose interval day, 5min, 15min, 30min or 60min",
                setting="interval",
            )
        return "daily" if not freq.intraday else str(freq.minutes)

    def default_calendar(self, symbols: tuple[str, ...]) -> str:
        return "XSHG"

    def transient(self, exc: BaseException) -> bool:
        return network_error(exc)

    def _table(self, code: str, start: pd.Timestamp, end: pd.Timestamp, freq: BarFreq, adjust: str) -> pd.DataFrame:
        """Eastmoney's bars of one adjustment, indexed by their start (its minute bars are stamped at their end)."""
        if not freq.intraday:
            day = f"{start:%Y%m%d}", f"{end:%Y%m%d}"
            call = functools.partial(self.ak.stock_zh_a_hist, code, "daily", *day, adjust=adjust)
            stamp, shift = "日期", pd.Timedelta(0)
        else:
            span = f"{start:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}"
            call = functools.partial(self.ak.stock_zh_a_hist_min_em, code, *span, str(freq.minutes), adjust)
            stamp, shift = "时间", freq.step
        try:
            df = self.retry(call, self.transient, code)
        except (TypeError, KeyError, ValueError):  # akshare indexes a missing answer ("data": null) and fails so
            df = pd.DataFrame()
        if df.empty:
            raise SymbolError(f"Eastmoney has no {freq} bars of {code} between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
        return df.set_index(pd.DatetimeIndex(pd.to_datetime(df[stamp])) - shift)

    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, freq: BarFreq) -> pd.DataFrame:
        code = a_share_code(symbol)
        raw = self._table(code, start, end, freq, "")
        adj = self._table(code, start, end, freq, "hfq").reindex(raw.index)
        factor = (adj["收盘"] / raw["收盘"]).to_numpy(float)
        return bar_frame(
            raw.index,
            adj["开盘"].to_numpy(float),
            adj["最高"].to_numpy(float),
            adj["最低"].to_numpy(float),
            adj["收盘"].to_numpy(float),
            raw["成交量"].to_numpy(float) * LOT / factor,
            raw["成交额"].to_numpy(float),
            factor,
        )

    def members(self, pool: str) -> dict[str, pd.Timestamp]:
        """The index's members (as SH600000-style symbols) and the day each joined."""
        index = POOLS.get(pool.lower(), pool)
        df = self.retry(lambda: self.ak.index_stock_cons(symbol=index), self.transient, f"{pool} members")
        if df is None or df.empty:
            raise KronosError(f"no constituents of the index {pool!r}; use one of {', '.join(POOLS)} or a code")
        codes, joined = df.iloc[:, 0].astype(str).str.zfill(6), pd.to_datetime(df.iloc[:, 2])
        return {qlib_symbol(c): t for c, t in zip(codes, joined)}


def a_share_code(symbol: str) -> str:
    """600000, SH600000 or 600000.SS as Eastmoney's six digits."""
    s = symbol.upper().replace(".SS", "").replace(".SZ", "").replace(".SH", "")
    s = s[2:] if s[:2] in ("SH", "SZ", "BJ") else s
    if not (len(s) == 6 and s.isdigit()):
        raise SymbolError(f"{symbol} is not an A-share code (six digits such as 600000, or SH600000)")
    return s


def qlib_symbol(code: str) -> str:
    return ("SH" if code.startswith("6") else "BJ" if code.startswith(("4", "8")) else "SZ") + code
