"""Figures, drawn with matplotlib's non-interactive Agg backend and written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_cli.io import atomic_path

MAX_TICKS = 10


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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


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
