"""What every command shares: the consoles, logging set-up, option types and JSON output."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer
from rich.console import Console

console = Console(soft_wrap=True)  # results (tables, CSV, JSON) on stdout
err_console = Console(stderr=True, soft_wrap=True)  # logs, progress and errors on stderr

DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
JsonOpt = typer.Option(False, "--json", help="Print a JSON summary on stdout (logs stay on stderr).")


def setup_logging(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger("kronos_cli")
    root.handlers.clear()
    if err_console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=err_console, show_path=debug, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def print_json(obj: Any) -> None:
    """JSON on stdout, unstyled, so scripts can parse it."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
