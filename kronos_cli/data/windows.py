"""The inputs of point-in-time forecasts: for each signal origin, its lookback bars and the stamps of the bars
it forecasts (the market calendar's next bars, projected past the end of the data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kronos_cli.core.errors import KronosError
from kronos_cli.data.store import DatasetArrays
from kronos_cli.market.stamps import calendar_features


@dataclass(frozen=True)
class Origins:
    """Signal windows: the origin row (the last lookback bar) and symbol index of each, in the dataset."""

    rows: np.ndarray  # (N,) int64
    symbols: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: np.ndarray) -> Origins:
        return Origins(self.rows[index], self.symbols[index])


def split_origins(arrays: DatasetArrays, split: str) -> Origins:
    if split not in arrays.origins:
        raise KronosError(f"the dataset has signal days for {', '.join(arrays.origins)} only, not {split!r}")
    o = np.asarray(arrays.origins[split])
    return Origins(o[:, 0].copy(), o[:, 1].copy())


def origin_keys(arrays: DatasetArrays, origins: Origins) -> tuple[np.ndarray, np.ndarray]:
    """What identifies each forecast whatever the dataset: (symbol name, origin time in ns)."""
    names = np.asarray(arrays.symbols, dtype=str)[origins.symbols]
    return names, np.asarray(arrays.timestamps[origins.rows])


def gather(arrays: DatasetArrays, rows: np.ndarray, lookback: int, predict: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw lookback bars (B, L, 6) float32 ending at each origin row, and stamps (B, L + P, 5) of the lookback
    and the next `predict` market bars."""
    idx = rows[:, None] + np.arange(1 - lookback, 1)  # (B, L): rows of one segment, by construction
    x = np.asarray(arrays.features[idx], dtype=np.float32)
    hist = np.asarray(arrays.stamps[idx], dtype=np.float32)
    future_pos = np.asarray(arrays.calpos[rows])[:, None] + np.arange(1, predict + 1)  # (B, P)
    future = calendar_features(arrays.calendar[future_pos].ravel()).reshape(len(rows), predict, -1)
    return x, np.concatenate([hist, future], axis=1)
