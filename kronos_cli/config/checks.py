"""Checks of a config's values that its types cannot express; every problem is reported at once."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import pandas as pd

from kronos_cli.config.schema import BacktestConfig, Config, DataConfig, WalkForwardConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.market.bars import FEATURES, canonical
from kronos_cli.market.sessions import check_calendar_name, parse_freq
from kronos_cli.market.stamps import STAMP_COLUMNS, range_end

SPLITS = ("train", "val", "test")
AUGMENTATIONS = ("noise", "scale", "time_warp", "slice")


def semantic_checks(cfg: Config) -> list[str]:
    """Every problem, each naming the dotted keys it is about (the loader tells the file's from an override's)."""
    problems = _data(cfg.data) + _splits(cfg.data) + _training(cfg) + _backtest(cfg) + _walkforward(cfg.walkforward)
    cfg.data.features = list(FEATURES)  # the reference's vol/amt spelling, normalised
    return problems


# Keys of a lookalike pair (below) set on their own so often that a warning would be noise; their lookalikes warn.
USUAL_KEYS = {"backtest.topk"}


def confusable_keys(
    tree: dict, cls: type = Config, prefix: str = "", overridden: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(key, warning) for each key set in `tree` (a config file with its overrides) whose name differs only by
    underscores from another key of its section that is not set, or that an override sets (dotted keys in
    `overridden`) while no override sets the other: both are valid, so a slip such as `backtest.top_k=10`
    (sampling) written for `backtest.topk` (stocks held) would otherwise pass silently, also against a file
    that sets both (a resolved config such as the demo's)."""
    hints, names, defaults = typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)], cls()
    found: list[tuple[str, str]] = []
    for key, value in tree.items():
        if key not in names or f"{prefix}{key}" in USUAL_KEYS:
            continue
        if dataclasses.is_dataclass(hints[key]):
            if isinstance(value, dict):
                found += confusable_keys(value, hints[key], f"{prefix}{key}.", overridden)
            continue
        for other in names:
            if other == key or other.replace("_", "") != str(key).replace("_", ""):
                continue
            slip = f"{prefix}{key}" in overridden and f"{prefix}{other}" not in overridden
            if other not in tree or slip:
                unset = "is not" if other not in tree else "is not overridden"
                found.append(
                    (
                        f"{prefix}{key}",
                        f"{prefix}{key} is set ({value!r}) but {prefix}{other} {unset}: they are different settings "
                        f"({prefix}{key} defaults to {getattr(defaults, key)!r}, {prefix}{other} to "
                        f"{getattr(defaults, other)!r}); if you meant {prefix}{other}, rename the key",
                    )
                )
    return found


def _data(d: DataConfig) -> list[str]:
    problems = []
    for key in ("lookback_window", "predict_window", "max_context", "chunk_size"):
        if getattr(d, key) <= 0:
            problems.append(f"data.{key} must be > 0, got {getattr(d, key)}")
    if d.lookback_window + d.predict_window + 1 > d.max_context:
        problems.append(
            f"data.lookback_window + data.predict_window + 1 ({d.lookback_window + d.predict_window + 1})"
            f" exceeds data.max_context ({d.max_context})"
        )
    if not math.isfinite(d.clip):
        problems.append(f"data.clip must be a finite number, got {d.clip}")
    elif d.clip <= 0:
        problems.append(f"data.clip must be > 0, got {d.clip}")
    if [canonical(f) for f in d.features] != list(FEATURES):
        problems.append(
            f"data.features must be {list(FEATURES)} (the order the released tokenizers expect; vol "
            f"and amt are accepted for volume and amount)"
        )
    if d.time_features != list(STAMP_COLUMNS):
        problems.append(f"data.time_features must be [{', '.join(STAMP_COLUMNS)}]")
    if d.embargo is not None and d.embargo < 0:
        problems.append(f"data.embargo must be >= 0 bars (0 turns it off), got {d.embargo}")
    if d.source == "csv" and not d.csv.path:
        problems.append("data.csv.path is required when data.source is csv")
    try:
        parse_freq(d.freq)
    except KronosError as exc:
        problems.append(str(exc))
    if d.source == "csv":
        problem = check_calendar_name(d.csv.calendar)
        problems += [problem] if problem else []
    if d.csv.fill_gaps < 0:
        problems.append(f"data.csv.fill_gaps must be >= 0 bars (0 leaves gaps as gaps), got {d.csv.fill_gaps}")
    return problems


