"""Valid candles: forecast bars whose high and low bound their open and close, with no negative volume.

The model samples each feature's token on its own, so a sampled bar can have its high below its close or its
high below its low (6 of 10 bars with 20 paths were impossible in a user's first forecast). `repair` mends each
sampled bar in prices, before any mean or quantile: high = max(high, open, close), low = min(low, open, close),
volume and amount at least 0; open and close are never changed (so the close paths that backtests, signals and
evaluation score are the same with or without it). Because every path's bar is then valid, their mean and each
quantile are valid too (the high's q-quantile is at least the open's and the close's).

`plausible` bounds what the model says before that: every value inside the tokenizer's range (the lookback's
mean plus or minus `clip` standard deviations, the range its inputs were clipped to in training), and no price
below `PRICE_FLOOR` of its lookback mean, so a forecast is never negative (a lookback with one huge bar, or prices
so small that the normalisation's epsilon dominates, would otherwise give negative prices).
"""

from __future__ import annotations

import numpy as np

from kronos_cli.market.bars import EPS, FEATURES, lookback_stats

OPEN, HIGH, LOW, CLOSE = (FEATURES.index(f) for f in ("open", "high", "low", "close"))
AMOUNTS = [FEATURES.index("volume"), FEATURES.index("amount")]
PRICE_FLOOR = 0.01  # a forecast price is at least 1% of its lookback mean (a 99% fall); volumes at least 0
IS_PRICE = np.array([f in ("open", "high", "low", "close") for f in FEATURES])


def price_bounds(mean: np.ndarray, std: np.ndarray, clip: float, is_price: np.ndarray | bool) -> tuple:
    """(lowest, highest) value a forecast may take: the tokenizer's range `mean +- clip * (std + EPS)`, raised
    to `PRICE_FLOOR * mean` for prices and to 0 for volume and amount (the floor never passes the top: mean > 0)."""
    top = mean + clip * (std + EPS)
    bottom = np.maximum(mean - clip * (std + EPS), np.where(is_price, PRICE_FLOOR * mean, 0.0))
    return bottom, top


def bounded(values: np.ndarray, bottom: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, int]:
    """`values` clipped to [bottom, top] and how many of them were outside."""
    out = np.clip(values, bottom, top)
    return out, int(np.count_nonzero(out != values))


def plausible(paths: np.ndarray, history: np.ndarray, clip: float) -> tuple[np.ndarray, int]:
    """Sampled bars (S, P, 6) in prices of a lookback `history` (L, 6) -> (bounded bars, values clipped)."""
    mean, std = lookback_stats(np.asarray(history, dtype=np.float32))
    bottom, top = price_bounds(mean.astype(np.float64), std.astype(np.float64), clip, IS_PRICE)
    out, clipped = bounded(paths, bottom.astype(paths.dtype), top.astype(paths.dtype))
    return out, clipped


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
