"""Result tables in one neutral form: the library builds them once; the CLI renders them with Rich and reports
render them as plain text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""  # units and conventions, printed under the table
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells to stress: the best of a column

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def cell(self, row: int, col: int) -> str:
        """A cell as plain text shows it: a stressed cell ends with '*'."""
        text = self.rows[row][col]
        return f"{text}*" if (row, col) in self.bold else text


def render_text(tables: list[Table]) -> str:
    """Plain-text tables: the first column left-aligned, the others right-aligned."""
    out: list[str] = []
    for t in tables:
        rows = [[t.cell(r, c) for c in range(len(t.columns))] for r in range(len(t.rows))]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(t.columns)]
        out += [t.title, _line(t.columns, widths), "  ".join("-" * w for w in widths)]
        out += [_line(r, widths) for r in rows]
        if t.caption:
            out.append(t.caption)
        out.append("")
    return "\n".join(out)


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def pct(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x * 100:.{digits}f}%"


def num(x: float, digits: int = 4) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"