def _date(key: str, text: str, problems: list[str]) -> pd.Timestamp | None:
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError):
        problems.append(f"{key} is not a date: {text!r}")
        return None


def _splits(d: DataConfig) -> list[str]:
    """The data range and the three target ranges: each a real range inside the data, in order, none overlapping."""
    problems: list[str] = []
    start, end = _date("data.start_time", d.start_time, problems), _date("data.end_time", d.end_time, problems)
    if start is not None and end is not None and start >= end:
        problems.append(f"data.start_time ({d.start_time}) must come before data.end_time ({d.end_time})")
    ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for split in SPLITS:
        key, rng = f"data.{split}_time_range", getattr(d, f"{split}_time_range")
        if len(rng) != 2:
            problems.append(f"{key} must be [start, end], got {rng}")
            continue
        a, b = _date(key, rng[0], problems), _date(key, rng[1], problems)
        if a is None or b is None:
            continue
        if a >= b:
            problems.append(f"{key} starts ({rng[0]}) after it ends ({rng[1]})")
        elif start is not None and end is not None and (b < start or a > end):
            problems.append(f"{key} {rng} lies outside data.start_time..data.end_time ({d.start_time}..{d.end_time})")
        ranges[split] = (a, b)
    for earlier, later in zip(SPLITS, SPLITS[1:]):
        if earlier in ranges and later in ranges and ranges[later][0] <= range_end(ranges[earlier][1]):
            problems.append(_overlap(d, earlier, later))
    return problems


def _overlap(d: DataConfig, earlier: str, later: str) -> str:
    a, b = getattr(d, f"{earlier}_time_range"), getattr(d, f"{later}_time_range")
    return (
        f"data.{earlier}_time_range {a} and data.{later}_time_range {b} overlap (or are out of order): a window "
        f"would be in both splits, so {later} scores would include {earlier} windows. Start "
        f"data.{later}_time_range after {a[1]} (data.embargo bars are then left out between them)"
    )


def _training(cfg: Config) -> list[str]:
    t, problems = cfg.training, []
    for key in ("epochs", "batch_size", "accumulation_steps", "n_train_iter", "n_val_iter"):
        if getattr(t, key) <= 0:
            problems.append(f"training.{key} must be > 0, got {getattr(t, key)}")
    if t.num_workers < -1:
        problems.append(f"training.num_workers must be -1 (auto) or >= 0, got {t.num_workers}")
    if t.select_days < 1 or t.select_samples < 1:
        problems.append("training.select_days and training.select_samples must be >= 1")
    if t.l2_to_init < 0:
        problems.append(f"training.l2_to_init must be >= 0 (0 turns the pull off), got {t.l2_to_init}")
    bad_aug = sorted(set(t.augment) - set(AUGMENTATIONS))
    if bad_aug:
        problems.append(f"training.augment has unknown {bad_aug}; use {', '.join(AUGMENTATIONS)}")
    return problems


def _backtest(cfg: Config) -> list[str]:
    b, problems = cfg.backtest, []
    if b.batch_size != "auto" and b.batch_size < 1:
        problems.append(f"backtest.batch_size must be auto or >= 1, got {b.batch_size}")
    if b.sample_count < 1:
        problems.append(f"backtest.sample_count must be >= 1, got {b.sample_count}")
    if b.topk < 1:
        problems.append(f"backtest.topk must be >= 1 (the symbols TopkDropout holds), got {b.topk}")
    if b.n_drop < 1:  # Qlib's get_last_n(comb, 0) is comb[-0:], the whole list: every holding is sold each bar
        problems.append(
            f"backtest.n_drop must be >= 1, got {b.n_drop}: Qlib's TopkDropout reads 0 as 'sell every holding' "
            f"and replaces them all each bar; a large backtest.hold_thresh keeps holdings longer"
        )
    if b.bars_per_year is not None and not (math.isfinite(b.bars_per_year) and b.bars_per_year > 0):
        problems.append(
            f"backtest.bars_per_year must be a number of bars above 0 (or null: the market's and the calendar's), "
            f"got {b.bars_per_year}"
        )
    return problems + trading_problems(b)


