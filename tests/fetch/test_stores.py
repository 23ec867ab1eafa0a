"""What a fetch writes: a Qlib provider that real pyqlib reads (with `$factor`), updated by appending only the new
bars to each feature file; an update that fails half-way is rolled back, here and at the next run after a kill."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch import journal
from kronos_cli.fetch.request import build_request
from kronos_cli.fetch.run import fetch

pytest.importorskip("ccxt")
pytest.importorskip("yfinance")
PAGE = 24


def crypto(out, politeness, end="2024-01-03", symbols=("BTC/USDT", "ETH/USDT")):
    req = build_request("ccxt", list(symbols), "2024-01-01", end, "1h", out, "qlib")
    return dataclasses.replace(req, politeness=politeness)


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pyqlib_reads_the_provider_with_the_factor(tmp_path, cassette, no_wait):
    req = dataclasses.replace(
        build_request("yfinance", ["AAPL", "MSFT"], "2024-01-02", "2024-01-19", "day", tmp_path / "us", "qlib"),
        politeness=no_wait,
    )
    with cassette("yahoo_daily.yaml"):
        report = fetch(req)
    from qlib.data import D

    from kronos_cli.data.qlib_source import init_qlib

    init_qlib(str(tmp_path / "us"), "us")
    got = D.features(["AAPL"], ["$close", "$factor", "$volume"], freq="day").xs("AAPL", level=0)
    assert len(got) == 13 and (got.loc[:"2024-01-09", "$factor"] < 1).all()
    assert np.allclose(got.loc["2024-01-10":, "$factor"], 1.0)
    assert "source: qlib" in report.config_snippet() and "instrument: all" in report.config_snippet()


def test_an_update_appends_only_the_new_bars(tmp_path, cassette, no_wait):
    with cassette("binance_hourly.yaml"):
        fetch(crypto(tmp_path, no_wait), page=PAGE)
    close = tmp_path / "features" / "btcusdt" / "close.60min.bin"
    before = close.read_bytes()
    with cassette("binance_update.yaml"):  # BTC: 48 new bars; ETH: a revised bar, so nothing written for it
        report = fetch(crypto(tmp_path, no_wait, end="2024-01-05"), page=PAGE)
    assert [r.status for r in report.results] == ["updated", "failed"]
    after = close.read_bytes()
    assert after[: len(before)] == before and len(after) == len(before) + 48 * 4
    assert len((tmp_path / "calendars" / "60min.txt").read_text().splitlines()) == 120
    assert (tmp_path / "features" / "ethusdt" / "close.60min.bin").stat().st_size == 4 + 72 * 4
    small = sum(len((tmp_path / f).read_bytes()) for f in ("calendars/60min.txt", "instruments/all.txt"))
    assert report.bytes_written == 9 * 48 * 4 + small  # nine fields' new bars, the calendar and the pool


def test_a_failed_update_is_rolled_back(tmp_path, cassette, no_wait, monkeypatch):
    with cassette("binance_hourly.yaml"):
        fetch(crypto(tmp_path, no_wait), page=PAGE)
    before = files(tmp_path)
    calls = []

    def flaky(path, data):  # the disk fills up after the first feature file
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(path, data)

    real = journal.append_bytes
    monkeypatch.setattr("kronos_cli.fetch.qlib_store.append_bytes", flaky)
    with cassette("binance_update.yaml"), pytest.raises(OSError, match="No space"):
        fetch(crypto(tmp_path, no_wait, end="2024-01-05"), page=PAGE)
    assert files(tmp_path) == before


def test_an_update_killed_half_way_is_undone_by_the_next_run(tmp_path, cassette, no_wait):
    with cassette("binance_hourly.yaml"):
        fetch(crypto(tmp_path, no_wait), page=PAGE)
    before = files(tmp_path)
    close = tmp_path / "features" / "btcusdt" / "close.60min.bin"
    cal = tmp_path / "calendars" / "60min.txt"
    with pytest.raises(KeyboardInterrupt):  # a kill: the block's own rollback is skipped by recording first
        with journal.journaled(tmp_path, [close], [cal]):
            journal.append_bytes(close, b"\0" * 8)
            cal.write_text("garbage\n")
            raise KeyboardInterrupt
    assert files(tmp_path) == before  # rolled back at once
    journal_path = tmp_path / journal.JOURNAL
    from kronos_cli.core.io import write_json

    write_json(journal_path, {"sizes": {"features/btcusdt/close.60min.bin": close.stat().st_size}, "texts": {}})
    journal.append_bytes(close, b"\0" * 8)  # as if killed after appending
    assert journal.recover(tmp_path) and files(tmp_path) == before


def test_refresh_rewrites_the_provider_whole(tmp_path, cassette, no_wait):
    with cassette("binance_eth.yaml"):
        fetch(crypto(tmp_path, no_wait, symbols=["ETH/USDT"]), page=PAGE)
    close = tmp_path / "features" / "ethusdt" / "close.60min.bin"
    before = np.fromfile(close, dtype="<f4")
    req = dataclasses.replace(crypto(tmp_path, no_wait, symbols=["ETH/USDT"]), refresh=True)
    with cassette("binance_eth_revised.yaml"):
        report = fetch(req, page=PAGE)
    after = np.fromfile(close, dtype="<f4")
    assert report.results[0].status == "new" and len(after) == len(before)
    assert after[1 + 70] == pytest.approx(before[1 + 70] * 1.02, rel=1e-3)  # 2024-01-03 22:00, revised
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*"))  # no staging directory left behind


def test_a_directory_that_is_not_a_fetched_provider_is_left_alone(tmp_path, no_wait):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(KronosError, match="not empty and holds no provider"):
        fetch(crypto(tmp_path, no_wait), page=PAGE)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
