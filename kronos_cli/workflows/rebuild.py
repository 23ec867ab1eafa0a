"""`kronos report`: a run's `report.html` rebuilt from its results files, a backtest's or an evaluation's, and the
run a command line names (a directory, or an id under `<output_dir>/runs/`)."""

from __future__ import annotations

import logging
from pathlib import Path

from kronos_cli.backtest import page as backtest_page
from kronos_cli.core.io import join_result_set, whole_result_set
from kronos_cli.evaluate import page as evaluate_page
from kronos_cli.records.store import find_run
from kronos_cli.records.summary import command_of
from kronos_cli.report.page import REPORT

log = logging.getLogger(__name__)
WRITERS = {"backtest": backtest_page.write_report, "evaluate": evaluate_page.write_report}


def named_run(spec: str, root: Path) -> Path:
    """A run directory given as a path, or as an id (or a unique prefix of one, or `latest`) under `root`."""
    given = Path(spec).expanduser()
    return given if given.is_dir() else find_run(root, spec)


def rebuild_report(directory: Path) -> Path:
    """Write `directory/report.html` again from the results there; a whole result set names the new page in its
    manifest, so it stays whole."""
    command = command_of(directory)
    whole = whole_result_set(directory)
    path = WRITERS[command](directory)
    if whole:
        join_result_set(directory, REPORT)
    else:
        log.warning("%s is not a whole result set; the page is rebuilt, its manifest left as it was", directory)
    return path
