"""`kronos report`: a run's `report.html` rebuilt from its results files, a backtest's, an evaluation's or a
walk-forward's, and the run a command line names (a directory, or an id under `<output_dir>/runs/`).

The walk-forward sits beside this package in the layers, so its page writer is handed in by the caller (the command
line): `rebuild_report(directory, {"walkforward": walkforward.page.write_report})`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from kronos_cli.backtest import page as backtest_page
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import join_result_set, whole_result_set
from kronos_cli.evaluate import page as evaluate_page
from kronos_cli.records.store import find_run
from kronos_cli.records.summary import command_of
from kronos_cli.report.page import REPORT

log = logging.getLogger(__name__)
Writer = Callable[[Path], Path]
WRITERS: dict[str, Writer] = {"backtest": backtest_page.write_report, "evaluate": evaluate_page.write_report}


def named_run(spec: str, root: Path) -> Path:
    """A run directory given as a path, or as an id (or a unique prefix of one, or `latest`) under `root`."""
    given = Path(spec).expanduser()
    return given if given.is_dir() else find_run(root, spec)


def rebuild_report(directory: Path, writers: Mapping[str, Writer] | None = None) -> Path:
    """Write `directory/report.html` again from the results there, with `WRITERS` and `writers`' page writer of the
    command that wrote them; a whole result set names the new page in its manifest, so it stays whole."""
    command = command_of(directory)
    write = {**WRITERS, **(writers or {})}.get(command)
    if write is None:
        raise KronosError(f"{directory} holds a {command} run, whose page this caller cannot write")
    whole = whole_result_set(directory)
    path = write(directory)
    if whole:
        join_result_set(directory, REPORT)
    else:
        log.warning("%s is not a whole result set; the page is rebuilt, its manifest left as it was", directory)
    return path
