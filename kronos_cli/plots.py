"""Figures, drawn with matplotlib's non-interactive Agg backend and written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kronos_cli.io import atomic_path


def _pyplot():
    import matplotlib  # lazy: heavy, and only the commands that draw need it

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    return plt


def plot_forecast(
    history_time,
    history_close,
    future_time,
    mean_close,
    band: tuple[str, Any, Any] | None,
    path: str | os.PathLike,
    title: str = "Kronos forecast",
) -> Path:
    """History and forecast close, with a (label, low, high) band of the forecast when given."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(history_time, history_close, color="#1f4e79", lw=1.2, label="history close")
    ax.plot(future_time, mean_close, color="#c0392b", lw=1.4, label="forecast close (mean)")
    if band is not None:
        label, lo, hi = band
        ax.fill_between(future_time, lo, hi, color="#c0392b", alpha=0.2, label=label)
    ax.set_ylabel("close")
    fig.autofmt_xdate()
    return _finish(plt, fig, ax, title, path)


def plot_loss_curve(history: list[dict], path: str | os.PathLike, title: str = "loss") -> Path:
    """Train and validation loss per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    return _finish(plt, fig, ax, title, path)


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


def plot_performance(daily: dict, path: str | os.PathLike, title: str = "backtest") -> Path:
    """Cumulative return with cost against the benchmark, and cumulative excess return, one line per signal
    (daily returns summed, Qlib's convention)."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    bench = None
    for name, df in daily.items():
        top.plot(df.index, (df["return"] - df["cost"]).cumsum(), label=f"{name} (with cost)")
        bottom.plot(df.index, (df["return"] - df["bench"] - df["cost"]).cumsum(), label=name)
        bench = df["bench"]
    if bench is not None:
        top.plot(bench.index, bench.cumsum(), color="black", lw=1.5, ls="--", label="benchmark")
    top.set_ylabel("cumulative return")
    bottom.set_ylabel("cumulative excess return")
    bottom.axhline(0, color="grey", lw=0.8)
    top.grid(alpha=0.3)
    top.legend(loc="best")
    top.set_title(title)
    fig.autofmt_xdate()
    return _finish(plt, fig, bottom, "excess over the benchmark (with cost)", path)
