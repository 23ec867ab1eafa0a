"""Atomic file writes: write beside the target, then rename, so a crash never leaves a half-written file; a set
of result files is written as one directory with a manifest, so a reader never mixes the files of two runs.

Temporary files and directories are created private (mkstemp's 0600, mkdtemp's 0700); before the rename they
get the modes any new file or directory would get under the process's umask (0644 and 0755 under umask 022),
so results are readable by whoever may read the output folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~_umask()


def dir_mode() -> int:
    return 0o777 & ~_umask()


def publish_tree(root: Path) -> None:
    """Give a freshly written directory tree the umask's modes (its files were written by libraries that may
    have created them private)."""
    fmode, dmode = file_mode(), dir_mode()
    os.chmod(root, dmode)
    for base, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(base, d), dmode)
        for f in files:
            os.chmod(os.path.join(base, f), fmode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def finite(obj: Any) -> Any:
    """NaN and infinities as null (strict JSON: jq and JavaScript reject NaN), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """Strict JSON (an unknown value is null), indented, with anything else written as its string."""
    return json.dumps(finite(obj), indent=2, default=str, allow_nan=False) + "\n"


def json_floats(values) -> list:
    """An array as nested lists of floats; float32 values as the shortest decimals that read back as the same
    float32 (42.648735, not the 42.64873504638672 `.tolist()` gives): numpy writes float32 as such text."""
    if values.dtype == "float32":
        return values.astype(str).astype("float64").tolist()
    return values.tolist()


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json_text(obj))


