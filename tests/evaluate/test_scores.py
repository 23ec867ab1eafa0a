"""A model's scores on hand-made windows: a perfect forecast, the last close itself, and the leaderboard's
marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli.evaluate.baselines import baselines
from kronos_cli.evaluate.report import Comparison, EvaluationResult
from kronos_cli.evaluate.scores import score
from kronos_cli.metrics.probabilistic import Ensemble, Point

DAYS, NAMES, P = 40, 6, 3


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    days = pd.DatetimeIndex(np.repeat(pd.bdate_range("2024-01-01", periods=DAYS).values, NAMES))
    names = np.tile([f"S{i}" for i in range(NAMES)], DAYS)
    obs = rng.normal(0, 0.02, (DAYS * NAMES, P))
    label = obs[:, -1] + rng.normal(0, 0.001, len(obs))  # the trade label follows the path's last step
    return dict(obs=obs, trade_label=label, names=names, times=days, predict=P)


def test_a_perfect_forecast(windows):
    obs = windows["obs"]
    s = score("oracle", "model", "-", Ensemble(np.repeat(obs[:, None], 4, axis=1)), **windows)
    o = s.overall
    assert o["MAE"] == 0 and o["RMSE"] == 0 and o["MASE"] == 0 and o["WQL"] == 0
    assert o["CRPS"] == pytest.approx(0, abs=1e-15)  # the PWM form subtracts equal sums
    assert o["direction"] == 1 and o["windows"] == len(obs)
    assert s.coverage == {"0.5": 1.0, "0.8": 1.0, "0.9": 1.0}
    assert s.ic["IC"] > 0.99 and s.ic["Rank IC"] > 0.95 and s.ic["IC_t"] > 10 and s.ic["times"] == DAYS
    assert s.ic["IC_lo"] <= s.ic["IC"] <= s.ic["IC_hi"]
    assert len(s.by_horizon["MAE"]) == P and s.by_horizon["MAE"] == [0, 0, 0]


def test_the_last_close_has_mase_one_crps_equal_to_mae_and_no_ic(windows):
    s = score("last close", "baseline", "-", Point(np.zeros_like(windows["obs"])), **windows)
    o = s.overall
    assert o["MASE"] == pytest.approx(1.0) and o["CRPS"] == pytest.approx(o["MAE"])
    assert o["MAE"] == pytest.approx(np.abs(windows["obs"]).mean())
    assert o["direction"] != o["direction"]  # NaN: a forecast of no change has no direction
    assert s.ic["IC"] != s.ic["IC"] and s.ic["times"] == 0  # a constant signal ranks nothing
    assert s.time_series["corr"] != s.time_series["corr"]  # nor does it correlate with anything over time


def test_unknown_futures_are_left_out(windows):
    obs = windows["obs"].copy()
    obs[:NAMES, :] = np.nan  # the first day's outcomes are not known yet
    obs[NAMES:, -1] = np.where(np.arange(len(obs) - NAMES) % 2, obs[NAMES:, -1], np.nan)
    s = score("flat", "baseline", "-", Point(np.zeros_like(obs)), **{**windows, "obs": obs})
    assert s.overall["windows"] == len(obs) - NAMES
    assert s.overall["MAE"] == pytest.approx(np.nanmean(np.abs(obs)))


def test_headline_scores_are_the_full_scores_numbers(windows):
    """What a walk-forward's table of folds shows comes from the headline alone: the same numbers, bit for bit."""
    rng = np.random.default_rng(1)
    paths = windows["obs"][:, None] + rng.normal(0, 0.01, (len(windows["obs"]), 8, P))
    for predictive in (Ensemble(paths), *baselines(rng.normal(0, 0.02, (len(paths), 30)), P).values()):
        full = score("m", "model", "-", predictive, **windows)
        head = score("m", "model", "-", predictive, **windows, headline=True)
        # assert_equal: exact, and NaN (the last close's IC) equal to NaN
        np.testing.assert_equal(head.overall, {k: v for k, v in full.overall.items() if k != "WQL"})
        np.testing.assert_equal(head.ic, {k: v for k, v in full.ic.items() if k not in ("IC_lo", "IC_hi")})
        np.testing.assert_equal((head.time_series, head.ic_by_month), (full.time_series, full.ic_by_month))
        assert not head.by_horizon and not head.pit and not head.losses  # what only the whole record needs


def test_baselines_from_a_lookback_by_hand():
    returns = np.array([[0.01] * 25, [0.0, 0.02] * 12 + [0.0]])
    b = baselines(returns, predict=2)
    assert np.allclose(b["last close"].point(), 0)
    assert np.allclose(b["drift"].point()[0], [0.01, 1.01**2 - 1])  # the mean daily return, compounded
    sigma = np.std(returns[1, -20:], ddof=1)
    assert np.allclose(b["hist. vol (normal)"].sigma[1], [sigma, sigma * np.sqrt(2)])
    assert b["hist. vol (normal)"].sigma[0].max() < 1e-9  # no volatility: a degenerate (but valid) normal
    paths = b["hist. vol (bootstrap)"].samples[1]
    assert set(np.round(paths[:, 0], 6)) <= {0.0, 0.02}  # one-day returns are drawn from the last 20


def test_the_leaderboard_marks_the_best_of_each_column(windows):
    obs = windows["obs"]
    good = score("good", "model", "-", Ensemble(obs[:, None] + np.array([-0.01, 0.01])[None, :, None]), **windows)
    flat = score("last close", "baseline", "-", Point(np.zeros_like(obs)), **windows)
    result = EvaluationResult(
        "run",
        "test",
        len(obs),
        len(obs),
        NAMES,
        DAYS,
        DAYS,
        "day",
        {},
        [good, flat],
        [Comparison("good", "last close", "MAE", 0.001, 0.01, -5.0, 1e-4, DAYS)],
        {"units": "percent"},
    )
    board, verdict, sig = result.tables()
    mae_col = board.columns.index("MAE %")
    assert (0, mae_col) in board.bold and (1, mae_col) not in board.bold
    assert "IC" in board.columns and "TS corr" not in board.columns  # six names a day: a cross-section
    beats = {c: board.rows[0][board.columns.index(f"beats on {c}")] for c in ("MAE", "CRPS", "WQL")}
    assert beats == {"MAE": "last close", "CRPS": "-", "WQL": "-"}  # only MAE was tested
    assert board.rows[1][-3:] == ["", "", ""]  # baselines are not tested against each other
    assert verdict.columns == ["model", "MAE vs last close", "CRPS vs last close", "WQL vs last close"]
    assert verdict.rows == [["good", "better (p 0.0001)", "-", "-"]]
    assert sig.rows[0][-1] == "good better"
    assert "over 40 days" in board.title and "6 symbols" in board.title
