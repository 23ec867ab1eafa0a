"""The charts and holdings of a backtest's page, computed from its results files: the per-bar returns in
`backtest_results.json` (accumulated the way its statistics were), the signals file (daily IC) and positions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos_cli.core.tables import Table, num, pct
from kronos_cli.metrics.ic import daily_ic
from kronos_cli.metrics.portfolio import COMPOUND, growth
from kronos_cli.report.page import Chart

ROLLING = 20  # bars in the rolling mean of the IC
HOLDINGS = 10  # rows of the top and of the bottom holdings
PCT = {"tickformat": ".1%"}


def bars(daily: dict[str, dict[str, list]]) -> dict[str, pd.DataFrame]:
    """The per-bar returns of each signal's portfolio as frames indexed by date."""
    return {name: pd.DataFrame(d).set_index("date").astype(float) for name, d in daily.items()}


def _line(x, y, name: str, **style) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": list(x), "y": list(y), "name": name, **style}


def _dates(index) -> list[str]:
    return [str(d) for d in index]


def _times(values) -> pd.DatetimeIndex:
    """Timestamps read back from results files, where a bar at midnight may be written as a bare date and the
    next bar with its time ("2024-04-16", "2024-04-16 01:00"): ISO 8601 in any of its forms."""
    return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601"))


