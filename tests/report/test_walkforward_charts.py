"""The walk-forward page's charts from walkforward.json's per-bar returns and per-fold scores: compounded with cost,
the excess over the benchmark, each fold's start marked, a score left out where no model has it."""

from __future__ import annotations

import pytest

from kronos_cli.report.walkforward import cumulative_chart, excess_chart, fold_charts

DAILY = {
    "date": ["2024-01-02", "2024-01-03", "2024-04-01", "2024-04-02"],
    "return": [0.01, -0.02, 0.03, 0.0],
    "cost": [0.001, 0.0, 0.001, 0.0],
    "bench": [0.0, 0.01, -0.01, 0.02],
}
STARTS = ["2024-01-02", "2024-04-01"]


def test_the_cumulative_chart_compounds_net_returns_and_marks_each_fold_start():
    chart = cumulative_chart(DAILY, STARTS, "CSI300")
    strategy, bench = chart.figure["data"]
    assert strategy["y"][-1] == pytest.approx(1.009 * 0.98 * 1.029 * 1.0 - 1)
    assert bench["name"] == "CSI300" and bench["y"][-1] == pytest.approx(1.01 * 0.99 * 1.02 - 1)
    assert [s["x0"] for s in chart.figure["layout"]["shapes"]] == STARTS


def test_the_excess_chart_is_the_ratio_of_growths():
    (excess,) = excess_chart(DAILY, STARTS, "CSI300").figure["data"]
    assert excess["y"][-1] == pytest.approx((1.009 * 0.98 * 1.029) / (1.01 * 0.99 * 1.02) - 1)


def test_fold_charts_draw_a_bar_per_model_and_leave_out_a_score_nobody_has():
    folds = [
        {"fold": i, "scores": {"fine-tuned": {"IC": None, "MASE": 0.9 + i, "CRPS": 0.01}, "last close": {"MASE": 1.0}}}
        for i in (1, 2)
    ]
    charts = {c.figure["layout"]["title"]["text"]: c for c in fold_charts(folds)}
    assert set(charts) == {"MASE by fold", "CRPS by fold"}  # no model has an IC (one series)
    mase = {t["name"]: t["y"] for t in charts["MASE by fold"].figure["data"]}
    assert mase == {"fine-tuned": [1.9, 2.9], "last close": [1.0, 1.0]}
    assert [t["name"] for t in charts["CRPS by fold"].figure["data"]] == ["fine-tuned"]
