"""A backtest's `report.html`, rendered from the files of its result set (the JSON is the source of truth: the
tables are the text report's, the charts are drawn from the same per-bar returns and signals)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from kronos_cli.backtest.report import BacktestResult
from kronos_cli.core.errors import KronosError
from kronos_cli.report.backtest import (
    bars,
    cumulative_chart,
    drawdown_chart,
    holdings_table,
    ic_chart,
    monthly_chart,
    turnover_chart,
)
from kronos_cli.report.page import REPORT, Section, write_page

RESULTS = "backtest_results.json"


def load_result(directory: Path) -> BacktestResult:
    """The backtest that wrote `directory`, typed again from its JSON."""
    try:
        d = json.loads((directory / RESULTS).read_text())
        known = {f.name for f in dataclasses.fields(BacktestResult)}
        return BacktestResult(**{k: v for k, v in d.items() if k in known})
    except (ValueError, TypeError) as exc:  # damaged, or written by a version with other fields
        raise KronosError(f"{directory / RESULTS} cannot be read as a backtest's results ({exc})") from None


def _signals(directory: Path) -> pd.DataFrame | None:
    if (directory / "signals.parquet").is_file():
        return pd.read_parquet(directory / "signals.parquet")
    if (directory / "signals.csv").is_file():
        return pd.read_csv(directory / "signals.csv")
    return None


def _charts(result: BacktestResult, directory: Path) -> list[Section]:
    c, frames = result.conventions, bars(result.daily_returns)
    accumulation = c.get("accumulation", "compound")
    first = next(iter(frames), None)
    if first is None:
        return []
    unit = "days" if c.get("bar") == "day" else "bars"
    perf = Section(
        "Performance",
        f"{result.strategy} against {result.benchmark}, per {c.get('bar', 'bar')}, with and without costs.",
        [cumulative_chart(frames, accumulation, result.benchmark), drawdown_chart(frames, accumulation)],
    )
    perf.items += [monthly_chart(frames[first], first, accumulation), turnover_chart(frames)]
    signals, sections = _signals(directory), [perf]
    if signals is not None and "label" in signals:
        quality = Section("Signal quality over time")
        ic = ic_chart(signals, first) if result.series_quality is None else None
        quality.items += [ic] if ic else []
        if (directory / "positions.csv").is_file():
            held = holdings_table(pd.read_csv(directory / "positions.csv"), signals, first, unit)
            quality.items += [held] if held else []
        sections += [quality] if quality.items else []
    return sections


def write_report(directory: Path) -> Path:
    """`directory/report.html` from the backtest results in `directory`."""
    result = load_result(directory)
    facts = {
        "tokenizer": result.tokenizer,
        "predictor": result.predictor,
        "backtest": f"{result.backtest_range[0]} .. {result.backtest_range[1]}",
        "signals": f"{result.signal_range[0]} .. {result.signal_range[1]}",
        "benchmark": result.benchmark,
    }
    sections = [Section("Scores", " ".join(f"Note: {n}" for n in result.notes), list(result.tables()))]
    sections += _charts(result, directory)
    sections.append(Section("Conventions", "How the numbers on this page were made.", [result.conventions]))
    title = f"Kronos backtest: {result.run_name}, {result.strategy} vs {result.benchmark}"
    return write_page(directory / REPORT, title, facts, sections)
