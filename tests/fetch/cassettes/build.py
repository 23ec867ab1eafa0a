"""Writes the recorded responses in this directory (vcrpy cassettes, played with record_mode="none").

They are written by hand, not recorded (the tests run without a network): each is the exact HTTP exchange the
client library makes, with small made-up prices in the service's own format (Yahoo's v8 chart JSON, Binance's
exchangeInfo and klines, Eastmoney's kline JSON, Sina's constituents page). Run `python tests/fetch/cassettes/build.py`
after changing it; the YAML files are what the tests read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
NY = "America/New_York"


def _response(body: str, status: int = 200, ctype: str = "application/json") -> dict:
    message = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}[status]
    return {
        "status": {"code": status, "message": message},
        "headers": {"Content-Type": [ctype]},
        "body": {"string": body},
    }


def _get(uri: str, body: str, status: int = 200, ctype: str = "application/json") -> dict:
    return {
        "request": {"method": "GET", "uri": uri, "body": None, "headers": {}},
        "response": _response(body, status, ctype),
    }


def _write(name: str, interactions: list[dict]) -> None:
    text = yaml.safe_dump({"interactions": interactions, "version": 1}, sort_keys=False, width=10_000)
    (HERE / name).write_text(text)


# ---- Yahoo (yfinance): a cookie, a crumb, the ticker's time zone (range=1d), then the chart over the range.
CRUMB = "kronosTestCrumb"
Q2 = "https://query2.finance.yahoo.com/v8/finance/chart"


def _yahoo_session(charts: int) -> list[dict]:
    """yfinance without curl_cffi asks fc.yahoo.com for a cookie once, then again before each chart request (it gets
    none here), and the crumb once."""
    cookie = _get("https://fc.yahoo.com/", "", 404, "text/html")
    return [
        *[cookie] * (charts + 1),
        _get("https://query1.finance.yahoo.com/v1/test/getcrumb", CRUMB, 200, "text/plain"),
    ]


def _meta(symbol: str) -> dict:
    return {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
            "exchangeTimezoneName": NY, "timezone": "EST", "gmtoffset": -18000, "dataGranularity": "1d",
            "range": "", "priceHint": 2, "regularMarketPrice": 190.0}  # fmt: skip


def _tz(symbol: str) -> dict:
    chart = {
        "chart": {"result": [{"meta": _meta(symbol), "timestamp": [], "indicators": {"quote": [{}]}}], "error": None}
    }
    return _get(f"{Q2}/{symbol}?range=1d&interval=1d&crumb={CRUMB}", json.dumps(chart))


def yahoo_days(start: str, end: str) -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS").sessions_in_range(start, end)


def yahoo_prices(symbol: str, days: pd.DatetimeIndex, revise: str | None = None) -> dict:
    """Deterministic made-up bars: the close walks by a fixed pattern from a symbol's base price."""
    base = {"AAPL": 185.0, "MSFT": 370.0}[symbol]
    n0 = yahoo_days("2024-01-02", "2024-02-29")
    k = np.array([n0.get_loc(d) for d in days])
    close = base * (1 + 0.004 * np.sin(k * 1.3) + 0.001 * k)
    if revise is not None:  # the source now reports this day differently
        close[days.get_loc(pd.Timestamp(revise))] *= 1.01
    return {"open": close * 0.998, "high": close * 1.006, "low": close * 0.993, "close": close,
            "volume": (5e7 + 1e6 * (k % 7)).astype(int)}  # fmt: skip


