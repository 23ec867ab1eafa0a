"""The page: one self-contained file (plotly.js inlined once, nothing fetched), tables as the text report has them,
and without plotly a page of tables that says how to get the charts."""

from __future__ import annotations

import base64
import gzip
import re

from kronos_cli.core.tables import Table
from kronos_cli.report import page
from kronos_cli.report.page import Chart, Section, render_page


def _sections() -> list[Section]:
    t = Table("Leaderboard", ["model", "MAE %"], caption="lower is better")
    t.add("fine-tuned", "1.75%")
    t.add("last close <ref>", "1.84%")
    t.bold.add((0, 1))
    chart = Chart({"data": [{"type": "scatter", "x": [1, 2], "y": [0.1, float("nan")]}], "layout": {}}, "a line")
    return [Section("Scores", "intro", [t, {"label": "open to open"}]), Section("Charts", items=[chart, chart])]


def test_the_page_inlines_plotly_once_and_fetches_nothing():
    html = render_page("run", {"split": "test"}, _sections())
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ["<script>"]  # one inline script, no src=
    assert not re.search(r"(src|href)=[\"']?https?:", html)
    packed = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', html).group(1)
    js = gzip.decompress(base64.b64decode(packed)).decode()
    assert "Plotly" in js and len(js) > 1_000_000
    assert html.count('class=plot id="chart-') == 2 and '"y":[0.1,null]' in html  # NaN as a gap, strict JSON


def test_tables_keep_their_cells_and_escape_them():
    html = render_page("run", {}, _sections())
    assert "<th>fine-tuned</th><td class=best>1.75%</td>" in html
    assert "last close &lt;ref&gt;" in html and "<dt>label</dt><dd>open to open</dd>" in html


def test_without_plotly_the_page_keeps_its_tables_and_says_how_to_get_charts(monkeypatch):
    monkeypatch.setattr(page, "plotly_js_packed", lambda: None)
    html = render_page("run", {}, _sections())
    assert "<script" not in html and "pip install plotly" in html and "1.75%" in html
