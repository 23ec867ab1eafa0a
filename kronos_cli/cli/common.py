"""What every command shares: the consoles, logging set-up, progress, JSON output and tables (options shared
by several commands live in `options.py`)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console

from kronos_cli.io import json_text

# Results (tables, CSV, JSON) on stdout; wide enough for tables when piped into a file or a CI log.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)  # logs, progress and errors on stderr


class StepProgress:
    """A Rich progress bar (rate and time left) on a terminal; periodic plain log lines with the rate and time left
    otherwise, so CI logs stay readable. `phase` starts a new stage of the same operation."""

    def __init__(self, description: str, total: int | None = None, every: int = 10, unit: str = ""):
        self.description, self.total, self.every, self.unit = description, total, every, unit
        self.bar = None
        self.task = None
        self._last = -1
        self._done = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> StepProgress:
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total, note="", rate="")
        return self

    def phase(self, description: str, total: int | None = None) -> None:
        self.description, self.total, self._last, self._done = description, total, -1, 0
        self._t0 = time.monotonic()
        if self.bar is not None:
            self.bar.reset(self.task, total=total, description=description, note="", rate="")

    def _rate(self, done: int, total: int | None) -> tuple[str, str]:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = done / elapsed
        left = f", ~{(total - done) / rate:,.0f} s left" if total and rate > 0 and done < total else ""
        return f"{rate:,.1f} {self.unit}/s".replace(" /s", "/s"), left

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        restarted = done < self._done  # the next model or setting of the same size began
        if restarted or (total is not None and self.total is not None and total != self.total):  # the next stage
            self._last, self._t0 = -1, time.monotonic()
        self._done = done
        self.total = total = total or self.total
        rate, left = self._rate(done, total)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, note=note, rate=rate)
            return
        pct = int(100 * done / total) if total else 0
        if pct // self.every != self._last or done == total:
            self._last = pct // self.every
            logging.getLogger("kronos_cli.cli").info(
                "%s: %s (%s%s)", self.description, note or f"{done}/{total}", rate, left
            )

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now (a test runner swaps it), never to a stream closed since."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("kronos_cli")
    root.handlers.clear()
    if err_console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=err_console, show_path=debug, rich_tracebacks=False, log_time_format="[%Y-%m-%d %H:%M:%S]"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def print_json(obj: Any) -> None:
    """JSON on stdout, unstyled, so scripts can parse it."""
    sys.stdout.write(json_text(obj))
    sys.stdout.flush()


def print_tables(tables) -> None:
    """Render the library's neutral `Table`s with Rich on stdout, each with its caption."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    for t in tables:
        rich = RichTable(title=t.title, caption=t.caption or None, caption_justify="left")
        for i, col in enumerate(t.columns):
            rich.add_column(col, justify="left" if i == 0 else "right")
        for r, row in enumerate(t.rows):
            rich.add_row(*(f"[bold]{escape(c)}[/bold]" if (r, i) in t.bold else escape(c) for i, c in enumerate(row)))
        console.print(rich)
