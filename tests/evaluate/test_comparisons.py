"""Which tests `kronos evaluate` runs and what its verdicts say, on one constructed random walk (one series, hourly
windows that overlap): every model against every baseline on MAE, CRPS and WQL, the headline against each score's
strongest baseline, and the counts named for what they count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.evaluate.baselines import baselines
from kronos_cli.evaluate.comparisons import compare, strongest_baselines
from kronos_cli.evaluate.report import EvaluationResult
from kronos_cli.evaluate.sample import split_sample, time_unit
from kronos_cli.evaluate.scores import LOSSES, score
from kronos_cli.metrics.probabilistic import Ensemble

N, L, P = 400, 30, 3


@pytest.fixture(scope="module")
def one_series():
    """A 1%-a-bar random walk: each window's lookback returns, realised paths and label, one symbol."""
    rng = np.random.default_rng(0)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, N + L + P))
    origins = np.arange(L - 1, L - 1 + N)  # the last lookback bar of each window: one a bar, so they overlap
    lookback = close[origins[:, None] + np.arange(1 - L, 1)]
    obs = close[origins[:, None] + np.arange(1, P + 1)] / close[origins][:, None] - 1
    windows = dict(
        obs=obs,
        trade_label=obs[:, -1],
        names=np.array(["BTCUSDT"] * N),
        times=pd.date_range("2024-01-01", periods=N, freq="h"),
        predict=P,
    )
    flat = score("flat model", "model", "-", Ensemble(np.zeros((N, 4, P))), **windows)  # all paths: the last close
    base = baselines(lookback[:, 1:] / lookback[:, :-1] - 1, P)
    return [flat] + [score(k, "baseline", "lookback", v, **windows) for k, v in base.items()]


def test_every_model_meets_every_baseline_on_each_loss(one_series):
    comps = compare(one_series, None, P)
    pairs = {(c.a, c.b, c.metric) for c in comps}
    want = {("flat model", b.label, m) for m in LOSSES for b in one_series[1:]}
    assert pairs == want - {("flat model", "hist. vol (normal)", "MAE")}  # its mean path is the last close's
    assert {c.times for c in comps} == {N}  # one series: one window per bar, each its own loss


def test_a_point_forecast_ties_the_last_close_on_crps_and_loses_to_the_random_walk(one_series):
    """The issue's trap: "beats last close on CRPS" is a comparison with a point forecast; the no-skill
    historical-volatility random walk is the opponent that counts."""
    verdicts = {(c.b, c.metric): c.verdict for c in compare(one_series, None, P)}
    assert verdicts[("last close", "CRPS")] == "no significant difference"  # the same losses: no test to win
    assert verdicts[("hist. vol (normal)", "CRPS")] == "hist. vol (normal) better"
    assert verdicts[("hist. vol (normal)", "WQL")] == "hist. vol (normal) better"
    strongest = strongest_baselines(one_series)
    assert strongest == {"MAE": "last close", "CRPS": "hist. vol (normal)", "WQL": "hist. vol (normal)"}


def test_the_headline_uses_the_strongest_baseline_of_each_score(one_series):
    sample = split_sample(np.array(["BTCUSDT"] * N), np.arange(N) * 3_600 * 10**9, np.ones(N, bool), "1h", "test")
    result = EvaluationResult(
        "run",
        "test",
        **vars(sample),
        sampling={},
        models=one_series,
        comparisons=compare(one_series, None, P),
        conventions={"units": "percent"},
    )
    head = result.headline()["flat model"]
    assert {k: (v["baseline"], v["verdict"]) for k, v in head.items()} == {
        "MAE": ("last close", "no significant difference"),
        "CRPS": ("hist. vol (normal)", "worse"),
        "WQL": ("hist. vol (normal)", "worse"),
    }
    board, verdict, sig = result.tables()
    assert "TS corr" in board.columns and "IC" not in board.columns  # one symbol: skill over time
    assert "1 symbol:" in board.title and f"over {N} 1h bars" in board.title
    assert verdict.columns[2] == "CRPS vs hist. vol (normal)" and verdict.rows[0][2].startswith("worse")
    assert "losses per 1h bar" in sig.title


def test_the_split_is_counted_in_its_own_units_and_too_few_times_name_the_real_constraint():
    assert [time_unit(f) for f in ("day", "1h", "4h", "5min", "90min")] == [
        "day",
        "1h bar",
        "4h bar",
        "5min bar",
        "90min bar",
    ]
    ns = np.repeat(np.arange(30), 2) * 86_400 * 10**9
    names = np.tile(["EURUSD", "GBPUSD"], 30)
    known = np.ones(60, bool)
    known[-4:] = False  # the last two days' futures are not known yet
    s = split_sample(names, ns, known, "day", "test")
    assert (s.windows, s.labelled, s.symbols, s.times, s.ic_times) == (60, 56, 2, 28, 0)
    assert not s.cross_section and "not defined for fewer than 3 symbols" in s.ic_note()
    with pytest.raises(KronosError) as err:
        split_sample(names[:30], ns[:30], known[:30], "day", "val")
    message = str(err.value)
    assert "15 days with a known future" in message and "need at least 20, whatever the number of symbols" in message
    assert "data.val_time_range" in message and "3 labelled" not in message
