"""ccxt through recorded Binance responses: hourly bars paged past the per-call limit, an incremental update with
a revised bar, a rate limit retried, an unknown market, an interval the exchange does not offer, no network."""

from __future__ import annotations

import dataclasses
import socket

import pandas as pd
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.request import build_request
from kronos_cli.fetch.run import fetch

pytest.importorskip("ccxt")
PAGE = 24  # bars a call: the recordings page a day at a time, as an exchange's limit of 1000 pages a longer range


def request(out, politeness, end="2024-01-03", symbols=("BTC/USDT", "ETH/USDT"), fmt="csv", interval="1h", **kw):
    req = build_request("ccxt", list(symbols), "2024-01-01", end, interval, out, fmt, **kw)
    return dataclasses.replace(req, politeness=politeness)


def test_hourly_bars_are_paged_past_the_per_call_limit(tmp_path, cassette, no_wait):
    with cassette("binance_hourly.yaml"):  # 72 bars each, in pages of 24 (4 calls: the last passes the range)
        report = fetch(request(tmp_path, no_wait), page=PAGE)
    assert [(r.stored_as, r.status, r.bars, r.gaps) for r in report.results] == [
        ("BTCUSDT", "new", 72, 0),
        ("ETHUSDT", "new", 72, 0),
    ]
    btc = pd.read_csv(tmp_path / "BTCUSDT.csv", index_col="timestamps", parse_dates=True)
    assert btc.index[0] == pd.Timestamp("2024-01-01 00:00") and btc.index[-1] == pd.Timestamp("2024-01-03 23:00")
    assert btc.index.to_series().diff().dropna().eq(pd.Timedelta("1h")).all()
    assert (btc["factor"] == 1.0).all() and report.calendar == "24/7"


def test_an_update_downloads_the_tail_and_reports_a_revised_bar(tmp_path, cassette, no_wait):
    with cassette("binance_hourly.yaml"):
        fetch(request(tmp_path, no_wait), page=PAGE)
    eth = (tmp_path / "ETHUSDT.csv").read_bytes()
    with cassette("binance_update.yaml"):  # from the fifth-last stored bar on; ETH's 22:00 bar on the 3rd revised
        report = fetch(request(tmp_path, no_wait, end="2024-01-05"), page=PAGE)
    btc_r, eth_r = report.results
    assert (btc_r.status, btc_r.added, btc_r.bars, btc_r.downloaded) == ("updated", 48, 120, 53)
    assert eth_r.status == "failed" and "2024-01-03 22:00:00" in eth_r.error
    assert (tmp_path / "ETHUSDT.csv").read_bytes() == eth
    assert report.bytes_written < (tmp_path / "BTCUSDT.csv").stat().st_size  # the tail only


def test_refresh_downloads_whole_and_accepts_the_revision(tmp_path, cassette, no_wait):
    with cassette("binance_eth.yaml"):
        fetch(request(tmp_path, no_wait, symbols=["ETH/USDT"]), page=PAGE)
    before = pd.read_csv(tmp_path / "ETHUSDT.csv", index_col="timestamps", parse_dates=True)
    with cassette("binance_eth_revised.yaml"):
        report = fetch(request(tmp_path, no_wait, symbols=["ETH/USDT"], refresh=True), page=PAGE)
    assert (report.results[0].status, report.results[0].bars) == ("new", 72)
    after = pd.read_csv(tmp_path / "ETHUSDT.csv", index_col="timestamps", parse_dates=True)
    when = pd.Timestamp("2024-01-03 22:00")
    assert after.loc[when, "close"] == pytest.approx(before.loc[when, "close"] * 1.02, rel=1e-3)


def test_a_rate_limit_is_retried(tmp_path, cassette, no_wait, caplog):
    with cassette("binance_rate_limit.yaml"):  # the second page answers 429 once
        report = fetch(request(tmp_path, no_wait, symbols=["BTC/USDT"]), page=PAGE)
    assert report.results[0].bars == 72
    assert any("DDoSProtection" in r.message or "RateLimit" in r.message for r in caplog.records)


def test_an_unknown_market_fails_alone(tmp_path, cassette, no_wait):
    with cassette("binance_markets.yaml"):
        report = fetch(request(tmp_path, no_wait, symbols=["NOPE/USDT", "BTCUSDT"]), page=PAGE)
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert "no market NOPE/USDT" in report.results[0].error
    assert "did you mean BTC/USDT" in report.results[1].error


def test_an_interval_the_exchange_lacks_is_a_user_error(tmp_path, no_wait):
    with pytest.raises(KronosError, match="offers no 7min bars"):
        fetch(request(tmp_path, no_wait, interval="7min"))
    assert not any(tmp_path.iterdir())


def test_no_network_fails_each_symbol_and_writes_nothing(tmp_path, monkeypatch, no_wait):
    def unreachable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    report = fetch(request(tmp_path, no_wait, symbols=["BTC/USDT"]), page=PAGE)
    assert report.results[0].status == "failed" and "NetworkError" in report.results[0].error
    assert not list(tmp_path.glob("*.csv"))


def test_a_bar_still_forming_is_left_for_the_next_fetch(tmp_path, cassette, no_wait):
    with cassette("binance_eth.yaml"):  # as if fetched at 22:30 on the 3rd: the 22:00 bar has not closed
        report = fetch(
            request(tmp_path, no_wait, symbols=["ETH/USDT"]), page=PAGE, now=pd.Timestamp("2024-01-03 22:30")
        )
    assert (report.results[0].bars, report.results[0].last) == (70, "2024-01-03 21:00")
