"""`kronos fetch` on the command line: the summary table, the config snippet, and one line with the right exit code
for each kind of trouble (2: the user's to fix; 1: a symbol failed, the others written)."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from tests.fetch.conftest import cassette, no_yahoo_disk_cache  # noqa: F401  (fixtures)

pytest.importorskip("yfinance")
runner = CliRunner()
US = ["fetch", "yfinance", "--start", "2024-01-02", "--end", "2024-01-19"]


def test_a_fetch_prints_the_summary_and_a_config(tmp_path, cassette):  # noqa: F811
    with cassette("yahoo_daily.yaml"):
        res = runner.invoke(app, [*US, "AAPL", "MSFT", "--out", str(tmp_path), "--print-config"])
    assert res.exit_code == 0, res.output
    assert "AAPL" in res.stderr and "MSFT" in res.stderr and "XNYS" in res.stderr  # the summary
    assert f"path: {tmp_path.resolve()}" in res.stdout and "calendar: XNYS" in res.stdout
    assert 'start_time: "2024-01-02"' in res.stdout
    assert res.stdout.startswith("# kronos fetch") and "AAPL" in res.stderr  # the config alone on stdout
    snippet = tmp_path / "run.yaml"
    snippet.write_text(res.stdout)
    cfg = config.load(snippet, [])  # the config it prints loads and passes the checks
    assert (cfg.data.source, cfg.data.csv.calendar, cfg.data.end_time) == ("csv", "XNYS", "2024-01-19")
    assert (cfg.backtest.market, cfg.backtest.benchmark, cfg.backtest.topk) == ("us", "equal-weight", 1)


def test_a_partial_failure_lists_the_failed_symbols_and_exits_1(tmp_path, cassette):  # noqa: F811
    with cassette("yahoo_unknown.yaml"):
        res = runner.invoke(app, [*US, "NOSUCHTICKER", "AAPL", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["failed"] == ["NOSUCHTICKER"]
    assert "failed: NOSUCHTICKER: Yahoo knows no ticker NOSUCHTICKER" in " ".join(res.stderr.split())
    assert (tmp_path / "AAPL.csv").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--interval", "4h"], "yfinance offers no 240min bars"),
        (["--format", "xlsx"], "--format must be one of csv, parquet, qlib"),
        (["--end", "2023-01-01"], "--end (2023-01-01) is before --start"),
        (["--calendar", "XNOPE"], "XNOPE"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(tmp_path, args, message):
    res = runner.invoke(app, [*US, "AAPL", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_missing_extra_names_the_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ccxt", None)  # as if not installed: importing it raises ImportError
    res = runner.invoke(app, ["fetch", "ccxt", "BTC/USDT", "--start", "2024-01-01", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "pip install 'kronos-cli[fetch-ccxt]'" in res.stderr


def test_the_summary_table_names_each_symbol(tmp_path, cassette):  # noqa: F811
    pytest.importorskip("ccxt")
    with cassette("binance_markets.yaml"):  # markets only: neither symbol is one
        res = runner.invoke(app, ["fetch", "ccxt", "NOPE/USDT", "--start", "2024-01-01", "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert "NOPEUSDT" in res.stdout and "failed" in res.stdout and "24/7" in res.stdout
    assert "failed: NOPE/USDT: binance has no market NOPE/USDT" in " ".join(res.stderr.split())
