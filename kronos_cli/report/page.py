"""One self-contained HTML page of results: sections of tables, interactive charts and plain words, readable on a
laptop screen and printable, that opens offline (no CDN: its script and styles are inlined).

Charts are plotly figures written as plain `{"data": [...], "layout": {...}}` dicts, drawn by plotly.js. The
plotly.js bundle (4.8 MB) is inlined once, gzip-compressed and base64-encoded (2.3 MB), and unpacked by the browser's
own `DecompressionStream`: a CSI300-sized year fits in 5 MB. Without the plotly package the page keeps its tables
and words and says how to get the charts.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kronos_cli.core.io import finite, write_text
from kronos_cli.core.tables import Table

REPORT = "report.html"


@dataclass
class Chart:
    figure: dict[str, Any]  # {"data": [...traces], "layout": {...}}, as plotly.js takes it
    caption: str = ""
    height: int = 380  # pixels on screen


@dataclass
class Section:
    title: str
    intro: str = ""
    items: list[Table | Chart | dict[str, Any]] = field(default_factory=list)  # a dict: terms and their words


@functools.lru_cache(maxsize=1)
def plotly_js_packed() -> str | None:
    """plotly.js, gzip-compressed and base64-encoded, or None without the plotly package (read as a file:
    importing plotly would cost a second)."""
    try:
        js = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    # level 1: a third of level 6's time (the first page of a process pays it) for 15% more bytes (2.3 MB)
    return base64.b64encode(gzip.compress(js, compresslevel=1, mtime=0)).decode()


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    rows = []
    for r, row in enumerate(t.rows):
        cells = "".join(
            f"<{'th' if c == 0 else 'td'}{' class=best' if (r, c) in t.bold else ''}>{html.escape(v)}"
            f"</{'th' if c == 0 else 'td'}>"
            for c, v in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    caption = f"<p class=caption>{html.escape(t.caption)}</p>" if t.caption else ""
    return (
        f"<figure class=table><figcaption>{html.escape(t.title)}</figcaption><div class=scroll><table>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{caption}</figure>"
    )


def _terms_html(terms: dict[str, Any]) -> str:
    items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in terms.items())
    return f"<dl>{items}</dl>"


def _item_html(item: Table | Chart | dict[str, Any], charts: list[dict[str, Any]]) -> str:
    if isinstance(item, Table):
        return _table_html(item)
    if isinstance(item, Chart):
        charts.append(finite(item.figure))  # NaN as null: plotly leaves a gap
        caption = f"<p class=caption>{html.escape(item.caption)}</p>" if item.caption else ""
        style = f' style="height:{item.height}px"' if item.height != Chart.height else ""
        return f'<figure class=chart><div class=plot id="chart-{len(charts) - 1}"{style}></div>{caption}</figure>'
    return _terms_html(item)


def render_page(title: str, facts: dict[str, str], sections: list[Section]) -> str:
    """The page: a title, the run's facts, then each section; charts drawn when the page loads."""
    charts: list[dict[str, Any]] = []
    body = []
    for s in sections:
        intro = f"<p>{html.escape(s.intro)}</p>" if s.intro else ""
        body.append(f"<section><h2>{html.escape(s.title)}</h2>{intro}{''.join(_item_html(i, charts) for i in s.items)}")
        body.append("</section>")
    packed = plotly_js_packed() if charts else None
    missing = (
        "<p class=note>Charts need the plotly package (pip install plotly); rebuild this page with "
        "<code>kronos report DIR</code> once it is installed.</p>"
        if charts and packed is None
        else ""
    )
    figures = json.dumps(charts, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    script = f"<script>{_loader(figures, packed)}</script>" if packed else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title><style>{_CSS}</style>'
        f"</head><body><header><h1>{html.escape(title)}</h1>{_terms_html(facts)}</header>{missing}"
        f"{''.join(body)}{script}</body></html>\n"
    )


def _loader(figures: str, packed: str) -> str:
    """The loader with its two slots filled (split on the template, so neither value is searched for the other's
    slot name)."""
    head, rest = _LOADER.split("FIGURES")
    middle, tail = rest.split("PACKED")
    return head + figures + middle + packed + tail


def write_page(path: Path, title: str, facts: dict[str, str], sections: list[Section]) -> Path:
    return write_text(path, render_page(title, facts, sections))


# The browser unpacks plotly.js (gzip, base64) with its own DecompressionStream, runs it, then draws each chart;
# `document.body.dataset.charts` says "drawn" (or the error) for a test or a printing script to wait on.
_LOADER = """
(async () => {
  const figures = FIGURES;
  try {
    const bytes = Uint8Array.from(atob("PACKED"), c => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const tag = document.createElement("script");
    tag.text = code;
    document.head.appendChild(tag);
    for (let i = 0; i < figures.length; i++) {
      const f = figures[i];
      const layout = Object.assign({template: "plotly_white", margin: {t: 48, r: 16, b: 48, l: 64},
        font: {size: 12}, legend: {orientation: "h", y: -0.2}}, f.layout);
      await Plotly.newPlot("chart-" + i, f.data, layout, {responsive: true, displaylogo: false});
    }
    document.body.dataset.charts = "drawn";
  } catch (err) {
    document.body.dataset.charts = "failed: " + err;
    throw err;
  }
})();
"""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;max-width:1200px;
margin:0 auto;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:1px solid #d6dbe1;padding-bottom:4px;margin-top:32px}
header dl,section dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dt{font-weight:600;color:#46525f}dd{margin:0}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #e6e9ed;text-align:right;white-space:nowrap}
thead th{border-bottom:2px solid #9aa5b1;background:#f5f7f9}
tbody th{text-align:left;font-weight:500}td.best{font-weight:700}
.caption{color:#5b6673;font-size:12px;margin:4px 0}.note{background:#fff6db;padding:8px;border-radius:4px}
.plot{width:100%;height:380px}
@media print{body{max-width:none;padding:0;font-size:11px}section,figure{break-inside:avoid}
.scroll{overflow:visible}.plot{height:320px}}
"""
