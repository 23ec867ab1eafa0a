"""An evaluation's `report.html`, rendered from its `evaluation.json` (the tables are the text report's, the charts
are drawn from the same scores)."""

from __future__ import annotations

import json
from pathlib import Path

from kronos_cli.core.errors import KronosError
from kronos_cli.evaluate.report import EvaluationResult
from kronos_cli.report.evaluate import calibration_chart, fan_chart, horizon_charts, ic_month_chart, pit_chart
from kronos_cli.report.page import REPORT, Section, write_page

RESULTS = "evaluation.json"


def load_result(directory: Path) -> tuple[EvaluationResult, dict]:
    """The evaluation that wrote `directory`, typed again, and its JSON as written."""
    try:
        d = json.loads((directory / RESULTS).read_text())
        return EvaluationResult.from_json(d), d
    except (ValueError, TypeError, KeyError) as exc:  # damaged, or written by a version with other fields
        raise KronosError(f"{directory / RESULTS} cannot be read as an evaluation's results ({exc})") from None


def write_report(directory: Path) -> Path:
    """`directory/report.html` from the evaluation results in `directory`."""
    result, d = load_result(directory)
    models = d["models"]
    facts = {
        "split": result.split,
        "windows": f"{result.labelled:,} of {result.windows:,} with a known future, {result.symbols:,} symbols, "
        f"{result.times:,} signal {result.time_unit}s",
        "sampling": ", ".join(f"{k} {v}" for k, v in result.sampling.items() if k != "bands" and v is not None),
    }
    tables = result.tables()
    sections = [
        Section("Leaderboard", " ".join(f"Note: {n}" for n in result.notes), tables[:1]),
        Section("Error and CRPS by horizon", items=list(horizon_charts(models))),
        Section("Calibration", items=[calibration_chart(models), pit_chart(models)]),
    ]
    monthly = ic_month_chart(models)
    if monthly is not None:
        sections.append(Section("Skill over time", items=[monthly]))
    if d.get("examples"):
        sections.append(
            Section(
                "Forecasts of three symbols",
                "Chosen by rule: the symbols with the lowest, the median and the highest mean absolute error of the "
                "first model, each at its last window whose future is known.",
                [fan_chart(e) for e in d["examples"]],
            )
        )
    sections.append(Section("Significance", items=tables[1:]))
    sections.append(Section("Conventions", "How the numbers on this page were made.", [result.conventions]))
    title = f"Kronos evaluation: {result.run_name}, {result.split} split"
    return write_page(directory / REPORT, title, facts, sections)
