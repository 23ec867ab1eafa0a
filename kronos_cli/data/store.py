"""The on-disk dataset: memory-mapped `.npy` arrays plus `manifest.json`, written atomically, never pickled.

Rows are the valid bars of every symbol, symbol by symbol in time order. Each row knows its position in the
market calendar (`calpos`), so "the next bar" and "P bars later" mean the market's bars, not the stock's:
a suspended or delisted stock simply has no row there. A row's time and calendar stamps are its bar's, looked
up in `calendar.npy` through `calpos` (`OnCalendar`), not stored a second time.

- `windows_<split>.npy` (n, 2): start row and symbol of each training window (lookback + predict + 1
  consecutive bars whose targets lie in the split);
- `origins_<split>.npy` (n, 2), val and test only: the last lookback bar (the signal day) and symbol of each
  forecast the split is scored on, from the lookback alone (point in time).

The manifest records each array's dtype, shape, size and SHA-256 and is sealed by a digest (`manifest`); opening a
dataset checks them, then what the arrays hold (finite features, symbols' rows in calendar order, windows and
origins inside their symbol's rows), so a truncated, replaced, edited or re-hashed array is a one-line error
instead of wrong windows or a traceback (hashing runs at about 1 GB/s, the checks of the contents faster, each
once per dataset and process). `kronos prep` hashes each array as it writes it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.core.errors import KronosError
from kronos_cli.data.manifest import ORIGIN_SPLITS, REBUILD, SPLITS, read_manifest, verify_arrays
from kronos_cli.market.bars import FEATURES
from kronos_cli.market.stamps import calendar_features

_HEADER = 128  # bytes reserved for the .npy header, filled in when the final shape is known
_CHUNK = 1 << 20  # rows scanned at a time by the checks of the contents: memory stays a chunk deep


class NpyAppender:
    """Streams rows into a `.npy` file whose length is unknown up front, so memory stays one chunk deep, and
    hashes them on the way (`close` returns the SHA-256 of the data, which the manifest records)."""

    def __init__(self, path: Path, dtype: Any, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), tuple(row_shape), 0
        self._f = open(path, "wb")
        self._f.write(b"\0" * _HEADER)
        self._sha = hashlib.sha256()

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {arr.shape[1:]}, expected {self.row_shape}")
        if arr.size:
            data = memoryview(arr).cast("B")  # the array's own bytes, not a copy of them
            self._f.write(data)
            self._sha.update(data)
        self.rows += arr.shape[0]

    def close(self) -> str:
        header = repr(
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (self.rows, *self.row_shape),
            }
        ).encode("latin1")
        pad = _HEADER - 10 - len(header) - 1
        if pad < 0:
            raise ValueError("npy header too long")
        self._f.seek(0)
        self._f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", _HEADER - 10) + header + b" " * pad + b"\n")
        self._f.close()
        return self._sha.hexdigest()


class DatasetArrays:
    """Read-only memory maps of a prepared dataset."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.manifest = read_manifest(self.path)
        verify_arrays(self.path, self.manifest)

        def load(name: str) -> np.ndarray:
            return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)

        self.features = load("features")  # (rows, 6) float32, raw values
        self.calpos = load("calpos")  # (rows,) int32: the row's bar in `calendar`
        self.calendar = np.asarray(load("calendar"))  # (C,) int64 ns: the market's bars, then projected ones
        self.timestamps = OnCalendar(self.calendar, self.calpos)  # (rows,) int64 ns
        stamps = calendar_features(self.calendar).astype(np.int8)  # (C, 5): minute, hour, weekday, day, month
        self.stamps = OnCalendar(stamps, self.calpos)  # (rows, 5) int8
        self.windows = {s: load(f"windows_{s}") for s in SPLITS}  # (n, 2) int64: start row, symbol index
        self.origins = {s: load(f"origins_{s}") for s in ORIGIN_SPLITS}  # (n, 2) int64: origin row, symbol
        self.symbols = [s["name"] for s in self.manifest["symbols"]]
        self.first_row = np.array([s["first_row"] for s in self.manifest["symbols"]], dtype=np.int64)
        self.row_count = np.array([s["rows"] for s in self.manifest["symbols"]], dtype=np.int64)
        key = (str(self.path.resolve()), self.manifest["digest"])
        if key not in _CHECKED:  # the digest vouches for every array's SHA-256: same digest, same contents
            check_contents(self)
            _CHECKED.add(key)

    def rows_at(self, symbols: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The row of each (symbol index, calendar position), or -1 where the symbol has no bar there."""
        out = np.full(len(symbols), -1, dtype=np.int64)
        for sym in np.unique(symbols):
            sel = np.flatnonzero(symbols == sym)
            lo, n = self.first_row[sym], self.row_count[sym]
            pos = np.asarray(self.calpos[lo : lo + n])
            i = np.searchsorted(pos, positions[sel])
            hit = (i < n) & (pos[np.minimum(i, n - 1)] == positions[sel])
            out[sel[hit]] = lo + i[hit]
        return out


class OnCalendar:
    """A per-row array that is a per-bar table of the calendar read through the rows' `calpos`: indexed like the
    array it stands for (`x[rows]` is `table[calpos[rows]]`)."""

    def __init__(self, table: np.ndarray, calpos: np.ndarray):
        self.table, self.calpos = table, calpos
        self.shape, self.dtype = (len(calpos), *table.shape[1:]), table.dtype

    def __len__(self) -> int:
        return len(self.calpos)

    def __getitem__(self, rows) -> np.ndarray:
        return self.table[np.asarray(self.calpos[rows])]


_CHECKED: set[tuple[str, str]] = set()  # (dataset directory, manifest digest) whose contents were checked


def check_contents(a: DatasetArrays) -> None:
    """What the arrays hold is what `kronos prep` writes, or a one-line error naming the array: a re-hashed edit
    is caught here, before a reader indexes out of range or trains on NaN."""
    m = a.manifest
    problem = (
        _lengths_problem(a)
        or _features_problem(a.features)
        or _calendar_problem(a, m["predict_window"])
        or _windows_problem(a)
    )
    if problem:
        raise KronosError(f"dataset {a.path}: {problem}; {REBUILD}")


def _lengths_problem(a: DatasetArrays) -> str | None:
    rows = a.manifest["rows"]
    for name in ("features", "calpos"):
        if len(getattr(a, name)) != rows:
            return f"{name}.npy has {len(getattr(a, name))} rows, the manifest's symbols own {rows}"
    return None


def _features_problem(features: np.ndarray) -> str | None:
    bad = np.zeros(len(FEATURES), dtype=np.int64)
    for lo in range(0, len(features), _CHUNK):
        bad += (~np.isfinite(features[lo : lo + _CHUNK])).sum(axis=0)
    if not bad.any():
        return None
    col = int(np.argmax(bad))
    share = "all of its" if bad[col] == len(features) else f"{bad[col]:,} of its {len(features):,}"
    return f"features.npy column {FEATURES[col]} is NaN or infinite in {share} rows (`kronos prep` keeps finite bars)"


def _calendar_problem(a: DatasetArrays, predict: int) -> str | None:
    """The calendar rises; each row's calendar bar rises within its symbol and has `predict` bars after it."""
    if (np.diff(a.calendar) <= 0).any():
        return "calendar.npy does not rise"
    for lo in range(0, len(a.calpos), _CHUNK):
        start = max(lo - 1, 0)  # one row back, to compare across the chunks' seam
        pos = np.asarray(a.calpos[start : lo + _CHUNK])
        if pos.min() < 0 or pos.max() + predict >= len(a.calendar):
            return f"calpos.npy points outside calendar.npy or less than {predict} bars before its end"
        rising = np.diff(pos) > 0
        firsts = a.first_row[(a.first_row > start) & (a.first_row < start + len(pos))]
        rising[firsts - start - 1] = True  # a new symbol starts over
        if not rising.all():
            return "calpos.npy does not rise within each symbol"
    return None


def _windows_problem(a: DatasetArrays) -> str | None:
    """Every training window's rows, and every origin's lookback rows, lie inside its symbol's rows."""
    m = a.manifest
    spans = [(f"windows_{s}", w, 0, m["window"]) for s, w in a.windows.items()]
    spans += [(f"origins_{s}", o, m["lookback_window"] - 1, 1) for s, o in a.origins.items()]
    for name, index, lead, span in spans:
        problem = _index_problem(a, name, index, lead, span)
        if problem:
            return problem
    return None


def _index_problem(a: DatasetArrays, name: str, index: np.ndarray, lead: int, span: int) -> str | None:
    """Rows [row - lead, row + span) of every (row, symbol) in `index` lie inside that symbol's rows."""
    outside = 0
    for lo in range(0, len(index), _CHUNK):
        chunk = np.asarray(index[lo : lo + _CHUNK])
        rows, sym = chunk[:, 0], chunk[:, 1]
        if sym.min() < 0 or sym.max() >= len(a.symbols):
            return f"{name}.npy names symbols outside the {len(a.symbols)} the manifest lists"
        first, end = a.first_row[sym], a.first_row[sym] + a.row_count[sym]
        outside += int(((rows - lead < first) | (rows + span > end)).sum())
    if outside:
        return f"{name}.npy has {outside:,} of its {len(index):,} windows outside their symbol's rows"
    return None
