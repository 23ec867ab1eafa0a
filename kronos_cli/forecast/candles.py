"""Valid candles: forecast bars whose high and low bound their open and close, with no negative volume.

The model samples each feature's token on its own, so a sampled bar can have its high below its close or its
high below its low (6 of 10 bars with 20 paths were impossible in a user's first forecast). `repair` mends each
sampled bar in prices, before any mean or quantile: high = max(high, open, close), low = min(low, open, close),
volume and amount at least 0; open and close are never changed (so the close paths that backtests, signals and
evaluation score are the same with or without it). Because every path's bar is then valid, their mean and each
quantile are valid too (the high's q-quantile is at least the open's and the close's).
"""

from __future__ import annotations

import numpy as np

from kronos_cli.bars import FEATURES

OPEN, HIGH, LOW, CLOSE = (FEATURES.index(f) for f in ("open", "high", "low", "close"))
AMOUNTS = [FEATURES.index("volume"), FEATURES.index("amount")]


def mended(paths: np.ndarray, raw: bool) -> tuple[np.ndarray, float | None]:
    """The paths to summarise and the share mended: `repair`ed, or as the model made them when `raw` (None)."""
    return (paths, None) if raw else repair(paths)


def repair(paths: np.ndarray) -> tuple[np.ndarray, float]:
    """Sampled bars (..., 6) in prices -> (valid bars, the share of bars that needed mending)."""
    body_top = np.maximum(paths[..., OPEN], paths[..., CLOSE])
    body_bottom = np.minimum(paths[..., OPEN], paths[..., CLOSE])
    high = np.maximum(paths[..., HIGH], body_top)
    low = np.minimum(paths[..., LOW], body_bottom)
    amounts = np.maximum(paths[..., AMOUNTS], 0)
    mended = (high != paths[..., HIGH]) | (low != paths[..., LOW]) | (amounts != paths[..., AMOUNTS]).any(axis=-1)
    out = paths.copy()
    out[..., HIGH], out[..., LOW], out[..., AMOUNTS] = high, low, amounts
    return out, float(mended.mean()) if mended.size else 0.0
