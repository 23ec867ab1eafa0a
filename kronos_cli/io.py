"""Atomic file writes: write beside the target, then rename, so a crash never leaves a half-written file.

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


def _finite(obj: Any) -> Any:
    """NaN and infinities as null (strict JSON: jq and JavaScript reject NaN), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """Strict JSON (an unknown value is null), indented, with anything else written as its string."""
    return json.dumps(_finite(obj), indent=2, default=str, allow_nan=False) + "\n"


def json_floats(values) -> list:
    """An array as nested lists of floats; float32 values as the shortest decimals that read back as the same
    float32 (42.648735, not the 42.64873504638672 `.tolist()` gives): numpy writes float32 as such text."""
    if values.dtype == "float32":
        return values.astype(str).astype("float64").tolist()
    return values.tolist()


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json_text(obj))


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, remembered while its size and modification time stay the same."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
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


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary sibling directory that replaces `target` only when the block succeeds.

    A kill at any moment leaves `target` whole: before the swap it is untouched (a hidden `.NAME.tmp-*` is left
    over), during the swap the previous version waits as `.NAME.old-PID`, which `recover_dir` (run by the next
    write and by readers of checkpoints) puts back."""
    target = recover_dir(Path(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        publish_tree(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
