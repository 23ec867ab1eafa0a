"""The demo's pages and a walk-forward's in a real browser (Debian's headless Chromium driven by Playwright, the
network disabled): no console errors, every chart drawn, the leaderboard's numbers those of evaluation.json; a
screenshot of each page is written for people to look at (to $KRONOS_SCREENSHOTS, else pytest's temporary
directory)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.core.tables import num, pct
from tests.walkforward.test_walkforward import _overrides as walkforward_overrides

playwright = pytest.importorskip("playwright.sync_api")
runner = CliRunner()
SMALL = ["training.n_train_iter=10", "training.epochs=1"]
CHROMIUM = os.environ.get("KRONOS_CHROMIUM") or next(
    (
        p
        for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
        if p and Path(p).is_file()
    ),
    None,
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium, or set KRONOS_CHROMIUM)"),
]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The demo (training cut short; or the finished `kronos demo --out DIR` that $KRONOS_DEMO_OUT names) and the
    paths of its two pages, as its JSON summary names them."""
    given = os.environ.get("KRONOS_DEMO_OUT")
    if given:
        outputs = Path(given) / "outputs"
        return (
            outputs / "evaluation" / "demo" / "test" / "report.html",
            outputs / "backtest_results" / "demo" / "report.html",
        )
    out = tmp_path_factory.mktemp("demo") / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), *SMALL, "--json"])
    assert res.exit_code == 0, res.output
    paths = json.loads(res.stdout)["paths"]
    return Path(paths["evaluation_html"]), Path(paths["backtest_html"])


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox cannot run as root (CI containers)
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


def _open(browser, page_path: Path, shot: Path):
    """The page opened offline; (the page, console errors, requests that tried to leave the machine)."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    outside, errors = [], []
    context.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith("file:") else (outside.append(r.request.url), r.abort()),
    )
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    page.wait_for_function("document.body.dataset.charts !== undefined", timeout=60_000)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    return page, errors, outside


def _charts_drawn(page) -> list[bool]:
    """Each chart: an SVG with a size, holding at least one drawn trace (lines, bars or a heat map)."""
    return page.evaluate(
        """Array.from(document.querySelectorAll('.plot')).map(d => {
            const svg = d.querySelector('svg.main-svg'); const box = svg && svg.getBoundingClientRect();
            return !!svg && box.width > 100 && box.height > 100 && d.querySelectorAll('g.trace, g.hm').length > 0; })"""
    )


def _shots(tmp_path_factory) -> Path:
    return Path(os.environ.get("KRONOS_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")


def test_the_evaluation_page_draws_offline_with_the_leaderboard_of_its_json(pages, browser, tmp_path_factory):
    evaluation, _ = pages
    shot = _shots(tmp_path_factory) / "report_evaluation.png"
    page, errors, outside = _open(browser, evaluation, shot)
    assert page.evaluate("document.body.dataset.charts") == "drawn" and not errors and not outside
    drawn = _charts_drawn(page)
    assert len(drawn) >= 6 and all(drawn), drawn
    board = page.evaluate(
        """(() => { const t = document.querySelector('figure.table table');
            const head = Array.from(t.querySelectorAll('thead th')).map(c => c.textContent);
            return Array.from(t.querySelectorAll('tbody tr')).map(r =>
                Object.fromEntries(Array.from(r.children).map((c, i) => [head[i], c.textContent]))); })()"""
    )
    saved = json.loads((evaluation.parent / "evaluation.json").read_text())
    assert [row["model"] for row in board] == [m["label"] for m in saved["models"]]
    for row, m in zip(board, saved["models"]):
        o = m["overall"]
        assert (row["MAE %"], row["CRPS %"], row["MASE"]) == (pct(o["MAE"]), pct(o["CRPS"]), num(o["MASE"], 3))
        assert row["cov90"] == pct(m["coverage"]["0.9"])
    assert shot.stat().st_size > 10_000


def test_the_backtest_page_draws_offline(pages, browser, tmp_path_factory):
    _, backtest = pages
    page, errors, outside = _open(browser, backtest, _shots(tmp_path_factory) / "report_backtest.png")
    assert page.evaluate("document.body.dataset.charts") == "drawn" and not errors and not outside
    drawn = _charts_drawn(page)
    assert len(drawn) >= 5 and all(drawn), drawn


@pytest.fixture(scope="module")
def walkforward_page(market, tmp_path_factory) -> Path:
    """report.html of a two-fold walk-forward of tiny models on the synthetic market."""
    root = tmp_path_factory.mktemp("walkforward")
    overrides = walkforward_overrides(market, root, "walkforward.start=2024-07-01")
    res = runner.invoke(app, ["walkforward", *overrides, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    return Path(json.loads(res.stdout)["outputs"]["html"])


def test_the_walkforward_page_draws_offline_with_the_folds_of_its_json(walkforward_page, browser, tmp_path_factory):
    page, errors, outside = _open(browser, walkforward_page, _shots(tmp_path_factory) / "report_walkforward.png")
    assert page.evaluate("document.body.dataset.charts") == "drawn" and not errors and not outside
    drawn = _charts_drawn(page)
    assert len(drawn) >= 5 and all(drawn), drawn  # excess, cumulative, IC, MASE and CRPS by fold
    bars = page.evaluate(
        """Array.from(document.querySelectorAll('.plot')).filter(d => d.layout.title.text === 'IC by fold')
            .map(d => d.data.map(t => [t.name, t.y]))[0]"""
    )
    saved = json.loads((walkforward_page.parent / "walkforward.json").read_text())
    for name, ys in bars:
        assert ys == [f["scores"][name]["IC"] for f in saved["folds"]]
