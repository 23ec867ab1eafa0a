"""The synthetic market is a real Qlib provider: pyqlib reads it and it has the features the demo needs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.data.qlib_source import init_qlib
from kronos_cli.data.synthetic import MarketSpec, write_market


def test_pyqlib_reads_pools_features_and_benchmark(market):
    init_qlib(str(market), "cn")
    from qlib.data import D

    syms = D.list_instruments(D.instruments("csi300"), as_list=True)
    assert len(syms) == 40
    df = D.features(
        syms[:5],
        ["$open", "$close", "$high", "$low", "$volume", "$factor", "$change"],
        start_time="2021-01-01",
        end_time="2024-12-31",
    )
    ok = df.dropna()
    assert (ok["$high"] >= ok[["$open", "$close"]].max(axis=1) - 1e-4).all()
    assert (ok["$low"] <= ok[["$open", "$close"]].min(axis=1) + 1e-4).all()
    assert ok["$change"].abs().max() <= 0.1 + 1e-5  # price limits
    bench = D.features(["SH000300"], ["$close"], start_time="2021-01-01", end_time="2024-12-31")
    assert bench["$close"].notna().all() and len(bench) > 900


def test_suspension_late_listing_and_delisting(market):
    init_qlib(str(market), "cn")
    from qlib.data import D

    cal = D.calendar(start_time="2021-01-01", end_time="2024-12-31")
    spans = {
        line.split("\t")[0]: line.split("\t")[1:]
        for line in (market / "instruments" / "all.txt").read_text().splitlines()
    }
    starts = sorted({v[0] for v in spans.values()})
    ends = sorted({v[1].strip() for v in spans.values()})
    assert len(starts) > 1 and len(ends) > 1  # someone lists late and someone delists
    close = D.features(["SH600000"], ["$close"], start_time="2021-01-01", end_time="2024-12-31")["$close"]
    assert close.isna().sum() >= 5 and len(close) == len(cal)  # a suspension inside the calendar


def test_deterministic_by_seed(tmp_path):
    def digest(path):
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file():
                h.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
        return h.hexdigest()

    spec = MarketSpec(stocks=8, start="2022-01-01", end="2022-12-31", seed=5)
    a = digest(write_market(tmp_path / "a", spec))
    b = digest(write_market(tmp_path / "b", spec))
    c = digest(write_market(tmp_path / "c", MarketSpec(8, "2022-01-01", "2022-12-31", seed=6)))
    assert a == b != c


def test_refuses_to_overwrite_without_force(tmp_path):
    spec = MarketSpec(stocks=6, start="2022-01-01", end="2022-06-30")
    write_market(tmp_path / "m", spec)
    with pytest.raises(KronosError, match="pass force to replace it"):
        write_market(tmp_path / "m", spec)
    write_market(tmp_path / "m", spec, force=True)
    assert np.fromfile(tmp_path / "m" / "features" / "sh600000" / "close.day.bin", "<f4").size > 100


def test_qlib_backtest_engine_trades_it(market):
    """Qlib's own TopkDropout backtest runs on the synthetic market against its benchmark."""
    import pandas as pd

    init_qlib(str(market), "cn")
    from qlib.backtest import backtest, executor
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    syms = D.list_instruments(D.instruments("csi300"), start_time="2024-01-01", end_time="2024-03-31", as_list=True)
    cal = D.calendar(start_time="2024-01-01", end_time="2024-03-31")
    idx = pd.MultiIndex.from_product([cal, syms], names=["datetime", "instrument"])
    signal = pd.Series(np.random.default_rng(0).normal(size=len(idx)), index=idx)
    strategy = TopkDropoutStrategy(signal=signal, topk=8, n_drop=2, hold_thresh=5)
    ex = executor.SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, verbose=False)
    metrics, _ = backtest(
        start_time="2024-01-02",
        end_time="2024-03-29",
        strategy=strategy,
        executor=ex,
        account=1e8,
        benchmark="SH000300",
        exchange_kwargs={
            "freq": "day",
            "limit_threshold": 0.095,
            "deal_price": "open",
            "open_cost": 0.001,
            "close_cost": 0.0015,
            "min_cost": 5,
        },
    )
    report, _ = metrics["1day"]
    assert len(report) > 40 and (report["turnover"] > 0).any() and report["bench"].abs().sum() > 0
