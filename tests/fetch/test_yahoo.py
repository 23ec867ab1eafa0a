"""yfinance through recorded Yahoo responses: adjusted prices with the factor kept, an incremental update that
checks the overlap (a revised bar reported, not replaced), rate-limit retries, an unknown ticker."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kronos_cli.fetch.request import build_request
from kronos_cli.fetch.run import fetch

pytest.importorskip("yfinance")


def request(out, end="2024-01-19", symbols=("AAPL", "MSFT"), fmt="csv", politeness=None, **kw):
    req = build_request("yfinance", list(symbols), "2024-01-02", end, "day", out, fmt, **kw)
    return dataclasses.replace(req, politeness=politeness) if politeness else req


def test_daily_bars_keep_the_adjustment_factor(tmp_path, cassette, no_wait):
    with cassette("yahoo_daily.yaml"):
        report = fetch(request(tmp_path, politeness=no_wait))
    assert not report.failed
    aapl = pd.read_csv(tmp_path / "AAPL.csv", index_col="timestamps", parse_dates=True)
    assert list(aapl.columns) == ["open", "high", "low", "close", "volume", "amount", "factor"]
    assert len(aapl) == 13 and str(aapl.index[0].date()) == "2024-01-02"  # 2024-01-15 is a NYSE holiday
    before, after = aapl.loc[:"2024-01-09", "factor"], aapl.loc["2024-01-10":, "factor"]
    assert (before < 1).all() and np.allclose(after, 1.0)  # a dividend went ex on 2024-01-10
    raw_close = aapl["close"] / aapl["factor"]  # Yahoo's Close, as traded (split-adjusted)
    assert raw_close.iloc[0] == pytest.approx(184.9999, abs=1e-3)
    assert report.results[0].gaps == 0 and report.results[0].bars == 13


def test_an_update_adds_the_tail_and_reports_a_revised_bar(tmp_path, cassette, no_wait):
    with cassette("yahoo_daily.yaml"):
        fetch(request(tmp_path, politeness=no_wait))
    msft_before = (tmp_path / "MSFT.csv").read_bytes()
    aapl_before = (tmp_path / "AAPL.csv").read_bytes()
    with cassette("yahoo_update.yaml"):  # asks from the fifth-last stored day (2024-01-12) on
        report = fetch(request(tmp_path, end="2024-01-26", politeness=no_wait))
    aapl, msft = report.results
    assert (aapl.status, aapl.added, aapl.bars, aapl.last) == ("updated", 5, 18, "2024-01-26")
    after = (tmp_path / "AAPL.csv").read_bytes()
    assert after.startswith(aapl_before)  # appended: the stored rows are untouched
    assert msft.status == "failed" and "revised" in msft.error and "2024-01-17" in msft.error
    assert "--refresh" in msft.error
    assert (tmp_path / "MSFT.csv").read_bytes() == msft_before  # nothing written for it


def test_a_rate_limit_is_retried(tmp_path, cassette, no_wait, caplog):
    with cassette("yahoo_rate_limit.yaml"):  # the history request answers 429 once, then the bars
        report = fetch(request(tmp_path, symbols=["AAPL"], politeness=no_wait))
    assert report.results[0].status == "new"
    assert any("YFRateLimitError" in r.message and "retry 1" in r.message for r in caplog.records)


def test_an_unknown_ticker_fails_alone(tmp_path, cassette, no_wait):
    with cassette("yahoo_unknown.yaml"):
        report = fetch(request(tmp_path, symbols=["NOSUCHTICKER", "AAPL"], politeness=no_wait))
    bad, good = report.results
    assert bad.status == "failed" and "NOSUCHTICKER" in bad.error
    assert good.status == "new" and (tmp_path / "AAPL.csv").is_file()
    assert not (tmp_path / "NOSUCHTICKER.csv").exists()


def test_hourly_bars_keep_the_exchange_clock(tmp_path, cassette, no_wait):
    req = build_request("yfinance", ["AAPL"], "2024-01-02", "2024-01-03", "1h", tmp_path, "csv")
    with cassette("yahoo_hourly.yaml"):
        report = fetch(dataclasses.replace(req, politeness=no_wait), now=pd.Timestamp("2024-01-10"))
    r = report.results[0]
    assert (r.bars, r.gaps, r.first, r.last) == (14, 0, "2024-01-02 09:30", "2024-01-03 15:30")  # on the XNYS grid


def test_intraday_bars_older_than_yahoo_keeps_are_a_user_error(tmp_path):
    from kronos_cli.core.errors import KronosError

    req = build_request("yfinance", ["AAPL"], "2024-01-02", "2024-01-03", "5min", tmp_path, "csv")
    with pytest.raises(KronosError, match="Yahoo keeps 5min bars for the last 60 days only"):
        fetch(req, now=pd.Timestamp("2024-06-01"))
