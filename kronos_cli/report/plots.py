"""Figures, drawn with matplotlib's non-interactive Agg backend and written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_cli.core.io import atomic_path

MAX_TICKS = 10
MAX_WIDTH = 12  # inches: at dpi 110 a figure stays about 1,300 pixels wide and its text readable when shown


def _pyplot():
    import matplotlib  # lazy: heavy, and only the commands that draw need it

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    return plt


def _finish(plt, fig, ax, title: str, path: str | os.PathLike) -> Path:
    """Title, grid and legend, then an atomic PNG write."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(plt, fig, path)


def _save(plt, fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _legend_below(fig, ax) -> None:
    """One legend for the figure, under its axes, so no line or bar is hidden behind it (constrained layout)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)


def _session_ticks(times: pd.DatetimeIndex) -> tuple[list[int], list[str]]:
    """Bar positions where a new day's session starts, thinned to at most MAX_TICKS, with their dates."""
    days = times.normalize()
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    keep = starts[:: max(1, int(np.ceil(len(starts) / MAX_TICKS)))]
    return keep.tolist(), [f"{times[i]:%Y-%m-%d}" for i in keep]


def draw_forecast(ax, history_time, history_close, future_time, mean_close, band: tuple[str, Any, Any] | None) -> bool:
    """Draw history and forecast close on `ax`, joined at the last close; returns whether the bars are intraday
    (then the x axis counts bars, with a tick at each session's first bar, so nights and lunch breaks do not
    squash the sessions; daily and slower bars are drawn on their dates)."""
    hist_t, fut_t = pd.DatetimeIndex(history_time), pd.DatetimeIndex(future_time)
    hist_c, fut_c = np.asarray(history_close, dtype=float), np.asarray(mean_close, dtype=float)
    times = hist_t.append(fut_t)
    intraday = len(hist_t) > 1 and np.median(np.diff(hist_t.as_unit("ns").asi8)) < pd.Timedelta(days=1).value
    x = np.arange(len(times)) if intraday else times
    n = len(hist_t)
    ax.plot(x[:n], hist_c, color="#1f4e79", lw=1.2, label="history close")
    ax.plot(x[n - 1 :], np.r_[hist_c[-1], fut_c], color="#c0392b", lw=1.4, label="forecast close (mean)")
    if band is not None:
        label, lo, hi = band
        ax.fill_between(
            x[n - 1 :], np.r_[hist_c[-1], lo], np.r_[hist_c[-1], hi], color="#c0392b", alpha=0.2, label=label
        )
    ax.set_ylabel("close")
    if intraday:
        ticks, labels = _session_ticks(times)
        ax.set_xticks(ticks, labels, rotation=30, ha="right")
        ax.set_xlabel("bars (a tick at each session's first bar)")
    return intraday


def plot_forecast(
    history_time,
    history_close,
    future_time,
    mean_close,
    band: tuple[str, Any, Any] | None,
    path: str | os.PathLike,
    title: str = "Kronos forecast",
) -> Path:
    """History and forecast close (see `draw_forecast`), written as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if not draw_forecast(ax, history_time, history_close, future_time, mean_close, band):
        fig.autofmt_xdate()
    return _finish(plt, fig, ax, title, path)


def plot_loss_curve(
    history: list[dict],
    path: str | os.PathLike,
    title: str = "loss",
    train_label: str = "train",
    val_label: str = "validation",
    ylabel: str = "loss",
) -> Path:
    """Train and validation loss per epoch (integer epoch ticks)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label=train_label)
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label=val_label)
    ax.set_xlabel("epoch")
    ax.set_xticks(epochs[:: max(1, int(np.ceil(len(epochs) / MAX_TICKS)))])
    ax.set_ylabel(ylabel)
    return _finish(plt, fig, ax, title, path)


def compounded(daily: pd.Series) -> pd.Series:
    """Cumulative return of daily returns, compounded: prod(1 + r) - 1."""
    return (1 + daily).cumprod() - 1


