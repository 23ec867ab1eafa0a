"""Runs kept side by side: each backtest, evaluation and walk-forward writes its own result set under
`<output_dir>/runs/<id>/`, the id made of the UTC time, the command and its config's hash, never over an earlier
run. Links point at the newest: `runs/latest` at the newest of all, and the directory each command wrote before
runs were kept (`backtest_results/<run_name>`, `evaluation/<run_name>/<split>`, `walkforward/<run_name>/results`)
at its newest, so every reader of those paths keeps working. A result set found at such a path (written by an
earlier version), and its `.history/` sets, are moved into `runs/` the first time a new run of it is recorded."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import MANIFEST, STAMP, history_dir

log = logging.getLogger(__name__)
LATEST = "latest"
CONFIG = "config.json"  # the resolved config of the run, beside its results


def run_id(about: dict[str, Any], written: str) -> str:
    """`20261206T081500Z-backtest-1a2b3c4d`: when (UTC), which command, which config."""
    return f"{written}-{about.get('command', 'run')}-{str(about.get('config_sha256', 'unknown'))[:8]}"


def free_path(root: Path, name: str) -> Path:
    path, n = root / name, 1
    while path.exists() or path.is_symlink():
        n += 1
        path = root / f"{name}-{n}"
    return path


def point(link: Path, target: Path, root: Path) -> None:
    """Make `link` a relative symlink to `target`, in one rename; a result set that sits at `link` (an earlier
    version's layout) is moved into `root` first, its `.history/` sets with it."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        adopt(link, root)
    for old in sorted(history_dir(link).glob("*")) if history_dir(link).is_dir() else []:
        adopt(old, root)
    with contextlib.suppress(OSError):
        history_dir(link).rmdir()
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def _manifest(directory: Path) -> dict[str, Any]:
    try:
        m = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def adopt(directory: Path, root: Path) -> Path | None:
    """Move a result set written before runs were kept into `root`, named as a run would be; None when it is not
    a result set (left where it is)."""
    m = _manifest(directory)
    if not m:
        log.warning("%s has no %s; it is left where it is", directory, MANIFEST)
        if directory.is_dir() and not directory.is_symlink():  # out of the way of the link, under a telling name
            directory.rename(free_path(directory.parent, f"{directory.name}.unrecorded"))
        return None
    about = m.get("about") if isinstance(m.get("about"), dict) else {}
    written = m.get("written") if isinstance(m.get("written"), str) else None
    stamp = written or datetime.fromtimestamp(directory.stat().st_mtime, timezone.utc).strftime(STAMP)
    root.mkdir(parents=True, exist_ok=True)
    target = free_path(root, run_id(about, stamp))
    directory.rename(target)
    log.info("moved the result set %s to %s (runs are kept there now)", directory, target)
    return target


LEGACY = ("backtest_results/*", "evaluation/*/*", "walkforward/*/results")  # result sets before runs were kept


def runs(root: Path) -> list[Path]:
    """The run directories under `root`, oldest first (ids start with their UTC time), after the result sets an
    earlier version left beside it (`backtest_results/NAME`, `evaluation/NAME/SPLIT`, `walkforward/NAME/results` and
    their `.history/`), which the next run of each moves into `root`."""
    kept = sorted(p for p in root.glob("*") if p.is_dir() and not p.is_symlink() and (p / MANIFEST).is_file())
    legacy = [p for pattern in LEGACY for p in root.parent.glob(pattern) if not p.is_symlink()]
    legacy += [h for p in legacy for h in history_dir(p).glob("*")]
    legacy = [p for p in legacy if p.is_dir() and (p / MANIFEST).is_file()]
    return sorted(legacy, key=lambda p: str(_manifest(p).get("written", ""))) + kept


def label(root: Path, run: Path) -> str:
    """A run's id: its directory's name under `root`, or the path of an earlier version's set under root's parent."""
    return run.name if run.parent == root else os.path.relpath(run, root.parent)


def find_run(root: Path, spec: str) -> Path:
    """The run that `spec` names: `latest`, an id, a unique prefix of one, or a run directory's path."""
    given = Path(spec).expanduser()
    if os.sep in spec and given.is_dir():
        return given
    if spec == LATEST and (root / LATEST).is_dir():
        return (root / LATEST).resolve()
    every = runs(root)
    if not every:
        raise KronosError(
            f"no runs under {root}: run `kronos backtest`, `kronos evaluate` or `kronos walkforward` first, "
            "or name output_dir",
            setting="output_dir",
        )
    exact = [p for p in every if label(root, p) == spec]
    hits = exact or [p for p in every if label(root, p).startswith(spec)]
    if not hits:
        raise KronosError(f"no run {spec!r} under {root} (`kronos runs ls` lists them)")
    if len(hits) > 1:
        shown = ", ".join(label(root, p) for p in hits[:3]) + (", ..." if len(hits) > 3 else "")
        raise KronosError(f"{spec!r} matches {len(hits)} runs under {root} ({shown}); give more of the id")
    return hits[0]


def remove_run(root: Path, run: Path) -> list[Path]:
    """Delete `run`; each link that pointed at it is pointed at the newest remaining run recorded for that link,
    or removed. Returns the links changed."""
    shutil.rmtree(run)
    changed = []
    for link in _links(root):
        if link.exists():
            continue  # it points at another run
        name = os.path.relpath(link, root.parent)
        same = [p for p in runs(root) if name in _manifest(p).get("about", {}).get("links", [])]
        same = runs(root) if link == root / LATEST else same
        if same:
            point(link, same[-1], root)
        else:
            link.unlink()
        changed.append(link)
    return changed


def _links(root: Path) -> list[Path]:
    """The symlinks beside and under root's parent (at most 3 deep) that point into `root`."""
    found = []
    for depth in ("*", "*/*", "*/*/*"):
        found += [p for p in root.parent.glob(depth) if p.is_symlink()]
    inside = []
    for p in found:
        target = Path(os.path.normpath(p.parent / os.readlink(p)))
        if target.parent == root.absolute():
            inside.append(p)
    return inside