def file_digest(path: str | os.PathLike, start: int = 0) -> str:
    """SHA-256 of a file's bytes from offset `start`, remembered while its size and modification time stay the
    same."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, start)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int, start: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recover_dir(target: Path) -> Path:
    """Undo a replacement that a kill interrupted between its two renames: when `target` is missing but the
    previous version waits as `.NAME.old-PID`, it is put back. Returns `target`."""
    target = Path(target)
    if not target.exists() and target.parent.is_dir():
        olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            olds[-1].rename(target)
            log.warning("%s was being replaced when its writer died; the previous version is back", target)
    return target


def _writer_gone(tmp: Path, target: Path) -> bool:
    """Whether the process that made the staging directory `tmp` (`.NAME.tmp-PID-*`) has ended."""
    pid = tmp.name[len(f".{target.name}.tmp-") :].split("-", 1)[0]
    if os.name != "posix" or not pid.isdigit():  # signal 0 would end a Windows process; no PID: not ours to judge
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _sweep_leftovers(target: Path) -> None:
    """Remove the staging directories that writes of `target` killed before their swap left behind, saying so; one
    whose process still runs is another write in progress and stays."""
    for tmp in sorted(target.parent.glob(f".{target.name}.tmp-*")):
        if tmp.is_dir() and _writer_gone(tmp, target):
            kept = "the version before it is intact" if target.exists() else "there was none before it"
            log.warning(
                "a write of %s was killed before it finished (%s); removing its leftover %s", target, kept, tmp.name
            )
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_staging(directory: Path) -> None:
    """Remove what killed writes of any directory in `directory` left behind (`_sweep_leftovers` of each)."""
    for tmp in sorted(Path(directory).glob(".*.tmp-*")):
        _sweep_leftovers(Path(directory) / tmp.name[1:].split(".tmp-", 1)[0])


@contextlib.contextmanager
def atomic_dir(target: Path, keep_old: Path | None = None) -> Iterator[Path]:
    """A temporary sibling directory that replaces `target` only when the block succeeds (the version it
    replaces is moved to `keep_old` when given, else deleted).

    A kill at any moment leaves `target` whole: before the swap it is untouched (a hidden `.NAME.tmp-PID-*` is
    left over, which the next write removes and logs), during the swap the previous version waits as
    `.NAME.old-PID`, which `recover_dir` (run by the next write and by readers) puts back."""
    target = recover_dir(Path(target))
    _sweep_leftovers(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
        publish_tree(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            _dispose(old, keep_old)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _dispose(old: Path, keep: Path | None) -> None:
    if keep is not None and not keep.exists():
        keep.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another file system: the history is kept only where a rename works
            old.rename(keep)
            return
    shutil.rmtree(old, ignore_errors=True)


MANIFEST = "results_manifest.json"
HISTORY = ".history"  # NAME.history/<when written>/: the result sets a newer one replaced, newest kept


def history_dir(target: Path) -> Path:
    """Where the earlier result sets of `target` are kept: `NAME.history/` beside it."""
    return Path(target).with_name(Path(target).name + HISTORY)


def _history_slot(target: Path) -> Path | None:
    """Where the set now in `target` goes when a new one replaces it: `NAME.history/<UTC time it was written>`."""
    manifest = target / MANIFEST
    if not manifest.is_file():
        return None
    try:
        written = json.loads(manifest.read_text()).get("written")
    except (ValueError, AttributeError):
        written = None
    stamp = str(written) if isinstance(written, str) and written.isalnum() else None
    stamp = stamp or datetime.fromtimestamp(manifest.stat().st_mtime, timezone.utc).strftime(STAMP)
    slot, n = history_dir(target) / stamp, 1
    while slot.exists():
        n += 1
        slot = history_dir(target) / f"{stamp}-{n}"
    return slot


def _prune_history(target: Path, keep: int) -> None:
    sets = sorted((p for p in history_dir(target).glob("*") if p.is_dir()), key=lambda p: p.name)
    for old in sets[: max(0, len(sets) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


STAMP = "%Y%m%dT%H%M%SZ"


@contextlib.contextmanager
def result_set(target: Path, about: dict[str, Any], keep: int = 0) -> Iterator[Path]:
    """A directory of results written as one unit: the block writes its files into the yielded staging directory;
    then a manifest naming every file with its SHA-256, `about` (the command and run that wrote them) and when,
    is written last, and the directory replaces `target` (`atomic_dir`). A write that fails or is killed leaves
    the previous set whole; a reader checks the set with `whole_result_set`. With `keep`, the set replaced is
    kept in `NAME.history/<UTC time it was written>/`, the newest `keep` of them."""
    target = Path(target)
    with atomic_dir(target, _history_slot(target) if keep else None) as tmp:
        yield tmp
        files = {p.relative_to(tmp).as_posix(): file_digest(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        written = datetime.now(timezone.utc).strftime(STAMP)
        write_json(tmp / MANIFEST, {"about": about, "written": written, "files": files})
    if keep:
        _prune_history(target, keep)


def join_result_set(directory: str | os.PathLike, name: str) -> None:
    """Name `directory/name`, written after its set (a rebuilt report), in the set's manifest with its SHA-256: the
    manifest is rewritten in one rename."""
    manifest = Path(directory) / MANIFEST
    written = json.loads(manifest.read_text())
    written["files"][name] = file_digest(Path(directory) / name)
    write_json(manifest, written)


def _set_problem(directory: Path, names: tuple[str, ...]) -> str | None:
    """Why `directory` is not a whole result set holding `names`, or None when it is."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return f"{directory} has no {MANIFEST}, so its files cannot be told to come from one run"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):  # damaged, or not a manifest
        files = None
    if not isinstance(files, dict):
        return f"{manifest} cannot be read"
    for name in names:
        if name not in files:
            return f"{directory / name} is not one of the files {manifest} names"
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            return f"{path} is missing from the set {manifest} names"
        if file_digest(path) != digest:
            return f"{path} is not the file its run wrote (its SHA-256 differs from {MANIFEST}'s)"
    return None


def whole_result_set(directory: str | os.PathLike, *names: str, otherwise: str | None = None) -> bool:
    """Whether `directory` holds a whole result set (`result_set`) that includes `names`.

    A set that is damaged, changed since, or has no manifest is not whole: with `otherwise` (what the caller does
    instead, e.g. "the stage runs again"), a warning says what is wrong. No trace of a set is quietly False."""
    directory = recover_dir(Path(directory))
    problem = _set_problem(directory, names)
    traces = (directory / MANIFEST).exists() or any((directory / n).exists() for n in names)
    if problem is not None and otherwise is not None and traces:
        log.warning("%s; %s", problem, otherwise)
    return problem is None
