"""A walk-forward's results kept as a run of their own: its directory under `<output_dir>/runs/`, the `results` link
at the newest, listed and compared by `kronos runs`, its report.html showing walkforward.json's numbers and rebuilt
by `kronos report`; and a change that touches only the last fold recomputes only that fold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.core.io import whole_result_set
from kronos_cli.core.tables import num, pct
from kronos_cli.metrics.portfolio import growth
from tests.walkforward.test_walkforward import _overrides

runner = CliRunner()
SHORTER = "walkforward.end=2024-11-29"  # the last fold's test period ends a month early; the others are unchanged


def _invoke(*args: str) -> dict | list:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def two_runs(market, tmp_path_factory) -> tuple[Path, dict, dict]:
    """A walk-forward, then the same with the last fold's test period a month shorter, into one output_dir."""
    root = tmp_path_factory.mktemp("wf_runs")
    first = _invoke("walkforward", *_overrides(market, root), "--device", "cpu")
    second = _invoke("walkforward", *_overrides(market, root, SHORTER), "--device", "cpu")
    return root, first, second


def _cells(html: str) -> list[str]:
    return re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", html)


def _figures(html: str) -> list[dict]:
    """The charts' figures as the page hands them to plotly.js."""
    return json.loads(re.search(r"const figures = (.*?);\n", html).group(1))


@pytest.mark.slow
def test_changing_the_last_fold_recomputes_only_the_last_fold(two_runs):
    _, first, second = two_runs
    refits = [["prep", "train-tokenizer", "train-predictor"], ["prep", "train-predictor"], ["prep", "train-predictor"]]
    assert [f["ran"] for f in first["folds"]] == refits  # the preset tokenizer trained once, in the first fold
    assert [f["ran"] for f in second["folds"]] == [[], [], ["prep", "train-predictor"]]
    for a, b in zip(first["folds"][:2], second["folds"][:2]):
        assert b["reused_forecasts"] == 2 * b["windows"]  # the fold's model and the base model, from the cache
        assert b["scores"] == a["scores"]
    assert second["folds"][2]["test"][1] == "2024-11-29" and second["inputs"] != first["inputs"]


@pytest.mark.slow
def test_each_walkforward_is_a_run_of_its_own_listed_and_compared(two_runs):
    root, first, second = two_runs
    out, runs = root / "out", root / "out" / "runs"
    a, b = Path(first["outputs"]["results"]).parent, Path(second["outputs"]["results"]).parent
    assert a.parent == runs and b.parent == runs and a != b
    assert whole_result_set(a, "walkforward.json", "report.html") and whole_result_set(b, "walkforward.json")
    assert json.loads((a / "walkforward.json").read_text())["inputs"] == first["inputs"]  # the first run untouched
    link = out / "walkforward" / "wf" / "results"
    assert link.is_symlink() and link.resolve() == b.resolve() and (runs / "latest").resolve() == b.resolve()
    listed = _invoke("runs", "ls", "--output-dir", str(out))
    assert [r["id"] for r in listed] == [a.name, b.name] and {r["command"] for r in listed} == {"walkforward"}
    scores = listed[1]["scores"]
    model = next(m for m in second["stitched"]["models"] if m["label"] == "fine-tuned")
    assert scores["IC t"] == model["ic"]["IC_t"]
    assert scores["span return"] == second["backtest"]["stats"]["with_cost"]["total_return"]
    won = next(w for w in second["wins"] if w["against"] == second["base"] and w["metric"] == "CRPS")
    assert scores["CRPS folds won"] == won["share"] and "3 folds" in listed[1]["data"]
    compared = runner.invoke(app, ["runs", "compare", a.name, b.name, "--output-dir", str(out)])
    assert compared.exit_code == 0 and "walkforward.end" in compared.output, compared.output


@pytest.mark.slow
def test_the_page_shows_the_numbers_of_walkforward_json(two_runs):
    _, first, _ = two_runs
    page = Path(first["outputs"]["html"])
    html, d = page.read_text(), json.loads(Path(first["outputs"]["results"]).read_text())
    cells = _cells(html)
    for f in d["folds"]:
        m = f["scores"]["fine-tuned"]
        row = cells[cells.index(" .. ".join(f["test"])) - 1 :][:8]
        assert row[0] == str(f["fold"]) and row[4:8] == [
            num(m["IC"], 3),
            num(m["IC_t"], 2),
            num(m["MASE"], 3),
            pct(m["CRPS"], 3),
        ]
    for w in d["wins"]:
        assert f"{w['wins']} of {w['folds']}" in cells and num(w["p_value"], 3) in cells
    board = _cells(html.split("<h2>Stitched leaderboard</h2>")[1])
    for m in d["stitched"]["models"]:
        at = board.index(m["label"])
        assert {pct(m["overall"]["MAE"]), num(m["overall"]["MASE"], 3)} <= set(board[at : at + 12])
    figures = {f["layout"]["title"]["text"]: f for f in _figures(html)}
    ic = next(t for t in figures["IC by fold"]["data"] if t["name"] == "fine-tuned")
    assert ic["y"] == [f["scores"]["fine-tuned"]["IC"] for f in d["folds"]]
    cumulative = next(f for title, f in figures.items() if title.startswith("Cumulative return"))
    net = [r - c for r, c in zip(d["daily"]["return"], d["daily"]["cost"])]
    assert cumulative["data"][0]["y"] == pytest.approx(list(growth(pd.Series(net))))
    assert cumulative["data"][0]["y"][-1] == pytest.approx(d["backtest"]["stats"]["with_cost"]["total_return"])
    starts = [s["x0"] for s in cumulative["layout"]["shapes"]]
    assert starts == [f["test"][0] for f in d["folds"]]  # the fold boundaries marked


@pytest.mark.slow
def test_kronos_report_rebuilds_the_page_and_keeps_the_set_whole(two_runs):
    _, first, _ = two_runs
    run = Path(first["outputs"]["results"]).parent
    before = (run / "report.html").read_text()
    (run / "report.html").unlink()
    rebuilt = _invoke("report", str(run))
    assert Path(rebuilt["report"]) == run / "report.html" and (run / "report.html").read_text() == before
    assert whole_result_set(run, "walkforward.json", "report.html")


@pytest.mark.slow
def test_a_rerun_prints_the_page_of_the_run_it_found(two_runs, market):
    root, _, second = two_runs
    res = runner.invoke(app, ["walkforward", *_overrides(market, root, SHORTER), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    text = res.output.replace("\n", "")
    assert "up to date" in text and f"report (open in a browser): {second['outputs']['html']}" in text