def plot_performance(
    daily: dict, path: str | os.PathLike, title: str = "backtest", benchmark: str = "benchmark"
) -> Path:
    """Cumulative return with cost against the benchmark, and the cumulative excess over it, one line per signal;
    daily returns compounded, in percent."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    bench = None
    for name, df in daily.items():
        strategy, bench = compounded(df["return"] - df["cost"]), compounded(df["bench"])
        top.plot(df.index, 100 * strategy, label=f"{name} (with cost)")
        bottom.plot(df.index, 100 * ((1 + strategy) / (1 + bench) - 1), label=name)
    if bench is not None:
        top.plot(bench.index, 100 * bench, color="black", lw=1.5, ls="--", label=benchmark)
    top.set_ylabel("cumulative return, compounded (%)")
    bottom.set_ylabel(f"excess over {benchmark} (%)")
    bottom.axhline(0, color="grey", lw=0.8)
    top.grid(alpha=0.3)
    top.legend(loc="best")
    top.set_title(title)
    fig.autofmt_xdate()
    return _finish(plt, fig, bottom, f"excess over {benchmark}, with cost, compounded", path)


def plot_by_horizon(series: dict[str, dict[str, list[float]]], path: str | os.PathLike, title: str) -> Path:
    """MAE and CRPS per horizon step, one line per model (percent of the last close), the legend under them."""
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib is only imported to draw

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 5), layout="constrained")
    for label, s in series.items():
        steps = np.arange(1, len(s["MAE"]) + 1)
        left.plot(steps, 100 * np.asarray(s["MAE"]), marker="o", label=label)
        right.plot(steps, 100 * np.asarray(s["CRPS"]), marker="o", label=label)
    left.set(xlabel="bars ahead", ylabel="MAE (% of the last close)", title="point error (MAE)")
    right.set(xlabel="bars ahead", ylabel="CRPS (% of the last close)", title="distribution error (CRPS)")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole bars: no tick at 1.5 bars ahead
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _legend_below(fig, left)
    return _save(plt, fig, path)


def plot_calibration(observed: dict[str, dict[str, float]], path: str | os.PathLike, title: str) -> Path:
    """Observed against nominal coverage of the central intervals, one line per model; the diagonal is ideal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--", label="calibrated")
    for label, cover in observed.items():
        levels = sorted(cover, key=float)
        ax.plot([100 * float(x) for x in levels], [100 * cover[x] for x in levels], marker="o", label=label)
    ax.set(xlabel="nominal coverage of the central interval (%)", ylabel="observed coverage (%)")
    return _finish(plt, fig, ax, title, path)


