"""The charts of a walk-forward's page, drawn from `walkforward.json`: the span's one backtest (cumulative return and
its excess over the benchmark, compounded, a dotted line where each fold's test period begins) and each fold's
scores, a group of bars per fold and a bar per model."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kronos_cli.metrics.portfolio import growth
from kronos_cli.report.page import Chart

PCT = {"tickformat": ".1%"}
BY_FOLD = (  # score, its title, the y axis and its format
    ("IC", "IC by fold", "mean daily IC", {}),
    ("MASE", "MASE by fold", "MASE (below 1 beats the last close)", {}),
    ("CRPS", "CRPS by fold", "CRPS (share of the last close)", PCT),
)


def _boundaries(starts: list[str]) -> list[dict[str, Any]]:
    """A dotted vertical line at each fold's first test day, across the whole plot."""
    line = {"color": "grey", "width": 1, "dash": "dot"}
    return [
        {"type": "line", "xref": "x", "yref": "paper", "x0": s, "x1": s, "y0": 0, "y1": 1, "line": line} for s in starts
    ]


def cumulative_chart(daily: dict[str, list], starts: list[str], benchmark: str) -> Chart:
    """The strategy's cumulative return with cost against the benchmark's, compounded, with the fold starts."""
    frame = pd.DataFrame({k: v for k, v in daily.items() if k != "date"}, index=daily["date"]).astype(float)
    strategy, bench = growth(frame["return"] - frame["cost"]), growth(frame["bench"])
    traces = [
        {"type": "scatter", "mode": "lines", "x": daily["date"], "y": list(strategy), "name": "with cost"},
        {
            "type": "scatter",
            "mode": "lines",
            "x": daily["date"],
            "y": list(bench),
            "name": benchmark,
            "line": {"color": "black", "dash": "dash"},
        },
    ]
    layout = {"title": {"text": f"Cumulative return against {benchmark} (compounded)"}, "yaxis": PCT}
    return Chart({"data": traces, "layout": layout | {"shapes": _boundaries(starts)}})


def excess_chart(daily: dict[str, list], starts: list[str], benchmark: str) -> Chart:
    """The excess over the benchmark with cost, (1 + strategy) / (1 + benchmark) - 1, compounded over the span."""
    frame = pd.DataFrame({k: v for k, v in daily.items() if k != "date"}, index=daily["date"]).astype(float)
    excess = (1 + growth(frame["return"] - frame["cost"])) / (1 + growth(frame["bench"])) - 1
    trace = {"type": "scatter", "mode": "lines", "x": daily["date"], "y": list(excess), "name": "excess, with cost"}
    layout = {"title": {"text": f"Cumulative excess return over {benchmark}"}, "yaxis": PCT}
    return Chart(
        {"data": [trace], "layout": layout | {"shapes": _boundaries(starts)}},
        "Dotted lines: where each fold's test period begins. Positions carry across them: one backtest over the span.",
    )


def fold_charts(folds: list[dict[str, Any]]) -> list[Chart]:
    """IC, MASE and CRPS of each fold, one bar per model and baseline that has the score."""
    names = [f"fold {f['fold']}" for f in folds]
    labels = list(folds[0]["scores"]) if folds else []
    charts = []
    for key, title, ylabel, fmt in BY_FOLD:
        traces = []
        for label in labels:
            ys = [f["scores"][label].get(key) for f in folds]
            if any(y is not None for y in ys):
                traces.append({"type": "bar", "x": names, "y": ys, "name": label})
        if traces:
            layout = {"title": {"text": title}, "barmode": "group", "yaxis": {**fmt, "title": {"text": ylabel}}}
            charts.append(Chart({"data": traces, "layout": layout}))
    return charts