MAX_LEVELS = 20  # capacity levels or cost multipliers: each is a whole portfolio simulation


def trading_problems(b: BacktestConfig) -> list[str]:
    """What a portfolio simulation trades with: capital, costs, impact, the volume limit and sensitivity levels."""
    problems = []
    if not (math.isfinite(b.account) and b.account > 0):
        problems.append(f"backtest.account must be a capital above 0 (in the account's currency), got {b.account}")
    for key in ("open_cost", "close_cost", "min_cost", "impact_cost"):
        value = getattr(b, key)
        if value is not None and not (math.isfinite(value) and 0 <= value < (1e9 if key == "min_cost" else 1)):
            what = "an amount >= 0" if key == "min_cost" else "a fraction of the traded value in [0, 1)"
            problems.append(f"backtest.{key} must be {what} (or null: the market's), got {value}")
    if b.volume_limit is not None and not (math.isfinite(b.volume_limit) and 0 <= b.volume_limit <= 1):
        problems.append(
            f"backtest.volume_limit must be a share of a bar's volume in [0, 1] (0: no cap; null: the market's), got "
            f"{b.volume_limit}"
        )
    bad_capital = [v for v in b.capacity if not (math.isfinite(v) and 0 < v < 1e15)]
    if bad_capital:
        problems.append(f"backtest.capacity must hold capital levels above 0 (below 1e15), got {bad_capital[0]}")
    bad_multiple = [v for v in b.cost_multipliers if not (math.isfinite(v) and 0 <= v <= 100)]
    if bad_multiple:
        problems.append(
            f"backtest.cost_multipliers must hold multiples of the costs in [0, 100], got {bad_multiple[0]}"
        )
    for key in ("capacity", "cost_multipliers"):
        if len(getattr(b, key)) > MAX_LEVELS:
            problems.append(f"backtest.{key} has {len(getattr(b, key))} levels; at most {MAX_LEVELS}, each a backtest")
    return problems


_PERIOD = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)
_OFFSETS = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}


def parse_period(value: int | str) -> int | pd.DateOffset | None:
    """A walk-forward length: a number of bars (63, "63"), a calendar length (3M, 1Y, 2W, 10D) as a DateOffset,
    or None when it is neither."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    m = _PERIOD.match(text)
    return pd.DateOffset(**{_OFFSETS[m.group(2).upper()]: int(m.group(1))}) if m else None


def _walkforward(w: WalkForwardConfig) -> list[str]:
    problems = []
    keys = [("test_period", w.test_period), ("val_period", w.val_period)]
    keys += [] if w.train_window == "expanding" else [("train_window", w.train_window)]
    for key, value in keys:
        period = parse_period(value)
        if period is None or (isinstance(period, int) and period <= 0):
            problems.append(
                f"walkforward.{key} must be a number of bars above 0 or a length such as 3M, 1Y, 2W, 10D"
                f"{' (or expanding)' if key == 'train_window' else ''}, got {value!r}"
            )
    if w.refit_every < 1:
        problems.append(f"walkforward.refit_every must be >= 1 (1: every fold), got {w.refit_every}")
    if not w.stages or set(w.stages) - {"tokenizer", "predictor"}:
        problems.append(f"walkforward.stages must be predictor, or tokenizer and predictor, got {w.stages}")
    if w.embargo is not None and w.embargo < 0:
        problems.append(f"walkforward.embargo must be >= 0 bars (null: data.embargo's), got {w.embargo}")
    for key in ("start", "end"):
        value = getattr(w, key)
        if value is not None:
            _date(f"walkforward.{key}", value, problems)
    return problems