def plot_pit(histograms: dict[str, list[float]], path: str | os.PathLike, title: str) -> Path:
    """PIT histograms, one panel per model: flat when the forecast distribution is calibrated."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(histograms), figsize=(min(MAX_WIDTH, 3.2 * len(histograms)), 3.2), squeeze=False, sharey=True
    )  # one y scale: the panels' heights compare
    for ax, (label, shares) in zip(axes[0], histograms.items()):
        edges = np.linspace(0, 1, len(shares) + 1)
        ax.bar(edges[:-1], shares, width=np.diff(edges), align="edge", color="#1f4e79", alpha=0.8)
        ax.axhline(1 / len(shares), color="grey", lw=0.8, ls="--")
        ax.set(title=label, xlabel="PIT")
    axes[0][0].set_ylabel("share of observations")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_ic_by_month(monthly: dict[str, dict[str, float]], path: str | os.PathLike, title: str) -> Path:
    """The mean daily IC of each month, one group of bars per month, a bar per model; at most MAX_WIDTH inches wide
    whatever the number of months (at most 2 * MAX_TICKS month labels), the legend under the bars."""
    plt = _pyplot()
    months = sorted({m for series in monthly.values() for m in series})
    bars = len(months) * max(1, len(monthly))
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(6, 2 + 0.2 * bars)), 4.5), layout="constrained")
    width = 0.8 / max(1, len(monthly))
    for i, (label, series) in enumerate(monthly.items()):
        ax.bar(np.arange(len(months)) + i * width, [series.get(m, np.nan) for m in months], width, label=label)
    every = max(1, int(np.ceil(len(months) / (2 * MAX_TICKS))))
    ticks = np.arange(len(months))[::every]
    ax.set_xticks(ticks + 0.4 - width / 2, months[::every], rotation=45, ha="right")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel="mean daily IC", title=title)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _save(plt, fig, path)


def plot_walkforward(
    daily: pd.DataFrame, boundaries: list[pd.Timestamp], path: str | os.PathLike, title: str, benchmark: str
) -> Path:
    """A walk-forward's one backtest: cumulative return with cost and its excess over the benchmark, compounded,
    with a dotted line where each fold's test period begins."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    strategy, bench = compounded(daily["return"] - daily["cost"]), compounded(daily["bench"])
    top.plot(daily.index, 100 * strategy, label="with cost")
    top.plot(bench.index, 100 * bench, color="black", lw=1.5, ls="--", label=benchmark)
    bottom.plot(daily.index, 100 * ((1 + strategy) / (1 + bench) - 1), label="excess, with cost")
    bottom.axhline(0, color="grey", lw=0.8)
    for ax in (top, bottom):
        for i, b in enumerate(boundaries):
            ax.axvline(b, color="grey", lw=0.8, ls=":", label="fold starts" if i == 0 and ax is top else None)
    top.set_ylabel("cumulative return, compounded (%)")
    bottom.set_ylabel(f"excess over {benchmark} (%)")
    top.grid(alpha=0.3)
    top.legend(loc="best")
    top.set_title(title)
    fig.autofmt_xdate()
    return _finish(plt, fig, bottom, f"excess over {benchmark}, with cost, compounded", path)


def plot_by_fold(
    values: dict[str, list[float]], folds: list[str], path: str | os.PathLike, title: str, ylabel: str
) -> Path:
    """One score per fold, a group of bars per fold and a bar per model, the legend under them."""
    plt = _pyplot()
    fig, ax = plt.subplots(
        figsize=(min(MAX_WIDTH, max(6, 2 + 0.3 * len(folds) * len(values))), 4.5), layout="constrained"
    )
    width = 0.8 / max(1, len(values))
    for i, (label, ys) in enumerate(values.items()):
        ax.bar(np.arange(len(folds)) + i * width, ys, width, label=label)
    ax.set_xticks(np.arange(len(folds)) + 0.4 - width / 2, folds)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _save(plt, fig, path)


def _returns_by_level(plt, levels: list[dict]):
    """A figure with the annualised return and excess return with cost (%) of each level against its value."""
    value = [x["value"] for x in levels]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(value, [100 * x["annualized_return"] for x in levels], marker="o", label="ann. return, with cost")
    ax.plot(value, [100 * x["excess_annualized"] for x in levels], marker="o", label="excess ann. return")
    ax.axhline(0, color="grey", lw=0.8)
    return fig, ax


def plot_capacity(levels: list[dict], path: str | os.PathLike, title: str) -> Path:
    """Annualised return and excess return with cost (left, %) and the fill rate (right, %) against the capital
    (log scale), one point per capacity level."""
    plt = _pyplot()
    capital = [x["value"] for x in levels]
    fig, ax = _returns_by_level(plt, levels)
    ax.set(xscale="log", xlabel="capital (account currency, log scale)", ylabel="annualised return (%)")
    fill = ax.twinx()
    fill.plot(capital, [100 * x["fill_rate"] for x in levels], color="black", ls="--", marker=".", label="fill rate")
    fill.set_ylabel("fill rate: value dealt / value asked (%)")
    handles = [h for a in (ax, fill) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], loc="best")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_costs(levels: list[dict], path: str | os.PathLike, title: str) -> Path:
    """Annualised return and excess return with cost (%) against the multiple of every cost, one point a level."""
    plt = _pyplot()
    fig, ax = _returns_by_level(plt, levels)
    ax.set(xlabel="costs (open, close, minimum, impact) x this multiple", ylabel="annualised return (%)")
    return _finish(plt, fig, ax, title, path)
