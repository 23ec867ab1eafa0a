"""Appends that are undone when they do not finish: before files are extended in place, their sizes (and the small
files rewritten with them) are recorded in a journal; the journal is removed when the update is whole. The next
writer finding a journal truncates the files back and restores the small files, so a kill mid-update leaves the
directory as it was before it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from kronos_cli.core.io import write_json, write_text

log = logging.getLogger(__name__)
JOURNAL = ".kronos_fetch_journal.json"


def recover(root: Path) -> bool:
    """Undo an update that was killed before it finished; True when there was one."""
    path = Path(root) / JOURNAL
    if not path.is_file():
        return False
    entry = json.loads(path.read_text())
    for name, size in entry["sizes"].items():
        f = Path(root) / name
        if size < 0:
            f.unlink(missing_ok=True)
        elif f.exists():
            os.truncate(f, size)
    for name, text in entry["texts"].items():
        if text is None:
            (Path(root) / name).unlink(missing_ok=True)
        else:
            write_text(Path(root) / name, text)
    path.unlink()
    log.warning("an update of %s was interrupted; it was rolled back to the data before it", root)
    return True


@contextlib.contextmanager
def journaled(root: Path, appended: list[Path], rewritten: list[Path]) -> Iterator[None]:
    """Within the block, `appended` files may be extended and `rewritten` ones replaced; a failure or a kill rolls
    them all back (at once for a failure, at the next `recover` for a kill)."""
    root = Path(root)
    sizes = {str(p.relative_to(root)): (p.stat().st_size if p.exists() else -1) for p in appended}
    texts = {str(p.relative_to(root)): (p.read_text() if p.exists() else None) for p in rewritten}
    write_json(root / JOURNAL, {"sizes": sizes, "texts": texts})
    try:
        yield
    except BaseException:
        recover(root)
        raise
    (root / JOURNAL).unlink()


def append_bytes(path: Path, data: bytes) -> int:
    with open(path, "ab") as f:
        f.write(data)
    return len(data)
