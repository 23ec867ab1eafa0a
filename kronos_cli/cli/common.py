"""What every command shares: the consoles, logging set-up, progress, JSON output and tables (options shared
by several commands live in `options.py`)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

from rich.console import Console

from kronos_cli.core.io import json_text

# Results (tables, CSV, JSON) on stdout; wide enough for tables when piped into a file or a CI log.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)  # logs, progress and errors on stderr
MIN_RATE_S = 1.0  # a rate measured over less time says nothing: a cached batch arrives within microseconds


class Rate:
    """Work per second between reports at least MIN_RATE_S apart (monotonic time): none before the first such
    span, so a first step or a burst of cached work shows no rate rather than 0.0/s or millions a second."""

    def __init__(self, now: float, done: int = 0) -> None:
        self.mark, self.per_s = (now, done), None

    def observe(self, now: float, done: int) -> float | None:
        t, d = self.mark
        if now - t >= MIN_RATE_S and done > d:
            self.per_s, self.mark = (done - d) / (now - t), (now, done)
        return self.per_s

    def describe(self, done: int, total: int | None, unit: str = "") -> list[str]:
        """The rate and the time left as text ("1,234 windows/s", "~2 min left"), those that are known."""
        if self.per_s is None:
            return []
        r = self.per_s
        if r >= 1:
            out = [f"{r:,.0f}" if r >= 100 else f"{r:.1f}"]
            out[0] += f" {unit}/s" if unit else "/s"
        else:  # slow steps read better as seconds each than as 0.075/s
            out = [f"{1 / r:,.1f} s each"]
        if total and done < total:
            out.append(f"~{_duration((total - done) / r)} left")
        return out


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"  # never "~0 s left" while work remains
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


class StepProgress:
    """A Rich progress bar (rate and time left) on a terminal; periodic plain log lines with the rate and time left
    otherwise, so CI logs stay readable. `phase` starts a new stage of the same operation; an update that counts
    fewer done than the last (the next model of the same size) starts a new round."""

    def __init__(self, description: str, total: int | None = None, every: int = 10, unit: str = ""):
        self.description, self.total, self.every, self.unit = description, total, every, unit
        self.bar = None
        self.task = None
        self._last = -1
        self._done = 0
        self._t = time.monotonic()  # of the last update
        self._rate = Rate(self._t)

    def __enter__(self) -> StepProgress:
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[note]}"),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total, note="", rate="")
        return self

    def phase(self, description: str, total: int | None = None) -> None:
        self.description, self.total, self._last, self._done = description, total, -1, 0
        self._t = time.monotonic()
        self._rate = Rate(self._t)
        if self.bar is not None:
            self.bar.reset(self.task, total=total, description=description, note="", rate="")

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        now = time.monotonic()
        restarted = done < self._done  # the next model or setting of the same size began
        if restarted or (total is not None and self.total is not None and total != self.total):  # the next stage
            self._last, self._rate = -1, Rate(self._t)  # its work began when the last round reported its end
        self._done, self._t = done, now
        self.total = total = total or self.total
        self._rate.observe(now, done)
        rate = ", ".join(self._rate.describe(done, total, self.unit))
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, note=note, rate=rate)
            return
        pct = int(100 * done / total) if total else 0
        if pct // self.every != self._last or done == total:
            self._last = pct // self.every
            logging.getLogger("kronos_cli.cli").info(
                "%s: %s%s", self.description, note or f"{done}/{total}", f" ({rate})" if rate else ""
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


def error_text(exc: Exception, flags: dict[str, str] | None = None) -> str:
    """A user error as the CLI prints it, Rich markup escaped: one line (a message quoting a library's own may
    span lines), or a config's header line with one indented line per problem. The setting the error names
    (`KronosError.settings`) read as their flags where `flags` (parameter name -> flag) has one; a word within a
    path (`runs/models/x`) or a dotted key (`data.calendar`) stays as it is."""
    from rich.markup import escape

    text = str(exc) if getattr(exc, "multiline", False) else " ".join(str(exc).split())
    text = as_flags(text, getattr(exc, "settings", ()), flags)
    return escape("\n".join(_clipped(line) for line in text.splitlines()))


def as_flags(text: str, settings: tuple[str, ...], flags: dict[str, str] | None) -> str:
    """`text` with each of `settings` that `flags` (parameter name -> flag) has written as its flag."""
    for setting in settings:
        if setting in (flags or {}):
            text = re.sub(rf"(?<![\w./\\-]){re.escape(setting)}(?![\w/\\-])", flags[setting], text)
    return text


def command_flags(group_ctx) -> dict[str, str]:
    """Parameter name -> its long flag, for the subcommand a group's context invoked (empty when none); for a
    nested group (`kronos runs`), those of all its subcommands, since which one ran is no longer known."""
    name = getattr(group_ctx, "invoked_subcommand", None)
    command = group_ctx.command.get_command(group_ctx, name) if name else None
    return _flags(command)


def _flags(command) -> dict[str, str]:
    flags = {}
    for sub in getattr(command, "commands", {}).values():
        flags.update(_flags(sub))
    for param in getattr(command, "params", ()):
        long = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if long and param.name:
            flags[param.name] = long[0]
    return flags


MAX_ERROR_LINE = 2000  # characters of one error line: whatever a message quotes, stderr gets no megabytes


def _clipped(line: str) -> str:
    return line if len(line) <= MAX_ERROR_LINE else f"{line[:MAX_ERROR_LINE]}... ({len(line):,} characters cut)"


def print_json(obj: Any) -> None:
    """JSON on stdout, unstyled, so scripts can parse it."""
    sys.stdout.write(json_text(obj))
    sys.stdout.flush()


def print_tables(tables) -> None:
    """Render the library's neutral `Table`s with Rich on stdout, each with its caption; the stressed cells (the
    best of a column) bold on a terminal, marked with '*' where bold would not show (a pipe, a file)."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    for t in tables:
        rich = RichTable(title=t.title, caption=t.caption or None, caption_justify="left")
        for i, col in enumerate(t.columns):
            rich.add_column(col, justify="left" if i == 0 else "right")
        bold = console.is_terminal
        for r, row in enumerate(t.rows):
            cells = [escape(c if bold else t.cell(r, i)) for i, c in enumerate(row)]
            rich.add_row(*(f"[bold]{c}[/bold]" if bold and (r, i) in t.bold else c for i, c in enumerate(cells)))
        console.print(rich)


def ready_announcer(command: str, json_out: bool, docs: bool = False):
    """What a server calls once it listens on `url`: one JSON line `{"event": "ready", "url", "pid"}` on stdout
    (with `docs`: the OpenAPI page's address too) for scripts, or one line on the console."""

    def announce(url: str) -> None:
        if json_out:
            event = {"event": "ready", "url": url, **({"docs": f"{url}/docs"} if docs else {}), "pid": os.getpid()}
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()
            return
        console.print(
            f"kronos {command}: ready on {url}" + (f" (OpenAPI: {url}/docs)" if docs else ""), highlight=False
        )
        console.file.flush()

    return announce
