"""Property-based (hypothesis) tests of the data path users feed: any CSV market (random column order, integer
or float cells, NaNs and non-positive prices, gaps, duplicated or unsorted rows, time zones) gives a dataset or
a one-line user error, never a traceback; every window of a dataset lies inside one segment of one symbol
(consecutive market bars, valid values); and the epoch sampler gives each window at most once per epoch
across any number of ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.dataset import EpochSampler
from kronos_cli.data.prep import prepare
from kronos_cli.data.store import ORIGIN_SPLITS, SPLITS, DatasetArrays
from kronos_cli.market.bars import FEATURES

LOOK, PRED = 10, 3
DAYS = pd.date_range("2024-01-01", "2024-04-30", freq="D")
SPLIT_RANGES = [
    "data.start_time=2024-01-01",
    "data.end_time=2024-04-30",
    "data.train_time_range=[2024-01-01,2024-02-29]",
    "data.val_time_range=[2024-03-01,2024-03-31]",
    "data.test_time_range=[2024-04-01,2024-04-30]",
    f"data.lookback_window={LOOK}",
    f"data.predict_window={PRED}",
    "data.freq=day",
    "data.csv.calendar=24/7",
    "data.embargo=0",
]
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@st.composite
def symbol_frames(draw, name: str, whole: bool) -> pd.DataFrame:
    start = 0 if whole else draw(st.integers(0, 30))
    n = len(DAYS) - start if whole else draw(st.integers(5, len(DAYS) - start))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    df = pd.DataFrame(
        {
            "timestamps": DAYS[start : start + n],
            "symbol": name,
            "open": close * 1.001,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(0, 10**6, n).astype(float),
        }
    )
    gaps = draw(st.floats(0, 0.2))
    df = df[rng.random(n) >= gaps]  # missing days: gaps in a 24/7 market
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):  # NaN or non-positive cells
        if len(df):
            df.iloc[rng.integers(len(df)), rng.integers(2, 7)] = draw(st.sampled_from([np.nan, 0.0, -1.0]))
    if draw(st.booleans()):
        df["volume"] = df["volume"].round().astype("Int64")
    return df


def _stamps(ts: pd.Series, style: str) -> pd.Series:
    if style == "date":
        return ts.dt.strftime("%Y-%m-%d")
    if style == "offset":
        return ts.dt.strftime("%Y-%m-%dT00:00:00+08:00")
    if style == "utc":
        return ts.dt.strftime("%Y-%m-%dT00:00:00Z")
    return ts.astype(str)


@st.composite
def markets(draw) -> pd.DataFrame:
    names = draw(st.lists(st.sampled_from(["AAA", "BBB", "CCC", "DDD"]), min_size=1, max_size=3, unique=True))
    # The first symbol spans the whole range (the market's calendar comes from the data).
    df = pd.concat([draw(symbol_frames(n, i == 0)) for i, n in enumerate(names)], ignore_index=True)
    df["timestamps"] = _stamps(df["timestamps"], draw(st.sampled_from(["date", "plain", "offset", "utc"])))
    if len(df) and draw(st.integers(0, 9)) == 0:  # a duplicated (symbol, timestamp) row
        df = pd.concat([df, df.iloc[[draw(st.integers(0, len(df) - 1))]]], ignore_index=True)
    if draw(st.booleans()):
        df = df.sample(frac=1.0, random_state=draw(st.integers(0, 100)))  # rows in any order
    return df[draw(st.permutations(list(df.columns)))]


def _check_windows(arrays: DatasetArrays) -> None:
    """Every training window and every origin's lookback: one symbol, consecutive market bars, valid values."""
    end = arrays.first_row + arrays.row_count
    window = LOOK + PRED + 1
    for split in SPLITS:
        w = np.asarray(arrays.windows[split])
        assert len(np.unique(w[:, 0])) == len(w)  # each window once
        for start, sym in w:
            _inside(arrays, start, start + window, sym, end)
    for split in ORIGIN_SPLITS:
        for origin, sym in np.asarray(arrays.origins[split]):
            _inside(arrays, origin - LOOK + 1, origin + 1, sym, end)


def _inside(arrays: DatasetArrays, lo: int, hi: int, sym: int, end: np.ndarray) -> None:
    assert arrays.first_row[sym] <= lo and hi <= end[sym], (lo, hi, sym)
    assert (np.diff(np.asarray(arrays.calpos[lo:hi])) == 1).all()  # no missing market bar inside
    x = np.asarray(arrays.features[lo:hi])
    assert np.isfinite(x).all() and (x[:, :4] > 0).all() and (x[:, 4:] >= 0).all()


@SETTINGS
@given(markets())
def test_any_csv_market_gives_a_dataset_whose_windows_lie_in_one_segment_or_a_user_error(tmp_path_factory, df):
    root = tmp_path_factory.mktemp("market")
    df.to_csv(root / "bars.csv", index=False)
    cfg = config.load(
        None,
        ["data.source=csv", f"data.csv.path={root / 'bars.csv'}", f"data.dataset_path={root / 'ds'}"] + SPLIT_RANGES,
    )
    try:
        prepare(cfg)
    except KronosError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip()
        assert not (root / "ds").exists()  # nothing half-written
        return
    arrays = DatasetArrays(root / "ds")
    assert list(arrays.manifest["features"]) == list(FEATURES)
    _check_windows(arrays)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 400),
    st.integers(1, 8),
    st.one_of(st.none(), st.integers(1, 1000)),
    st.integers(0, 2**31),
    st.integers(0, 50),
)
def test_the_sampler_gives_each_window_at_most_once_per_epoch_across_ranks(n, world, samples, seed, epoch):
    total = (samples or n) // world * world
    assume(total > 0)
    shards = []
    for rank in range(world):
        s = EpochSampler(n, samples=samples, seed=seed, rank=rank, world_size=world)
        s.set_epoch(epoch)
        shards.append(list(s))
    assert {len(x) for x in shards} == {total // world}  # every rank takes as many steps
    every = [i for x in shards for i in x]
    assert all(0 <= i < n for i in every)
    if total <= n:
        assert len(set(every)) == len(every)  # no window twice in an epoch
    else:  # more samples than windows: each window within one of its per-epoch repeats
        counts = np.bincount(every, minlength=n)
        assert counts.max() - counts.min() <= 1
    s = EpochSampler(n, samples=samples, seed=seed, rank=0, world_size=world)
    s.set_epoch(epoch, skip=min(3, total // world))
    assert list(s) == shards[0][min(3, total // world) :]  # a resumed epoch continues the same order
