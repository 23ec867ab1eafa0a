"""A walk-forward's `report.html`, rendered from its `walkforward.json` alone (the tables are the text report's, the
charts are drawn from the same per-bar returns and per-fold scores)."""

from __future__ import annotations

import json
from pathlib import Path

from kronos_cli.core.errors import KronosError
from kronos_cli.report.page import REPORT, Section, write_page
from kronos_cli.report.walkforward import cumulative_chart, excess_chart, fold_charts
from kronos_cli.walkforward.report import RESULTS, WalkForwardResult

CONVENTIONS = {
    "folds": "consecutive test periods over the span; each fold's model is trained only on bars before its "
    "validation range, chosen on that range, and forecasts its own test period; a fold that does not refit "
    "forecasts with the last refitted fold's model",
    "embargo": "bars left out between each fold's training and validation ranges, and between validation and test, "
    "so no label of one range reads a bar of the next",
    "stitched record": "the folds' test windows put together: one out-of-sample record over the whole span, scored "
    "as `kronos evaluate` scores a split",
    "fold wins": "a fold is won when the refitted model's mean error on its test period is below the rival's; the "
    "sign test asks how likely that many wins are when each fold is a coin flip",
    "backtest": "one backtest over the whole span with the first configured signal: positions carry across fold "
    "boundaries; returns with cost, compounded",
}


def load_result(directory: Path) -> WalkForwardResult:
    """The walk-forward that wrote `directory`, typed again from its JSON."""
    try:
        result = WalkForwardResult.from_json(json.loads((directory / RESULTS).read_text()))
        result.tables()  # a result of another version fails here, not halfway through the page
        return result
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # damaged, or written by another version
        raise KronosError(f"{directory / RESULTS} cannot be read as a walk-forward's results ({exc})") from None


def _facts(result: WalkForwardResult) -> dict[str, str]:
    b, e = result.backtest, result.evaluation
    refits = sum(bool(f["refit"]) for f in result.folds)
    return {
        "folds": f"{len(result.folds)} ({refits} refitted), embargo {result.embargo} bars",
        "test span": " .. ".join(b.get("range", [])),
        "windows": f"{e.labelled:,} of {e.windows:,} with a known future, {e.symbols:,} symbols",
        "models": f"each fold's refitted model (fine-tuned) against the base model ({result.base}) and baselines",
        "backtest": f"{b.get('strategy', '')} on the {b.get('signal', '')} signal against {b.get('benchmark', '')}",
    }


def write_report(directory: Path) -> Path:
    """`directory/report.html` from the walk-forward results in `directory`."""
    result = load_result(directory)
    folds, spans, board = result.fold_table(), [result.span_table()], result.evaluation.tables()
    starts = [f["test"][0] for f in result.folds]
    sections = []
    if result.daily.get("date"):
        bench = result.backtest.get("benchmark", "benchmark")
        charts = [excess_chart(result.daily, starts, bench), cumulative_chart(result.daily, starts, bench)]
        sections.append(Section("The span's one backtest", items=[*charts, *spans]))
    sections += [
        Section("By fold", "Each fold's scores on its own test period.", [*fold_charts(result.folds), folds]),
        Section("Folds won, with the sign test", items=[result.wins_table()]),
        Section("Stitched leaderboard", " ".join(f"Note: {n}" for n in result.evaluation.notes), board[:1]),
        Section("Significance over the whole span", items=board[1:]),
        Section("Conventions", "How the numbers on this page were made.", [CONVENTIONS, result.evaluation.conventions]),
    ]
    title = f"Kronos walk-forward: {result.run_name}, {len(result.folds)} folds"
    return write_page(directory / REPORT, title, _facts(result), sections)
