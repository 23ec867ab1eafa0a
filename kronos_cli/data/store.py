"""The on-disk dataset: memory-mapped `.npy` arrays plus `manifest.json`, written atomically, never pickled."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.errors import KronosError

MANIFEST = "manifest.json"
FORMAT = "kronos-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
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

        def load(name: str) -> np.ndarray:
            return np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)

        self.features = load("features")  # (rows, 6) float32, raw values
        self.stamps = load("stamps")  # (rows, 5) int8: minute, hour, weekday, day, month
        self.timestamps = load("timestamps")  # (rows,) int64 ns
        self.windows = {s: load(f"windows_{s}") for s in SPLITS}  # (n, 2) int64: start row, symbol index
