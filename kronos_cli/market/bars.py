"""Price bars as the model sees them: the feature vocabulary, amount from volume, lookback normalisation, and
the checks every series must pass before it is forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError

# The six features in the order the released tokenizers expect. The reference's data scripts call the last two
# `vol` and `amt`; those names are accepted wherever a user names a column or a feature.
FEATURES = ("open", "high", "low", "close", "volume", "amount")
PRICE_COLUMNS = FEATURES[:4]
ALIASES = {"vol": "volume", "amt": "amount"}
TIMESTAMP_ALIASES = ("timestamps", "timestamp", "datetime", "date", "time")
EPS = 1e-5  # added to the lookback's std before dividing (the reference's value)
MIN_HISTORY = 16  # the fewest bars a forecast is made from (`kronos predict` and `kronos serve --min-bars`)


def canonical(name: str) -> str:
    """Our name of a feature given in either vocabulary (`vol` -> `volume`)."""
    return ALIASES.get(name, name)


def mean_price(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """The mean of the four prices, added in order as numpy's mean over them does (the same bits), column by
    column: a mean along a row of four is four times slower."""
    return (open_ + high + low + close) / 4


def amount_from_volume(prices: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """The traded amount when a source gives none: volume times the mean of open, high, low and close (..., 4)."""
    return volume * mean_price(*(prices[..., i] for i in range(4)))


def lookback_stats(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over the rows (axis -2) of the lookback bars, kept as (..., 1, F).

    In the bars' own precision, as the reference computes them; where float32 sums overflow (amounts near 1e36,
    whose squares pass the float32 limit) that column's statistics come from float64 instead of being inf."""
    mean, std = history.mean(axis=-2, keepdims=True), history.std(axis=-2, keepdims=True)
    overflow = ~(np.isfinite(mean) & np.isfinite(std))
    if overflow.any() and np.isfinite(history).all():
        wide = history.astype(np.float64)
        mean = np.where(overflow, wide.mean(axis=-2, keepdims=True), mean).astype(history.dtype)
        std = np.where(overflow, wide.std(axis=-2, keepdims=True), std).astype(history.dtype)
    return mean, std


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    """`clip((x - mean) / (std + EPS), -clip, clip)`: the model's units."""
    return np.clip((x - mean) / (std + EPS), -clip, clip)


def denormalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Model units back to the bars' own: `x * (std + EPS) + mean`."""
    return x * (std + EPS) + mean


def normalise_lookback(x: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookback bars (..., L, 6) in model units, with the mean and std that undo it."""
    mean, std = lookback_stats(x)
    return normalise(x, mean, std, clip).astype(np.float32), mean, std


def features(
    prices: np.ndarray, volume: np.ndarray | None = None, amount: np.ndarray | None = None, where: str = "input"
) -> np.ndarray:
    """The (T, 6) float32 features of prices (T, 4: open, high, low, close) with the reference's rules.

    Without volume, volume and amount are zero (a given amount is dropped, as in the reference); with volume
    but no amount, amount is `amount_from_volume`.
    """
    prices = np.asarray(prices, dtype=np.float64)
    if volume is None:
        volume = amount = np.zeros(len(prices))
    elif amount is None:
        amount = amount_from_volume(prices, np.asarray(volume, dtype=np.float64))
    x = np.column_stack([prices, np.asarray(volume, dtype=np.float64), np.asarray(amount, dtype=np.float64)])
    if np.isnan(x).any():
        raise KronosError(f"{where} contains NaN values in price or volume columns; fill or drop those rows")
    if np.isinf(x).any():
        raise KronosError(f"{where} contains infinite values in price or volume columns")
    if (np.abs(x) > np.finfo(np.float32).max).any():
        raise KronosError(
            f"{where} has values beyond the float32 range (3.4e38) the model computes in; scale them down"
        )
    bad = (x[:, :4] <= 0).any(axis=1)
    if bad.any():
        raise KronosError(
            f"{where} has a price that is not positive (bar {int(np.argmax(bad))}, counting from 0); prices must be > 0"
        )
    # Column-major, as pandas' `.values` gives it to the reference: numpy's float32 mean and std over the rows
    # then sum in the same order, so the normalisation matches the reference's to the last bit.
    return np.asfortranarray(x, dtype=np.float32)


BAD_CANDLES = ("repair", "refuse")  # what to do with an input bar whose high or low does not bound its body


def reconcile_candles(
    x: np.ndarray, policy: str, where: str = "input", stamps: pd.DatetimeIndex | None = None
) -> tuple[np.ndarray, int]:
    """Input bars (T, 6) checked as candles: a high below the open or close, or a low above them (which also
    catches high < low), is widened to the body (`repair`: high = max(open, high, close), low = min(open, low,
    close)) or refused in one line (`refuse`, naming the first by its `stamps` when given). Returns the bars and
    how many were repaired."""
    if policy not in BAD_CANDLES:
        raise KronosError(f"bad_candles must be one of {', '.join(BAD_CANDLES)}, got {str(policy)[:40]!r}")
    o, h, lo, c = (x[:, i] for i in range(4))
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    bad = (h < top) | (lo > bottom)
    count = int(np.count_nonzero(bad))
    if count == 0:
        return x, 0
    if policy == "refuse":
        i = int(np.argmax(bad))
        raise KronosError(
            f"{where} has {count} bar(s) whose high is below the open or close or whose low is above them (first: "
            f"{f'bar {i}, counting from 0' if stamps is None else stamps[i]}: open {o[i]:g}, high {h[i]:g}, "
            f"low {lo[i]:g}, close {c[i]:g}); fix the data, "
            "or let them be widened to the body (bad candles: repair)"
        )
    out = x.copy(order="K")  # the same memory order: the lookback statistics sum in the same order
    out[:, 1], out[:, 2] = np.maximum(h, top), np.minimum(lo, bottom)
    return out, count


def prepare_frame(df: pd.DataFrame, where: str = "input") -> np.ndarray:
    """The (T, 6) float32 feature array of a bar frame (see `features` for the optional columns)."""
    if not isinstance(df, pd.DataFrame):
        raise KronosError(f"{where} must be a pandas DataFrame")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise KronosError(
            f"{where} lacks the price column(s) {', '.join(missing)}; open, high, low and close "
            f"are required (volume and amount are optional)"
        )
    cols = [c for c in FEATURES if c in df.columns]
    try:
        values = {c: df[c].to_numpy(dtype=np.float64) for c in cols}
    except (TypeError, ValueError) as exc:
        raise KronosError(f"{where} has non-numeric values in {', '.join(cols)}") from exc
    prices = np.column_stack([values[c] for c in PRICE_COLUMNS])
    return features(prices, values.get("volume"), values.get("amount"), where)


def check_history(bars: int, where: str = "the CSV") -> None:
    if bars < MIN_HISTORY:
        raise KronosError(f"{where} has {bars} bars; a forecast needs at least {MIN_HISTORY}")