def _labels(times: pd.DatetimeIndex) -> list[str]:
    """Dates for daily bars, dates and times for intraday ones."""
    daily = bool((times == times.normalize()).all())
    return list(times.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"))


def cumulative_chart(frames: dict[str, pd.DataFrame], accumulation: str, benchmark: str) -> Chart:
    """Cumulative return of each signal's portfolio with cost, the first one's also before cost, and the benchmark."""
    traces, bench = [], None
    for i, (name, df) in enumerate(frames.items()):
        traces.append(_line(df.index, growth(df["return"] - df["cost"], accumulation), f"{name} (with cost)"))
        if i == 0:
            before = growth(df["return"], accumulation)
            traces.append(_line(df.index, before, f"{name} (before cost)", line={"dash": "dot"}))
            bench = _line(
                df.index, growth(df["bench"], accumulation), benchmark, line={"color": "black", "dash": "dash"}
            )
    how = "compounded" if accumulation == COMPOUND else "summed"
    layout = {"title": {"text": f"Cumulative return against {benchmark} ({how})"}, "yaxis": PCT}
    return Chart(
        {"data": traces + ([bench] if bench else []), "layout": layout},
        "The last point of each line is the total return in the table above.",
    )


def drawdown_chart(frames: dict[str, pd.DataFrame], accumulation: str) -> Chart:
    """The fall from the last peak, with cost, the start counted as a peak (as the max drawdown is measured)."""
    traces = []
    for name, df in frames.items():
        curve = pd.concat([pd.Series([0.0]), growth(df["return"] - df["cost"], accumulation).reset_index(drop=True)])
        curve = curve.to_numpy()
        if accumulation == COMPOUND:
            dd = (1 + curve) / np.maximum.accumulate(1 + curve) - 1
        else:
            dd = curve - np.maximum.accumulate(curve)
        traces.append(_line(df.index, dd[1:], name, fill="tozeroy"))
    layout = {"title": {"text": "Drawdown with cost"}, "yaxis": PCT}
    return Chart({"data": traces, "layout": layout}, "Its lowest point is the max drawdown in the table above.")


def monthly_chart(df: pd.DataFrame, name: str, accumulation: str) -> Chart:
    """A heat map of each month's return with cost (years down, months across)."""
    r = df["return"] - df["cost"]
    r.index = _times(r.index)
    months = r.groupby(r.index.to_period("M")).apply(lambda x: float(growth(x, accumulation).iloc[-1]))
    years = sorted({p.year for p in months.index})
    z = [[months.get(pd.Period(year=y, month=m, freq="M"), np.nan) for m in range(1, 13)] for y in years]
    text = [[pct(v, 1) if v == v else "" for v in row] for row in z]
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    bound = float(np.nanmax(np.abs(np.array(z, dtype=float)))) if months.size else 0.01
    heat = {
        "type": "heatmap",
        "z": [[None if v != v else v for v in row] for row in z],
        "x": names,
        "y": [str(y) for y in years],
        "text": text,
        "texttemplate": "%{text}",
        "colorscale": [[0, "#c0392b"], [0.5, "#f7f7f7"], [1, "#1a9850"]],  # losses red, gains green
        "zmin": -bound,
        "zmax": bound,
        "hovertemplate": "%{y} %{x}: %{text}<extra></extra>",
        "colorbar": {"tickformat": ".1%"},
    }
    layout = {
        "title": {"text": f"Monthly returns with cost: {name}"},
        "yaxis": {"type": "category", "autorange": "reversed"},
    }
    return Chart({"data": [heat], "layout": layout}, height=140 + 40 * len(years))


def turnover_chart(frames: dict[str, pd.DataFrame]) -> Chart:
    traces = [{"type": "bar", "x": list(df.index), "y": df["turnover"].tolist(), "name": n} for n, df in frames.items()]
    layout = {"title": {"text": "Turnover a bar (traded value / account value)"}, "yaxis": PCT, "barmode": "group"}
    return Chart({"data": traces, "layout": layout}, "Its mean is the turnover column of the table above.")


def ic_chart(signals: pd.DataFrame, name: str) -> Chart | None:
    """Daily IC and Rank IC of one signal against its label, with their rolling means; None without a
    cross-section."""
    keyed = signals.assign(datetime=_times(signals["datetime"])).set_index(["datetime", "instrument"])
    d = daily_ic(keyed[name], keyed["label"])
    if d.empty:
        return None
    x = _labels(pd.DatetimeIndex(d.index))
    traces = [
        {"type": "bar", "x": x, "y": d["IC"].tolist(), "name": "IC", "marker": {"color": "#9ecae1"}},
        _line(x, d["IC"].rolling(ROLLING, min_periods=1).mean(), f"IC, {ROLLING}-bar mean", line={"color": "#08519c"}),
        _line(
            x,
            d["Rank IC"].rolling(ROLLING, min_periods=1).mean(),
            f"Rank IC, {ROLLING}-bar mean",
            line={"color": "#e6550d"},
        ),
    ]
    layout = {"title": {"text": f"IC over time: {name}"}, "yaxis": {"title": {"text": "correlation"}}}
    caption = f"The mean of the daily IC ({num(float(d['IC'].mean()))}) is the signal quality table's IC."
    return Chart({"data": traces, "layout": layout}, caption)


def holdings_table(positions: pd.DataFrame, signals: pd.DataFrame, name: str, unit: str) -> Table | None:
    """The names the first signal's portfolio held, ranked by their label's mean while held: the best and the
    worst HOLDINGS, with how long and how much was held."""
    held = positions[positions["signal"] == name]
    if held.empty:
        return None
    label = signals[["datetime", "instrument", "label"]].assign(datetime=lambda f: f["datetime"].astype(str))
    joined = held.assign(datetime=held["datetime"].astype(str)).merge(label, on=["datetime", "instrument"], how="left")
    g = joined.groupby("instrument").agg(bars=("weight", "size"), weight=("weight", "mean"), label=("label", "mean"))
    g = g.sort_values("label", ascending=False)
    rows = pd.concat([g.head(HOLDINGS), g.tail(HOLDINGS)]) if len(g) > 2 * HOLDINGS else g
    t = Table(
        f"Top and bottom holdings of {name}: the names held, ranked by their label while held",
        ["instrument", unit, "mean weight", "mean label"],
        caption=f"{len(g)} names held; label: the realised return a signal on that bar is judged by (see the "
        "conventions), averaged over the bars the name was held.",
    )
    for instrument, r in rows.iterrows():
        t.add(instrument, f"{int(r['bars']):,}", pct(float(r["weight"])), pct(float(r["label"])))
    return t
