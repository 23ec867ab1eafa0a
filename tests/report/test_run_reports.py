"""A backtest and an evaluation each write report.html into their own run directory, with the numbers of their
JSON; reruns are kept beside them, listed, compared and removed; `kronos report` rebuilds a page and keeps its set
whole; mistakes get one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.core.io import whole_result_set
from kronos_cli.core.tables import num, pct
from tests.conftest import DEMO_SPLITS, backtest_args

runner = CliRunner()


@pytest.fixture(scope="module")
def runs_out(prepared, tiny_checkpoints, tmp_path_factory):
    """Two backtests (topk 8, then 5) and one evaluation of the tiny pair into one output_dir."""
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    out = tmp_path_factory.mktemp("runs")
    args = [*backtest_args(cfg, tok, model, out), "backtest.batch_size=2048", "backtest.signals=[mean]", "--json"]
    results = [runner.invoke(app, a) for a in (args, [*args, "backtest.topk=5"])]
    evaluate = [
        "evaluate",
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={out}",
        "run_name=bt",
        f"model.tokenizer={tok}",
        f"model.predictor={model}",
        "backtest.sample_count=2",
        "--device",
        "cpu",
        "--json",
    ]
    results.append(runner.invoke(app, evaluate))
    for r in results:
        assert r.exit_code == 0, r.output
    return out, [json.loads(r.stdout) for r in results]


def _cells(html: str) -> set[str]:
    return set(re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", html))


def test_each_run_writes_its_page_with_the_numbers_of_its_json(runs_out):
    out, (first, second, evaluation) = runs_out
    for result in (first, second, evaluation):
        page = Path(result["outputs"]["html"])
        assert page.parent.parent == out / "runs" and whole_result_set(page.parent, "report.html")
    html = Path(second["outputs"]["html"]).read_text()
    w = second["portfolio"]["mean"]["with_cost"]
    assert {pct(w["total_return"]), pct(w["annualized_return"]), num(w["information_ratio"], 2)} <= _cells(html)
    board = Path(evaluation["outputs"]["html"]).read_text()
    for m in evaluation["models"]:
        assert {m["label"], pct(m["overall"]["MAE"]), num(m["overall"]["MASE"], 3)} <= _cells(board)
    assert len(evaluation["examples"]) >= 1 and "what happened" in board  # fan charts of symbols picked by rule


def test_reruns_are_kept_listed_compared_and_the_links_follow_the_newest(runs_out):
    out, (first, second, evaluation) = runs_out
    link = out / "backtest_results" / "bt"
    newest = json.loads((link / "backtest_results.json").read_text())
    assert link.is_symlink() and newest["config"]["backtest"]["topk"] == 5
    listed = runner.invoke(app, ["runs", "ls", "--output-dir", str(out), "--json"])
    assert listed.exit_code == 0, listed.output
    ids = [r["id"] for r in json.loads(listed.stdout)]
    assert [r["command"] for r in json.loads(listed.stdout)] == ["backtest", "backtest", "evaluate"]
    compared = runner.invoke(app, ["runs", "compare", ids[0], ids[1], "--output-dir", str(out), "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["settings"]["backtest.topk"] == [8, 5]
    shown = runner.invoke(app, ["runs", "show", ids[2][:20], "--output-dir", str(out)])
    assert shown.exit_code == 0 and "report.html" in shown.output


def test_kronos_report_rebuilds_a_page_and_keeps_the_set_whole(runs_out):
    out, (first, *_) = runs_out
    page = Path(first["outputs"]["html"])
    before = page.read_text()
    page.unlink()
    rebuilt = runner.invoke(app, ["report", page.parent.name, "--output-dir", str(out), "--json"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert page.read_text() == before and whole_result_set(page.parent, "report.html")


@pytest.mark.parametrize(
    "args, said",
    [
        (["report", "nope"], "no run 'nope'"),
        (["report", "2"], "matches 3 runs"),
        (["runs", "show", "2"], "matches 3 runs"),
        (["runs", "rm", "nope"], "no run 'nope'"),
        (["runs", "compare", "2"], "two or more runs"),
    ],
)
def test_mistakes_get_one_line_and_exit_2(runs_out, args, said):
    out, _ = runs_out
    res = runner.invoke(app, [*args, "--output-dir", str(out)])
    assert res.exit_code == 2 and said in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_a_directory_without_results_is_one_line_and_exit_2(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "holds no results" in res.output, res.output


def test_removing_a_run_moves_the_link_back(runs_out):
    out, (first, second, _) = runs_out
    newest = Path(second["outputs"]["html"]).parent.name
    res = runner.invoke(app, ["runs", "rm", newest, "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    link = out / "backtest_results" / "bt"
    assert json.loads((link / "backtest_results.json").read_text())["config"]["backtest"]["topk"] == 8
