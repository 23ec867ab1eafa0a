"""The real services, once each: skipped unless KRONOS_LIVE_FETCH=1 (the network is needed, and the services'
answers change from day to day)."""

from __future__ import annotations

import os

import pytest

from kronos_cli.fetch.request import build_request
from kronos_cli.fetch.run import fetch

pytestmark = pytest.mark.skipif(os.environ.get("KRONOS_LIVE_FETCH") != "1", reason="set KRONOS_LIVE_FETCH=1")


@pytest.mark.parametrize(
    "source,symbols,interval",
    [("yfinance", ["AAPL", "MSFT"], "day"), ("akshare", ["600000"], "day"), ("ccxt", ["BTC/USDT"], "1h")],
)
def test_a_week_from_each_source(tmp_path, source, symbols, interval):
    req = build_request(source, symbols, "2024-01-02", "2024-01-09", interval, tmp_path, "csv")
    report = fetch(req)
    assert not report.failed, [r.error for r in report.failed]
    assert all(r.bars > 0 for r in report.results)