def yahoo_chart(symbol: str, start: str, end: str, dividend: str | None = None, revise: str | None = None) -> dict:
    """The history request (start to end inclusive) and its response; a dividend makes Adj Close differ from Close
    before its ex-date, as Yahoo reports it."""
    days = yahoo_days(start, end)
    p = yahoo_prices(symbol, days, revise)
    adj = p["close"].copy()
    events = {}
    if dividend is not None:
        ex = pd.Timestamp(dividend)
        amount = 0.24
        prev_close = p["close"][days.get_loc(ex) - 1] if ex in days and days.get_loc(ex) > 0 else p["close"][0]
        adj = np.where(days < ex, p["close"] * (1 - amount / prev_close), p["close"])
        t = int((ex + pd.Timedelta(hours=9, minutes=30)).tz_localize(NY).timestamp())
        events = {"dividends": {str(t): {"amount": amount, "date": t}}}
    stamps = [int((d + pd.Timedelta(hours=9, minutes=30)).tz_localize(NY).timestamp()) for d in days]
    quote = {
        k: [round(float(v), 4) if k != "volume" else int(v) for v in p[k]]
        for k in ("open", "high", "low", "close", "volume")
    }
    result = {
        "meta": _meta(symbol),
        "timestamp": stamps,
        "indicators": {"quote": [quote], "adjclose": [{"adjclose": [round(float(a), 4) for a in adj]}]},
    }
    if events:
        result["events"] = events
    p1 = int(pd.Timestamp(start).tz_localize(NY).timestamp())
    p2 = int((pd.Timestamp(end) + pd.Timedelta(days=1)).tz_localize(NY).timestamp())
    events = "events=div%2Csplits%2CcapitalGains"
    uri = f"{Q2}/{symbol}?period1={p1}&period2={p2}&interval=1d&includePrePost=False&{events}&crumb={CRUMB}"
    return _get(uri, json.dumps({"chart": {"result": [result], "error": None}}))


def yahoo_missing(symbol: str) -> list[dict]:
    """An unknown ticker: its time-zone request and then yfinance's quote lookup answer 404, each asked twice (once
    more after the consent page, which has no token here, and a fresh cookie and crumb)."""
    body = {
        "chart": {
            "result": None,
            "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
        }
    }
    quote = {
        "quoteSummary": {
            "result": None,
            "error": {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"},
        }
    }
    uri = (
        f"https://query2.finance.yahoo.com/v10/finance/quoteSummary/{symbol}?modules=financialData%2CquoteType%2C"
        f"defaultKeyStatistics%2CassetProfile%2CsummaryDetail&corsDomain=finance.yahoo.com&formatted=false"
        f"&symbol={symbol}&lang=en-US&region=US&crumb={CRUMB}"
    )
    consent = _get("https://guce.yahoo.com/consent", "<html><body>consent</body></html>", 200, "text/html")
    crumb = _yahoo_session(0)[-1]
    tz = _get(f"{Q2}/{symbol}?range=1d&interval=1d&crumb={CRUMB}", json.dumps(body), 404)
    summary = _get(uri, json.dumps(quote), 404)
    return [tz, consent, crumb, tz, summary, consent, crumb, summary]


def yahoo_hourly(symbol: str, start: str, end: str) -> dict:
    """Hourly bars (09:30 to 15:30, the last one half an hour long) with the trading periods Yahoo sends with them."""
    days = yahoo_days(start, end)
    hours = ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    stamps = [int(pd.Timestamp(f"{d:%Y-%m-%d} {h}").tz_localize(NY).timestamp()) for d in days for h in hours]
    close = [round(185.0 + 0.1 * k, 4) for k in range(len(stamps))]
    quote = {"open": [c - 0.05 for c in close], "high": [c + 0.2 for c in close], "low": [c - 0.2 for c in close],
             "close": close, "volume": [1_000_000 + k for k in range(len(stamps))]}  # fmt: skip
    periods = [[{"timezone": "EST", "start": int(pd.Timestamp(f"{d:%Y-%m-%d} 09:30").tz_localize(NY).timestamp()),
                 "end": int(pd.Timestamp(f"{d:%Y-%m-%d} 16:00").tz_localize(NY).timestamp()), "gmtoffset": -18000}]
               for d in days]  # fmt: skip
    meta = {**_meta(symbol), "dataGranularity": "1h", "tradingPeriods": periods}
    result = {"meta": meta, "timestamp": stamps, "indicators": {"quote": [quote]}}
    p1 = int(pd.Timestamp(start).tz_localize(NY).timestamp())
    p2 = int((pd.Timestamp(end) + pd.Timedelta(days=1)).tz_localize(NY).timestamp())
    events = "events=div%2Csplits%2CcapitalGains"
    uri = f"{Q2}/{symbol}?period1={p1}&period2={p2}&interval=1h&includePrePost=False&{events}&crumb={CRUMB}"
    return _get(uri, json.dumps({"chart": {"result": [result], "error": None}}))


def yahoo() -> None:
    first = [*_yahoo_session(4), _tz("AAPL"), yahoo_chart("AAPL", "2024-01-02", "2024-01-19", dividend="2024-01-10"),
             _tz("MSFT"), yahoo_chart("MSFT", "2024-01-02", "2024-01-19")]  # fmt: skip
    _write("yahoo_daily.yaml", first)
    # a week later: the last five stored days again (to check them) and the new week; MSFT's 2024-01-17 revised
    update = [*_yahoo_session(4), _tz("AAPL"), yahoo_chart("AAPL", "2024-01-12", "2024-01-26", dividend="2024-01-10"),
              _tz("MSFT"), yahoo_chart("MSFT", "2024-01-12", "2024-01-26", revise="2024-01-17")]  # fmt: skip
    _write("yahoo_update.yaml", update)
    # Rate-limited once: yfinance answers a 429 by trying the other cookie strategy (the consent page, which has no
    # token here, then a fresh cookie and crumb) and asking again; the second 429 is raised as YFRateLimitError,
    # which kronos retries: a cookie, then the bars.
    limited = yahoo_chart("AAPL", "2024-01-02", "2024-01-19", dividend="2024-01-10")
    too_many = _get(limited["request"]["uri"], "Too Many Requests", 429, "text/html")
    consent = _get("https://guce.yahoo.com/consent", "<html><body>consent</body></html>", 200, "text/html")
    crumb = _yahoo_session(0)[-1]
    _write("yahoo_rate_limit.yaml", [*_yahoo_session(5), crumb, consent, _tz("AAPL"), too_many, too_many, limited])
    _write("yahoo_hourly.yaml", [*_yahoo_session(2), _tz("AAPL"), yahoo_hourly("AAPL", "2024-01-02", "2024-01-03")])
    _write("yahoo_unknown.yaml", [*_yahoo_session(8), *yahoo_missing("NOSUCHTICKER"), _tz("AAPL"),
                                  yahoo_chart("AAPL", "2024-01-02", "2024-01-19", dividend="2024-01-10")])  # fmt: skip


# ---- Binance (ccxt): the spot markets, then klines paged by startTime (limit per call given by the caller).
BINANCE = "https://api.binance.com/api/v3"
HOUR_MS = 3_600_000


def _market(symbol: str, base: str) -> dict:
    return {"symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": "USDT",
            "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"}],
            "permissions": ["SPOT"], "permissionSets": [["SPOT"]]}  # fmt: skip


