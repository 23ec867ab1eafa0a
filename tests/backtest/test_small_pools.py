"""`kronos backtest` on a one-series and a two-series market (the synthetic Qlib market's pool cut to one or two
symbols) with the tiny model: one series trades its forecast's sign against buy and hold, two trade TopkDropout
with topk 1; cross-sectional IC is reported as not defined, and the reported figures are those the bar returns
compound (or sum) to."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from tests.conftest import DEMO_SPLITS, backtest_args

runner = CliRunner()
POOLS = {1: "[SH600000]", 2: "[SH600000,SZ000010]"}


@pytest.fixture(scope="module")
def pools(tmp_path_factory, market):
    """{symbols: config} of datasets prepared from the synthetic market with a pool of one or two symbols."""
    from kronos_cli.data.prep import prepare

    out = {}
    for n, pool in POOLS.items():
        cfg = config.load(
            None,
            [
                f"data.provider_uri={market}",
                f"data.dataset_path={tmp_path_factory.mktemp('pool') / 'dataset'}",
                f"data.instrument={pool}",
                "data.lookback_window=30",
                "data.predict_window=5",
                *DEMO_SPLITS,
            ],
        )
        prepare(cfg)
        out[n] = cfg
    return out


def _backtest(cfg, checkpoints, out, *extra):
    tok, model = checkpoints
    args = [*backtest_args(cfg, tok, model, out), f"data.instrument={POOLS[len(cfg.data.instrument)]}", *extra]
    res = runner.invoke(app, [*args, "backtest.batch_size=2048", "--json"])
    results = out / "backtest_results" / "bt" / "backtest_results.json"
    return res, json.loads(results.read_text()) if res.exit_code == 0 else None


def _bars(results: dict, signal: str) -> pd.DataFrame:
    return pd.DataFrame(results["daily_returns"][signal])


def test_one_series_trades_the_forecasts_sign_against_buy_and_hold(pools, tiny_checkpoints, tmp_path):
    res, r = _backtest(pools[1], tiny_checkpoints, tmp_path)
    assert res.exit_code == 0, res.output
    assert r["strategy"] == "long/flat on the forecast's sign" and r["benchmark"] == "buy and hold SH600000"
    assert r["symbols"] == 1 and r["series_quality"]["mean"]["windows"] > 100
    report = (tmp_path / "backtest_results" / "bt" / "analysis_report.txt").read_text()
    assert "cross-sectional IC not defined for fewer than 3 symbols a bar (1 here)" in report
    assert "time-series IC" in report and "long/flat on the forecast's sign vs buy and hold SH600000" in report
    bars, stats = _bars(r, "mean"), r["portfolio"]["mean"]  # bar returns in the JSON: rounded to 1e-8
    assert stats["with_cost"]["total_return"] == pytest.approx(np.prod(1 + bars["return"] - bars["cost"]) - 1, abs=1e-6)
    assert stats["with_cost"]["annualized_return"] == pytest.approx(
        (1 + stats["with_cost"]["total_return"]) ** (238 / len(bars)) - 1
    )
    assert r["benchmark_stats"]["total_return"] == pytest.approx(np.prod(1 + bars["bench"]) - 1, abs=1e-6)
    assert set(bars["turnover"].round(6)) - {0.0}, "it traded"
    held = pd.read_csv(tmp_path / "backtest_results" / "bt" / "positions.csv")
    assert set(held["instrument"]) == {"SH600000"} and (held["amount"] > 0).all()  # A-shares: flat, not short

    res, r = _backtest(pools[1], tiny_checkpoints, tmp_path, "backtest.market=crypto", "backtest.accumulation=sum")
    assert res.exit_code == 0, res.output
    assert r["strategy"] == "long/short on the forecast's sign" and r["conventions"]["accumulation"] == "sum"
    bars, stats = _bars(r, "mean"), r["portfolio"]["mean"]["with_cost"]
    assert stats["total_return"] == pytest.approx((bars["return"] - bars["cost"]).sum(), abs=1e-6)
    periods = r["conventions"]["annualization_bars"]  # a weekday calendar on a 7-day market: 5/7 x 365
    assert periods == pytest.approx(365 * 5 / 7) and "0.7143 bars a day" in r["conventions"]["annualization"]
    assert stats["annualized_return"] == pytest.approx((bars["return"] - bars["cost"]).mean() * periods, abs=1e-5)
    held = pd.read_csv(tmp_path / "backtest_results" / "bt" / "positions.csv")
    assert (held["amount"] < 0).any()  # crypto sells short


def test_two_series_trade_topk_1_and_a_topk_holding_both_is_refused(pools, tiny_checkpoints, tmp_path):
    res, _ = _backtest(pools[2], tiny_checkpoints, tmp_path)  # topk 8
    assert res.exit_code == 2
    assert "backtest.topk=8 holds every one of the 2 symbols that have a signal on a bar" in res.output
    assert "set backtest.topk below 2" in res.output
    res, r = _backtest(pools[2], tiny_checkpoints, tmp_path, "backtest.topk=1", "backtest.n_drop=1",
                       "backtest.bars_per_year=250")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert r["strategy"] == "TopkDropout" and r["symbols"] == 2 and r["benchmark"] == "equal-weight"
    assert r["series_quality"]["mean"]["series"] == 2
    assert r["conventions"]["annualization"] == "250 bars a year (backtest.bars_per_year)"
    stats, n = r["portfolio"]["mean"]["with_cost"], r["portfolio"]["mean"]["with_cost"]["bars"]
    assert stats["annualized_return"] == pytest.approx((1 + stats["total_return"]) ** (250 / n) - 1)
    report = (tmp_path / "backtest_results" / "bt" / "analysis_report.txt").read_text()
    assert "fewer than 3 symbols a bar (2 here)" in report and "TopkDropout vs equal-weight" in report
