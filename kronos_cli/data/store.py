"""The on-disk dataset: memory-mapped `.npy` arrays plus `manifest.json`, written atomically, never pickled.

Rows are the valid bars of every symbol, symbol by symbol in time order. Each row knows its position in the
market calendar (`calpos`), so "the next bar" and "P bars later" mean the market's bars, not the stock's:
a suspended or delisted stock simply has no row there.

- `windows_<split>.npy` (n, 2): start row and symbol of each training window (lookback + predict + 1
  consecutive bars whose targets lie in the split);
- `origins_<split>.npy` (n, 2), val and test only: the last lookback bar (the signal day) and symbol of each
  forecast the split is scored on, from the lookback alone (point in time).

The manifest records each array's size and SHA-256 (`arrays`); opening a dataset checks them, so a truncated,
replaced or edited array is a one-line error instead of wrong windows (hashing runs at about 1 GB/s, once per
file and process).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.errors import KronosError
from kronos_cli.io import file_digest

MANIFEST = "manifest.json"
FORMAT = "kronos-dataset"
FORMAT_VERSION = 3  # 3: the manifest records the arrays' sizes and SHA-256
SPLITS = ("train", "val", "test")
ORIGIN_SPLITS = ("val", "test")
_HEADER = 128  # bytes reserved for the .npy header, filled in when the final shape is known


class NpyAppender:
    """Streams rows into a `.npy` file whose length is unknown up front, so memory stays one chunk deep."""

    def __init__(self, path: Path, dtype: Any, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), tuple(row_shape), 0
        self._f = open(path, "wb")
        self._f.write(b"\0" * _HEADER)

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {arr.shape[1:]}, expected {self.row_shape}")
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def close(self) -> None:
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


def array_digests(directory: Path) -> dict[str, dict[str, Any]]:
    """{array name: {"bytes", "sha256"}} of every `.npy` in a dataset directory (for its manifest)."""
    return {
        f.stem: {"bytes": f.stat().st_size, "sha256": file_digest(f)} for f in sorted(Path(directory).glob("*.npy"))
    }


def verify_arrays(directory: Path, manifest: dict) -> None:
    """Every array the manifest lists is there with its recorded size and SHA-256, or a one-line error."""
    for name, want in manifest["arrays"].items():
        file = directory / f"{name}.npy"
        if not file.is_file():
            problem = "is missing"
        elif file.stat().st_size != want["bytes"]:
            problem = f"has {file.stat().st_size} bytes, the manifest records {want['bytes']} (truncated or replaced)"
        elif file_digest(file) != want["sha256"]:
            problem = "does not match the SHA-256 the manifest records (changed since `kronos prep`)"
        else:
            continue
        raise KronosError(f"dataset array {file} {problem}; run `kronos prep` again to rebuild the dataset")


def read_manifest(path: str | os.PathLike) -> dict:
    directory = Path(path).expanduser()
    mf = directory / MANIFEST
    if not mf.is_file():
        raise KronosError(f"no dataset at {directory} (no {MANIFEST}); run `kronos prep -c CONFIG` first")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as exc:
        raise KronosError(f"{mf} is corrupt ({exc}); run `kronos prep` again") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise KronosError(
            f"{directory} is not a kronos dataset of format version {FORMAT_VERSION}; rebuild it with `kronos prep`"
        )
    return manifest


class DatasetArrays:
    """Read-only memory maps of a prepared dataset."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.manifest = read_manifest(self.path)
        verify_arrays(self.path, self.manifest)

        def load(name: str) -> np.ndarray:
            return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)

        self.features = load("features")  # (rows, 6) float32, raw values
        self.stamps = load("stamps")  # (rows, 5) int8: minute, hour, weekday, day, month
        self.timestamps = load("timestamps")  # (rows,) int64 ns
        self.calpos = load("calpos")  # (rows,) int64: the row's bar in `calendar`
        self.calendar = np.asarray(load("calendar"))  # (C,) int64 ns: the market's bars, then projected ones
        self.windows = {s: load(f"windows_{s}") for s in SPLITS}  # (n, 2) int64: start row, symbol index
        self.origins = {s: load(f"origins_{s}") for s in ORIGIN_SPLITS}  # (n, 2) int64: origin row, symbol
        self.symbols = [s["name"] for s in self.manifest["symbols"]]
        self.first_row = np.array([s["first_row"] for s in self.manifest["symbols"]], dtype=np.int64)
        self.row_count = np.array([s["rows"] for s in self.manifest["symbols"]], dtype=np.int64)

    @property
    def market_bars(self) -> int:
        """How many calendar bars are the market's own (the rest are projected past the data's end)."""
        return int(self.manifest["calendar"]["bars"])

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