def binance_markets() -> dict:
    body = {"timezone": "UTC", "serverTime": 1704067200000, "rateLimits": [],
            "symbols": [_market("BTCUSDT", "BTC"), _market("ETHUSDT", "ETH")]}  # fmt: skip
    return _get(f"{BINANCE}/exchangeInfo", json.dumps(body))


def kline(symbol: str, t_ms: int, revise: bool = False) -> list:
    base = {"BTCUSDT": 42000.0, "ETHUSDT": 2300.0}[symbol]
    k = (t_ms - 1704067200000) // HOUR_MS
    c = base * (1 + 0.002 * np.sin(k * 0.7) + 0.0002 * k) * (1.02 if revise else 1.0)
    row = [round(c * 0.999, 2), round(c * 1.003, 2), round(c * 0.996, 2), round(c, 2), round(10 + k % 5, 5)]
    return [t_ms, *[f"{v}" for v in row], t_ms + HOUR_MS - 1, f"{row[3] * row[4]:.2f}", 100 + k, "1.0", "1.0", "0"]


def klines(symbol: str, since: int, limit: int, now: int, revise_at: int | None = None) -> dict:
    """Binance's answer: at most `limit` bars opening at or after `since`, those the exchange has by `now`."""
    first = -(-since // HOUR_MS) * HOUR_MS
    rows = [kline(symbol, t, t == revise_at) for t in range(first, min(first + limit * HOUR_MS, now), HOUR_MS)]
    uri = f"{BINANCE}/klines?interval=1h&limit={limit}&symbol={symbol}&startTime={since}"
    return _get(uri, json.dumps(rows))


def pages(symbol: str, start: int, stop: int, limit: int, now: int, revise_at: int | None = None) -> list[dict]:
    """The calls a pager makes for the bars opening in [start, stop]: `limit` bars from `start`, then from just after
    the last bar returned, until a page is short or passes `stop`."""
    out, since = [], start
    while True:
        out.append(klines(symbol, since, limit, now, revise_at))
        got = json.loads(out[-1]["response"]["body"]["string"])
        if not got or (len(got) < limit and got[-1][0] >= stop) or got[-1][0] > stop:
            return out
        since = got[-1][0] + 1


def binance() -> None:
    t0 = 1704067200000  # 2024-01-01 00:00 UTC
    end3, end5 = t0 + 72 * HOUR_MS - 1, t0 + 120 * HOUR_MS - 1  # the last instants of 2024-01-03 and -05
    now3, now5 = t0 + 80 * HOUR_MS, t0 + 128 * HOUR_MS  # the exchange has bars until then
    _write("binance_hourly.yaml", [binance_markets(), *pages("BTCUSDT", t0, end3, 24, now3),
                                   *pages("ETHUSDT", t0, end3, 24, now3)])  # fmt: skip
    # two days later: from the fifth-last stored bar on; ETH's 2024-01-03 22:00 bar revised
    overlap = t0 + 67 * HOUR_MS
    _write("binance_update.yaml", [binance_markets(), *pages("BTCUSDT", overlap, end5, 24, now5),
                                   *pages("ETHUSDT", overlap, end5, 24, now5, t0 + 70 * HOUR_MS)])  # fmt: skip
    first = pages("BTCUSDT", t0, end3, 24, now3)
    busy = _get(first[1]["request"]["uri"], json.dumps({"code": -1003, "msg": "Too many requests."}), 429)
    _write("binance_rate_limit.yaml", [binance_markets(), first[0], busy, *first[1:]])
    _write("binance_markets.yaml", [binance_markets()])
    _write("binance_eth.yaml", [binance_markets(), *pages("ETHUSDT", t0, end3, 24, now3)])
    revised = pages("ETHUSDT", t0, end3, 24, now3, revise_at=t0 + 70 * HOUR_MS)
    _write("binance_eth_revised.yaml", [binance_markets(), *revised])


# ---- Eastmoney (akshare): raw and back-adjusted daily klines; Sina: an index's constituents.
EASTMONEY = "https://push2his.eastmoney.com/api/qt/stock/kline/get"


def eastmoney(code: str, start: str, end: str, fqt: int) -> dict:
    secid = f"{1 if code.startswith('6') else 0}.{code}"
    days = pd.DatetimeIndex([d for d in pd.bdate_range(start, end) if d.strftime("%m-%d") not in ("01-01",)])
    base = {"600000": 6.6, "000001": 9.4}.get(code, 10.0)
    lines = []
    scale = 11.0 if fqt == 2 else 1.0  # back-adjusted (hfq) prices: the raw ones x 11
    for k, d in enumerate(days):
        c, lots = base * (1 + 0.01 * np.sin(k)) * scale, 100000 + 1000 * k
        o, h, lo = c * 0.995, c * 1.01, c * 0.99
        lines.append(
            f"{d:%Y-%m-%d},{o:.2f},{c:.2f},{h:.2f},{lo:.2f},{lots},{lots * 100 * c / scale:.2f},2.00,0.50,0.03,0.10"
        )
    data = (
        None
        if code == "999999"
        else (
            {
                "code": code,
                "market": int(secid[0]),
                "name": code,
                "decimal": 2,
                "dktotal": len(lines),
                "preKPrice": base,
                "klines": lines,
            }
            if lines
            else None
        )
    )
    uri = (
        f"{EASTMONEY}?fields1=f1%2Cf2%2Cf3%2Cf4%2Cf5%2Cf6&fields2=f51%2Cf52%2Cf53%2Cf54%2Cf55%2Cf56%2Cf57%2Cf58%2Cf59%2Cf60%2Cf61%2Cf116"
        f"&ut=7eea3edcaed734bea9cbfc24409ed989&klt=101&fqt={fqt}&secid={secid}"
        f"&beg={start.replace('-', '')}&end={end.replace('-', '')}"
    )
    return _get(uri, json.dumps({"rc": 0, "rt": 17, "svr": 1, "lt": 1, "full": 0, "data": data}))


def eastmoney_minutes(code: str, days: list[str], fqt: int) -> dict:
    """5-minute bars, stamped at their end as Eastmoney stamps them (09:35 is the bar from 09:30)."""
    scale, lines = 11.0 if fqt == 2 else 1.0, []
    for day in days:
        ends = [
            *pd.date_range(f"{day} 09:35", f"{day} 11:30", freq="5min"),
            *pd.date_range(f"{day} 13:05", f"{day} 15:00", freq="5min"),
        ]
        for k, t in enumerate(ends):
            c, lots = 6.6 * (1 + 0.002 * np.sin(k)) * scale, 1000 + 10 * k
            prices = f"{c * 0.999:.2f},{c:.2f},{c * 1.001:.2f},{c * 0.998:.2f}"
            row = f"{prices},{lots},{lots * 100 * c / scale:.2f},0.3,0.1,0.01,0.02"
            lines.append(f"{t:%Y-%m-%d %H:%M},{row}")
    data = {"code": code, "market": 1, "name": code, "decimal": 2, "dktotal": len(lines), "klines": lines}
    uri = (
        f"{EASTMONEY}?fields1=f1%2Cf2%2Cf3%2Cf4%2Cf5%2Cf6&fields2=f51%2Cf52%2Cf53%2Cf54%2Cf55%2Cf56%2Cf57%2Cf58%2Cf59"
        f"%2Cf60%2Cf61&ut=7eea3edcaed734bea9cbfc24409ed989&klt=5&fqt={fqt}&secid=1.{code}&beg=0&end=20500000"
    )
    return _get(uri, json.dumps({"rc": 0, "rt": 17, "svr": 1, "lt": 1, "full": 0, "data": data}))


SINA = "https://vip.stock.finance.sina.com.cn/corp/go.php/vII_NewestComponent/indexid"


def sina_members(index: str, members: list[tuple[str, str, str]]) -> dict:
    """Sina's page of an index's newest constituents (one page: its pager links to "#"), in GB2312 as Sina sends
    it: the third table holds the pager, the fourth lists code, name and the day each joined."""
    rows = "".join(f"<tr><td>{c}</td><td>{n}</td><td>{d}</td></tr>" for c, n, d in members)
    filler = "<tr><td>-</td></tr>" * 2
    other = f"<table><tr><td>-</td></tr>{filler}</table>"  # page furniture: menus, headers
    html = (
        f'<html><body>{other * 2}<table class="table2"><tr><td><a href="#">1</a></td></tr>{filler}</table>'
        f'<table id="NewStockTable"><tr><th colspan="3">{index}</th></tr>'
        f"<tr><td>品种代码</td><td>品种名称</td><td>纳入日期</td></tr>{rows}</table></body></html>"
    )
    out = _get(f"{SINA}/{index}.phtml", "", 200, "text/html; charset=gb2312")
    out["response"]["body"]["string"] = html.encode("gb2312")
    return out


def akshare() -> None:
    a, b = "2024-01-02", "2024-01-19"
    _write("eastmoney_daily.yaml", [eastmoney("600000", a, b, 0), eastmoney("600000", a, b, 2),
                                    eastmoney("000001", a, b, 0), eastmoney("000001", a, b, 2),
                                    eastmoney("999999", a, b, 0)])  # fmt: skip
    days = ["2024-01-02", "2024-01-03"]
    _write("eastmoney_5min.yaml", [eastmoney_minutes("600000", days, 0), eastmoney_minutes("600000", days, 2)])
    # CSI300 today: 600000 a member since 2005, 000001 joined on 2024-01-10 (so not a member before)
    members = [("600000", "浦发银行", "2005-04-08"), ("000001", "平安银行", "2024-01-10")]
    _write("eastmoney_csi300.yaml", [sina_members("000300", members), eastmoney("600000", a, b, 0),
                                     eastmoney("600000", a, b, 2), eastmoney("000001", a, b, 0),
                                     eastmoney("000001", a, b, 2)])  # fmt: skip


if __name__ == "__main__":
    yahoo()
    binance()
    akshare()
