"""CSV sources: one file with a symbol column or a directory of files, any frequency; bad CSVs are refused."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.data.prep import prepare
from tests.conftest import make_bars

SPLITS = [
    "data.start_time=2024-01-01",
    "data.end_time=2024-01-31",
    "data.train_time_range=[2024-01-01,2024-01-19]",
    "data.val_time_range=[2024-01-20,2024-01-25]",
    "data.test_time_range=[2024-01-26,2024-01-31]",
    "data.lookback_window=20",
    "data.predict_window=4",
    "data.freq=5min",
]


def minute_bars(symbol: str, seed: int) -> pd.DataFrame:
    """5-minute bars, 09:30-14:55, weekdays of January 2024."""
    days = pd.bdate_range("2024-01-01", "2024-01-31")
    ts = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=9, minutes=30) + i * pd.Timedelta(minutes=5) for d in days for i in range(66)]
    )
    df = make_bars(len(ts), seed=seed)
    df["timestamps"] = ts
    df.insert(0, "symbol", symbol)
    return df


def _cfg(path, tmp_path, *extra):
    return config.load(
        None, ["data.source=csv", f"data.csv.path={path}", f"data.dataset_path={tmp_path / 'ds'}", *SPLITS, *extra]
    )


def test_single_file_with_symbol_column(tmp_path):
    df = pd.concat([minute_bars("AAA", 1), minute_bars("BBB", 2)])
    df.to_csv(tmp_path / "bars.csv", index=False)
    m = prepare(_cfg(tmp_path / "bars.csv", tmp_path))
    assert [s["name"] for s in m["symbols"]] == ["AAA", "BBB"]
    # nights and weekends are not gaps: one segment per symbol
    assert m["symbols"][0]["segments"] == 1
    ds = WindowDataset(tmp_path / "ds", "train")
    x, stamp = ds[0]
    assert x.shape == (25, 6) and stamp[:, 0].max() <= 59


def test_directory_of_files_with_column_mapping_and_missing_bars(tmp_path):
    d = tmp_path / "bars"
    d.mkdir()
    a = minute_bars("AAA", 1).drop(columns="symbol").rename(columns={"close": "Close", "volume": "Vol"})
    b = minute_bars("BBB", 2).drop(columns="symbol").rename(columns={"close": "Close", "volume": "Vol"})
    b = b.drop(index=range(300, 310))  # ten missing bars in BBB
    a.to_csv(d / "aaa.csv", index=False)
    b.to_csv(d / "bbb.csv", index=False)
    m = prepare(_cfg(d, tmp_path, "data.csv.columns={close: Close, vol: Vol}"))
    segs = {s["name"]: s["segments"] for s in m["symbols"]}
    assert segs == {"AAA": 1, "BBB": 2}
    assert m["missing_rows"] == 10


def _bad(df: pd.DataFrame, tmp_path) -> pd.DataFrame:
    df.to_csv(tmp_path / "bad.csv", index=False)
    return _cfg(tmp_path / "bad.csv", tmp_path)


@pytest.mark.parametrize(
    "mutate,message",
    [  # row 9 of the frame is line 11 of the file (the header is line 1)
        (
            lambda d: d.assign(close=np.where(np.arange(len(d)) == 9, np.nan, d["close"])),
            "line 11, column 'close': is ",
        ),
        (lambda d: d.assign(open=np.where(np.arange(len(d)) == 9, np.inf, d["open"])), "line 11, .* is infinite"),
        (lambda d: d.assign(low=np.where(np.arange(len(d)) == 9, -1.0, d["low"])), "line 11, .*not a positive price"),
        (lambda d: d.drop(columns="high"), "lacks the column 'high'"),
        (lambda d: pd.concat([d.iloc[:10], d.iloc[9:]]), "line 12: duplicate timestamp"),
        (lambda d: d.iloc[::-1], "line 3: timestamp .* comes before the one on line 2"),
    ],
)
def test_bad_csv(tmp_path, mutate, message):
    with pytest.raises(KronosError, match=message):
        prepare(_bad(mutate(minute_bars("AAA", 1)), tmp_path))


def test_missing_csv_path(tmp_path):
    with pytest.raises(KronosError, match="no CSV file or directory"):
        prepare(_cfg(tmp_path / "none.csv", tmp_path))


EPOCH = pd.Timestamp(0)


@pytest.mark.parametrize(
    "column,write,settings",
    [
        ("timestamps", lambda ts: ts.strftime("%d/%m/%Y %H:%M"), []),  # day first: the whole column shows it
        ("timestamps", lambda ts: ts.strftime("%d/%m/%Y %H:%M"), ["data.csv.timestamp_format=%d/%m/%Y %H:%M"]),
        ("time", lambda ts: (ts - EPOCH) // pd.Timedelta(seconds=1), ["data.csv.timestamp_column=time"]),
        ("Stamp", lambda ts: ts.strftime("%Y%m%d%H%M"), ["data.csv.columns={timestamps: Stamp}"]),
        ("when", lambda ts: ts.strftime("%H:%M %d-%m-%Y"), ["data.csv.timestamp_column=when"]),
        ("timestamps", lambda ts: ts.strftime("%d-%m-%Y %Hh%M"), ["data.csv.timestamp_format=%d-%m-%Y %Hh%M"]),
    ],
)
def test_timestamps_as_people_write_them_prepare_as_iso_does(tmp_path, column, write, settings):
    iso = minute_bars("AAA", 1)
    iso.to_csv(tmp_path / "iso.csv", index=False)
    want = prepare(_cfg(tmp_path / "iso.csv", tmp_path))
    theirs = iso.drop(columns="timestamps").assign(**{column: write(pd.DatetimeIndex(iso["timestamps"]))})
    theirs.to_csv(tmp_path / "theirs.csv", index=False)
    got = prepare(_cfg(tmp_path / "theirs.csv", tmp_path, *settings))
    assert got["calendar"] == want["calendar"] and got["symbols"] == want["symbols"]


def test_an_ambiguous_day_month_order_is_refused_then_read_with_the_format(tmp_path):
    """Bars of 1 to 12 January written 02/01/2024 09:30: the file cannot say which is the day; the key does."""
    iso = minute_bars("AAA", 1)
    iso = iso[pd.DatetimeIndex(iso["timestamps"]).day <= 12]
    splits = [
        "data.train_time_range=[2024-01-01,2024-01-08]",
        "data.val_time_range=[2024-01-09,2024-01-10]",
        "data.test_time_range=[2024-01-11,2024-01-12]",
    ]
    iso.to_csv(tmp_path / "iso.csv", index=False)
    want = prepare(_cfg(tmp_path / "iso.csv", tmp_path, *splits))
    stamps = pd.DatetimeIndex(iso["timestamps"]).strftime("%d/%m/%Y %H:%M")
    iso.assign(timestamps=stamps).to_csv(tmp_path / "bars.csv", index=False)
    message = "set data.csv.timestamp_format to '%d/%m/%Y %H:%M' (day first) or '%m/%d/%Y %H:%M' (month first)"
    with pytest.raises(KronosError, match=re.escape(message)):
        prepare(_cfg(tmp_path / "bars.csv", tmp_path, *splits))
    got = prepare(_cfg(tmp_path / "bars.csv", tmp_path, *splits, "data.csv.timestamp_format=%d/%m/%Y %H:%M"))
    assert got["calendar"] == want["calendar"] and got["symbols"] == want["symbols"]


def test_a_directory_whose_first_and_last_dates_are_ambiguous(tmp_path):
    """With an exchange's calendar, which does not depend on the data, a directory's files are first read by their
    first and last lines (02/01 and 09/02 read either way); the whole column decides the order (13/01: day first)."""
    days = pd.bdate_range("2024-01-02", "2024-02-09").drop(pd.Timestamp("2024-01-15"))  # XNYS: MLK day
    ts = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=9, minutes=30) + i * pd.Timedelta(minutes=5) for d in days for i in range(78)]
    )
    (tmp_path / "bars").mkdir()
    for name, seed in (("aaa", 1), ("bbb", 2)):
        make_bars(len(ts), seed=seed).assign(timestamps=ts.strftime("%d/%m/%Y %H:%M")).to_csv(
            tmp_path / "bars" / f"{name}.csv", index=False
        )
    m = prepare(_cfg(tmp_path / "bars", tmp_path, "data.csv.calendar=XNYS"))
    assert (m["calendar"]["first"], m["calendar"]["last"]) == ("2024-01-02 09:30:00", "2024-01-31 15:55:00")


def test_bars_that_are_not_candles_are_repaired_and_counted_or_refused(tmp_path):
    """Training data with a high below the close (or a low above the open) went into the dataset as given."""
    df = pd.concat([minute_bars("AAA", 1), minute_bars("BBB", 2)]).reset_index(drop=True)
    df.loc[10, "high"] = df.loc[10, "low"] * 0.5
    df.loc[500, "low"] = df.loc[500, "high"] * 1.5
    df.to_csv(tmp_path / "bars.csv", index=False)
    m = prepare(_cfg(tmp_path / "bars.csv", tmp_path))
    assert m["repaired_candles"] == 2
    x = np.load(tmp_path / "ds" / "features.npy")
    assert (x[:, 1] >= np.maximum(x[:, 0], x[:, 3])).all() and (x[:, 2] <= np.minimum(x[:, 0], x[:, 3])).all()
    with pytest.raises(KronosError, match=r"AAA has 2 bar\(s\) whose high .* \(first: 2024-01-01 10:20:00"):
        prepare(_cfg(tmp_path / "bars.csv", tmp_path, "data.bad_candles=refuse"))
