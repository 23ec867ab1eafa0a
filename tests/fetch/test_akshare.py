"""akshare through recorded Eastmoney and Sina responses: back-adjusted daily A-share bars with the factor kept, an
unknown code, and CSI300 membership from each member's inclusion date, written as a Qlib pool."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kronos_cli.fetch.request import build_request
from kronos_cli.fetch.run import fetch

pytest.importorskip("akshare")


def request(out, politeness, symbols, fmt="csv", **kw):
    req = build_request("akshare", list(symbols), "2024-01-02", "2024-01-19", "day", out, fmt, **kw)
    return dataclasses.replace(req, politeness=politeness)


def test_daily_bars_are_back_adjusted_with_their_factor(tmp_path, cassette, no_wait):
    with cassette("eastmoney_daily.yaml"):
        report = fetch(request(tmp_path, no_wait, ["600000", "SZ000001", "999999"]))
    ok, ok2, bad = report.results
    assert (ok.stored_as, ok.status, ok.bars, ok.gaps) == ("SH600000", "new", 14, 0)
    assert ok2.stored_as == "SZ000001" and bad.status == "failed" and "999999" in bad.error
    df = pd.read_csv(tmp_path / "SH600000.csv", index_col="timestamps", parse_dates=True)
    assert np.allclose(df["factor"], 11.0, rtol=1e-3)  # the hfq close over the raw close
    assert df["volume"].iloc[0] == pytest.approx(100000 * 100 / df["factor"].iloc[0])  # lots as shares, adjusted
    assert report.calendar == "XSHG"


def test_an_index_pool_is_point_in_time_from_inclusion_dates(tmp_path, cassette, no_wait):
    with cassette("eastmoney_csi300.yaml"):
        report = fetch(request(tmp_path, no_wait, [], fmt="qlib", pool="csi300"))
    assert not report.failed and len(report.results) == 2
    pool = (tmp_path / "instruments" / "csi300.txt").read_text().splitlines()
    assert pool == ["SH600000\t2024-01-02\t2024-01-19", "SZ000001\t2024-01-10\t2024-01-19"]
    assert "instrument: csi300" in report.config_snippet()


def test_no_network_is_retried_then_reported(tmp_path, monkeypatch, no_wait, caplog):
    import socket

    def unreachable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    report = fetch(request(tmp_path, no_wait, ["600000"]))
    assert report.results[0].status == "failed" and "ConnectionError" in report.results[0].error
    assert sum("retry" in r.message for r in caplog.records) == no_wait.attempts - 1
    assert not list(tmp_path.glob("*.csv"))


def test_minute_bars_are_stamped_at_their_start_on_the_xshg_grid(tmp_path, cassette, no_wait):
    req = dataclasses.replace(
        build_request("akshare", ["600000"], "2024-01-02", "2024-01-03", "5min", tmp_path, "csv"), politeness=no_wait
    )
    with cassette("eastmoney_5min.yaml"):
        report = fetch(req)
    r = report.results[0]
    assert (r.status, r.bars, r.gaps, r.first, r.last) == ("new", 96, 0, "2024-01-02 09:30", "2024-01-03 14:55")
    df = pd.read_csv(tmp_path / "SH600000.csv", index_col="timestamps", parse_dates=True)
    assert pd.Timestamp("2024-01-02 11:25") in df.index and pd.Timestamp("2024-01-02 11:30") not in df.index


def test_one_minute_bars_are_not_offered(tmp_path, no_wait):
    from kronos_cli.core.errors import KronosError

    with pytest.raises(KronosError, match="no 1min bars"):
        fetch(build_request("akshare", ["600000"], "2024-01-02", "2024-01-03", "1min", tmp_path, "csv"))
