"""The charts of an evaluation's page, drawn from `evaluation.json`: error and CRPS by horizon, calibration, PIT,
IC by month and the forecast fan charts of the symbols it picked."""

from __future__ import annotations

from typing import Any

from kronos_cli.report.page import Chart

PCT = {"tickformat": ".1%"}
SHOWN_BASELINE = "hist. vol (normal)"  # the calibration and PIT plots show the models and this baseline


def _shown(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in models if m["kind"] == "model" or m["label"] == SHOWN_BASELINE]


def _by_horizon(models: list[dict[str, Any]], key: str, title: str) -> Chart:
    traces = []
    for m in models:
        y = m["by_horizon"][key]
        dash = {"line": {"dash": "dot"}} if m["kind"] == "baseline" else {}
        traces.append(
            {"type": "scatter", "mode": "lines+markers", "x": list(range(1, len(y) + 1)), "y": y, "name": m["label"]}
            | dash
        )
    layout = {"title": {"text": title}, "yaxis": PCT, "xaxis": {"title": {"text": "bars ahead"}, "dtick": 1}}
    return Chart({"data": traces, "layout": layout})


def horizon_charts(models: list[dict[str, Any]]) -> list[Chart]:
    """MAE and CRPS per horizon step, one line per model and baseline (dotted), in percent of the last close."""
    return [
        _by_horizon(models, "MAE", "Point error (MAE) by horizon"),
        _by_horizon(models, "CRPS", "Distribution error (CRPS) by horizon"),
    ]


def calibration_chart(models: list[dict[str, Any]]) -> Chart:
    """Each band's coverage against its nominal level: on the diagonal is calibrated."""
    traces = [
        {"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": "nominal", "line": {"color": "grey"}}
    ]
    for m in _shown(models):
        levels = sorted(m["coverage"], key=float)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [float(k) for k in levels],
                "y": [m["coverage"][k] for k in levels],
                "name": m["label"],
            }
        )
    layout = {
        "title": {"text": "Calibration: interval coverage against nominal"},
        "xaxis": {**PCT, "title": {"text": "nominal coverage"}, "range": [0.4, 1]},
        "yaxis": {**PCT, "title": {"text": "observed coverage"}, "range": [0, 1]},
    }
    return Chart({"data": traces, "layout": layout}, "Points under the diagonal: bands too narrow.")


def pit_chart(models: list[dict[str, Any]]) -> Chart:
    """PIT histograms: flat at 1/bins is calibrated; U-shaped is over-confident."""
    traces, bins = [], 10
    for m in _shown(models):
        bins = len(m["pit"]) or bins
        x = [(i + 0.5) / bins for i in range(bins)]
        traces.append({"type": "bar", "x": x, "y": m["pit"], "name": m["label"]})
    layout = {
        "title": {"text": "PIT histograms"},
        "barmode": "group",
        "xaxis": {"title": {"text": "probability integral transform"}},
        "yaxis": {**PCT, "title": {"text": "share of outcomes"}},
        "shapes": [{"type": "line", "x0": 0, "x1": 1, "y0": 1 / bins, "y1": 1 / bins, "line": {"dash": "dash"}}],
    }
    return Chart({"data": traces, "layout": layout}, f"The dashed line is a calibrated forecast's {1 / bins:.0%}.")


def ic_month_chart(models: list[dict[str, Any]]) -> Chart | None:
    """Mean IC of each month, one line per forecaster with a cross-section; None without one."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": list(m["ic_by_month"]),
            "y": list(m["ic_by_month"].values()),
            "name": m["label"],
        }
        for m in models
        if m.get("ic_by_month")
    ]
    if not traces:
        return None
    layout = {"title": {"text": "IC by month"}, "xaxis": {"type": "category"}, "yaxis": {"title": {"text": "mean IC"}}}
    return Chart({"data": traces, "layout": layout})


def fan_chart(example: dict[str, Any]) -> Chart:
    """History, the forecast's median and its 50/80/90% bands, and what happened, for one window."""
    q, t = example["quantiles"], example["future"]
    traces = [{"type": "scatter", "mode": "lines", "x": example["history"], "y": example["close"], "name": "history"}]
    shades = {"90%": ("0.05", "0.95", 0.15), "80%": ("0.1", "0.9", 0.25), "50%": ("0.25", "0.75", 0.4)}
    for band, (lo, hi, alpha) in shades.items():
        fill = f"rgba(31,119,180,{alpha})"
        traces.append(
            {"type": "scatter", "mode": "lines", "x": t, "y": q[lo], "line": {"width": 0}, "showlegend": False}
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": t,
                "y": q[hi],
                "fill": "tonexty",
                "fillcolor": fill,
                "line": {"width": 0},
                "name": f"{band} band",
            }
        )
    traces.append(
        {"type": "scatter", "mode": "lines", "x": t, "y": q["0.5"], "name": "median", "line": {"color": "#1f77b4"}}
    )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": t,
            "y": example["actual"],
            "name": "what happened",
            "line": {"color": "black"},
        }
    )
    title = f"{example['symbol']} ({example['rule']} error of {example['model']}), forecast at {example['origin']}"
    return Chart({"data": traces, "layout": {"title": {"text": title}, "yaxis": {"title": {"text": "close"}}}})
