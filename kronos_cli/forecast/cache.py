"""A directory of cached forecasts, keyed by window (symbol, origin time), written chunk by chunk atomically.

A chunk is an `.npz` of plain arrays (`names`, `origins`, `paths`), read with allow_pickle=False. Because each
window's forecast depends only on its own inputs and seed, chunks of any size and from any run (or worker) with
the same key mix freely; a chunk that cannot be read or has the wrong shape is set aside and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.core.io import atomic_path

log = logging.getLogger(__name__)


class ForecastCache:
    def __init__(self, directory: Path, path_shape: tuple[int, ...]):
        self.directory, self.path_shape = Path(directory), tuple(path_shape)
        self.directory.mkdir(parents=True, exist_ok=True)
        names, origins, paths, self.chunks = [], [], [], 0
        for file in sorted(self.directory.glob("chunk_*.npz")):
            got = self._read(file)
            if got is not None:
                names.append(got[0]), origins.append(got[1]), paths.append(got[2])
                self.chunks += 1
        self._paths = np.concatenate(paths) if paths else np.zeros((0, *self.path_shape), np.float32)
        self._index = pd.MultiIndex.from_arrays(
            [
                np.concatenate(names) if names else np.array([], dtype=str),
                np.concatenate(origins) if origins else np.array([], np.int64),
            ]
        )
        repeated = self._index.duplicated()  # a window two workers (or runs) both wrote: equal forecasts
        if repeated.any():
            self._index, self._paths = self._index[~repeated], self._paths[~repeated]

    def _read(self, file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        try:
            with np.load(file, allow_pickle=False) as z:
                names, origins, paths = z["names"], z["origins"], z["paths"]
            if paths.shape[1:] != self.path_shape or not len(names) == len(origins) == len(paths):
                raise ValueError(f"paths of shape {paths.shape}, expected (n, {self.path_shape})")
            return names.astype(str), origins.astype(np.int64), paths.astype(np.float32)
        except Exception as exc:  # truncated, corrupt or foreign: recompute its windows
            log.warning("ignoring unreadable forecast cache chunk %s (%s); its windows are forecast again", file, exc)
            file.rename(file.with_name(file.name + ".bad"))
            return None

    def __len__(self) -> int:
        return len(self._paths)

    def lookup(self, names: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, paths of the found windows) for windows given by symbol name and origin ns."""
        if not len(self._paths):
            return np.zeros(len(names), dtype=bool), self._paths
        at = self._index.get_indexer(pd.MultiIndex.from_arrays([np.asarray(names, dtype=str), origins]))
        found = at >= 0
        return found, self._paths[at[found]]

    def store(self, names: np.ndarray, origins: np.ndarray, paths: np.ndarray) -> Path:
        key = hashlib.sha256(np.asarray(names, dtype=str).tobytes() + np.asarray(origins).tobytes()).hexdigest()
        file = self.directory / f"chunk_{key[:24]}.npz"
        with atomic_path(file, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                names=np.asarray(names, dtype=str),
                origins=np.asarray(origins, dtype=np.int64),
                paths=np.asarray(paths, dtype=np.float32),
            )
        return file
