"""What the last import of a CSV or Parquet source read, kept in its provider, so that the next import reads only
what changed: each file's size, modification time and SHA-256, its rows and its symbols' spans; the calendar's
digest; every bar time seen (the calendars read from the data need them all).

A file whose size and modification time are those recorded is unchanged, unread (as make and rsync judge); one
whose recorded bytes are, by their SHA-256, the start of its bytes now only grew (rows appended), and only its new
bytes are read; anything else is changed, and the whole source is imported again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.config import DataConfig

STATE = "kronos_import.json"
SEEN = "kronos_seen.npy"
VERSION = 1
_BLOCK = 8 << 20  # bytes hashed at a time


def import_key(d: DataConfig) -> str:
    """What decides how the files' bars are read and placed: the CSV settings, the bar size, the range, the
    symbols picked (not the windows' settings, which `prep` recomputes from the provider)."""
    fields = {"csv": dataclasses.asdict(d.csv), **{k: getattr(d, k) for k in ("freq", "start_time", "end_time")}}
    blob = json.dumps({**fields, "instrument": d.instrument}, sort_keys=True, default=str)
    return f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}v{VERSION}"


@dataclass
class Change:
    """One file compared with the last import: `same`, `appended` (its recorded bytes are its first bytes),
    `new`, or `changed`; `prefix` hashes the recorded bytes (to be continued over the new ones)."""

    file: Path
    status: str
    size: int
    mtime_ns: int
    old: dict[str, Any] | None = None
    prefix: Any = None


def file_state(size: int, mtime_ns: int, digest: str, rows: int, ends_newline: bool, symbols: dict) -> dict:
    return {
        "size": size,
        "mtime_ns": mtime_ns,
        "sha256": digest,
        "rows": rows,
        "ends_newline": ends_newline,
        "symbols": symbols,
    }


def compare(file: Path, old: dict | None) -> Change:
    st = file.stat()
    c = Change(file, "new", st.st_size, st.st_mtime_ns, old)
    if old is None:
        return c
    if (st.st_size, st.st_mtime_ns) == (old["size"], old["mtime_ns"]):
        c.status = "same"
        return c
    grown = st.st_size > old["size"] and old["ends_newline"] and file.suffix.lower() == ".csv"
    if grown or st.st_size == old["size"]:
        c.prefix = hashlib.sha256()
        with open(file, "rb") as f:
            left = old["size"]
            while left > 0:
                block = f.read(min(_BLOCK, left))
                if not block:
                    break
                c.prefix.update(block)
                left -= len(block)
        if c.prefix.hexdigest() == old["sha256"]:
            c.status = "same" if st.st_size == old["size"] else "appended"
            return c
    c.status = "changed"
    return c


def load(provider: Path | None, d: DataConfig) -> dict | None:
    """The last import's state, when the provider at `provider` was imported with these settings."""
    path = None if provider is None else Path(provider) / STATE
    if path is None or not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(state, dict) or state.get("key") != import_key(d):
        return None
    seen = Path(provider) / SEEN
    state["seen"] = np.load(seen, allow_pickle=False) if seen.is_file() else np.zeros(0, np.int64)
    return state


def save(root: Path, d: DataConfig, files: dict[str, dict], calendar: np.ndarray, seen: np.ndarray) -> None:
    state = {"key": import_key(d), "calendar": calendar_digest(calendar), "files": files}
    np.save(root / SEEN, np.asarray(seen, dtype=np.int64), allow_pickle=False)
    (root / STATE).write_text(json.dumps(state, separators=(",", ":")))  # compact: json's C encoder, no indent


def calendar_digest(calendar: np.ndarray) -> dict:
    ns = np.ascontiguousarray(calendar, dtype=np.int64)
    return {"bars": len(ns), "sha256": hashlib.sha256(ns.tobytes()).hexdigest()}


def extends(old: dict, calendar: np.ndarray) -> bool:
    """Whether `calendar` begins with the calendar the last import wrote (so its bars keep their positions)."""
    n = old["bars"]
    return len(calendar) >= n and calendar_digest(calendar[:n])["sha256"] == old["sha256"]
