"""Timestamps as people write them, through the real reader: ISO (with a time, `Z` or an offset: wall-clock time
kept), day or month first decided by the whole column, YYYYMMDD, epoch numbers by magnitude; an order the file
does not show is refused with the two formats to choose from, and an explicit format or column wins."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.market.barfile import TimestampSpec, read_bars
from tests.conftest import make_bars

DAYS = pd.bdate_range("2023-01-02", periods=30)  # business days 2 Jan to 10 Feb: days above 12 show the order
AT_0930 = DAYS + pd.Timedelta(hours=9, minutes=30)
EPOCH_S = (DAYS - pd.Timestamp(0)) // pd.Timedelta(seconds=1)

# name -> (column name, the column as written, the wall-clock times it reads as)
FORMATS = {
    "ISO": ("timestamps", DAYS.strftime("%Y-%m-%d"), DAYS),
    "ISO with time": ("timestamps", AT_0930.strftime("%Y-%m-%d %H:%M:%S"), AT_0930),
    "ISO with Z": ("timestamps", AT_0930.strftime("%Y-%m-%dT%H:%M:%SZ"), AT_0930),
    "ISO with +01:00": ("datetime", AT_0930.strftime("%Y-%m-%d %H:%M:%S+01:00"), AT_0930),
    "DD/MM/YYYY": ("date", DAYS.strftime("%d/%m/%Y"), DAYS),
    "DD.MM.YYYY HH:MM": ("date", AT_0930.strftime("%d.%m.%Y %H:%M"), AT_0930),
    "DD/MM/YYYY HH:MM:SS+01:00": ("date", AT_0930.strftime("%d/%m/%Y %H:%M:%S+01:00"), AT_0930),
    "MM/DD/YYYY": ("date", DAYS.strftime("%m/%d/%Y"), DAYS),
    "YYYYMMDD": ("date", DAYS.strftime("%Y%m%d"), DAYS),
    "epoch s": ("time", EPOCH_S, DAYS),
    "epoch ms": ("time", EPOCH_S * 1000, DAYS),
    "epoch us": ("time", EPOCH_S * 10**6, DAYS),
    "epoch ns": ("time", EPOCH_S * 10**9, DAYS),
}


def write_bars(path, column: str, stamps) -> pd.DataFrame:
    """Bars with `stamps` in `column`, written to `path` as CSV; the frame written."""
    df = make_bars(len(stamps)).drop(columns="timestamps")
    df.insert(0, column, list(stamps))
    df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_reads_as_its_wall_clock_times(tmp_path, name):
    column, written, expected = FORMATS[name]
    write_bars(tmp_path / "bars.csv", column, written)
    bars = read_bars(tmp_path / "bars.csv")
    assert list(bars["timestamps"]) == list(expected)


def test_day_first_is_decided_by_the_whole_column(tmp_path):
    """The first rows (02/01 .. 12/01) read either way; 13/01 further down decides: day first."""
    write_bars(tmp_path / "bars.csv", "date", DAYS.strftime("%d/%m/%Y"))
    assert read_bars(tmp_path / "bars.csv")["timestamps"].iloc[0] == pd.Timestamp("2023-01-02")


def test_an_ambiguous_order_is_refused_with_both_formats(tmp_path):
    write_bars(tmp_path / "bars.csv", "date", DAYS[:9].strftime("%d/%m/%Y"))  # 2 Jan to 12 Jan: all days <= 12
    with pytest.raises(KronosError) as err:
        read_bars(tmp_path / "bars.csv", TimestampSpec(format_setting="--timestamp-format"))
    message = str(err.value)
    assert "\n" not in message
    assert "'02/01/2023'" in message and "set --timestamp-format to '%d/%m/%Y' (day first) or '%m/%d/%Y'" in message


@pytest.mark.parametrize("fmt,first", [("%d/%m/%Y", "2023-01-02"), ("%m/%d/%Y", "2023-02-01")])
def test_an_explicit_format_reads_an_ambiguous_column(tmp_path, fmt, first):
    stamps = pd.bdate_range("2023-01-02", periods=9)  # 2 Jan .. 12 Jan, each of day and month <= 12
    write_bars(tmp_path / "bars.csv", "date", stamps.strftime("%d/%m/%Y"))
    bars = read_bars(tmp_path / "bars.csv", TimestampSpec(format=fmt))
    assert bars["timestamps"].iloc[0] == pd.Timestamp(first)


@pytest.mark.parametrize(
    "column,written,fmt,expected",
    [
        ("time", EPOCH_S * 1000, "epoch_ms", DAYS),
        ("date", DAYS.strftime("%Y%m%d").astype(int), "%Y%m%d", DAYS),
        ("date", AT_0930.strftime("%d-%m-%Y %Hh%M"), "%d-%m-%Y %Hh%M", AT_0930),
    ],
)
def test_explicit_formats(tmp_path, column, written, fmt, expected):
    write_bars(tmp_path / "bars.csv", column, written)
    assert list(read_bars(tmp_path / "bars.csv", TimestampSpec(format=fmt))["timestamps"]) == list(expected)


@pytest.mark.parametrize(
    "written,fmt,message",
    [
        (DAYS.strftime("%d/%m/%Y"), "%m/%d/%Y", "line 11: timestamp '13/01/2023' is not a date; it does not fit X"),
        (DAYS.strftime("%d/%m/%Y"), "DD/MM/YYYY", "(strptime codes such as %d/%m/%Y %H:%M, or epoch_s, epoch_ms)"),
        (
            EPOCH_S * 1000,
            "epoch_s",
            "line 2: timestamp '1672617600000' reads as 54973-02-21 00:00:00, beyond pandas' range",
        ),
    ],
)
def test_a_wrong_explicit_format_names_the_line_and_the_setting(tmp_path, written, fmt, message):
    write_bars(tmp_path / "bars.csv", "date", written)
    with pytest.raises(KronosError) as err:
        read_bars(tmp_path / "bars.csv", TimestampSpec(format=fmt, format_setting="X"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_mixed_orders_in_one_column_are_refused(tmp_path):
    """13/01 says day first; a later 01/14 cannot be read so: refused, never silently swapped."""
    stamps = [*DAYS[:9].strftime("%d/%m/%Y"), "13/01/2023", "01/14/2023", *DAYS[11:].strftime("%d/%m/%Y")]
    write_bars(tmp_path / "bars.csv", "date", stamps)
    with pytest.raises(KronosError, match="line 12: timestamp '01/14/2023' is not a date; the column's dates are"):
        read_bars(tmp_path / "bars.csv")


def test_a_named_timestamp_column(tmp_path):
    write_bars(tmp_path / "bars.csv", "Stamp", DAYS.strftime("%d/%m/%Y"))
    bars = read_bars(tmp_path / "bars.csv", TimestampSpec(column="Stamp"))
    assert list(bars["timestamps"]) == list(DAYS)
    with pytest.raises(KronosError, match=r"has no column 'When' \(--timestamp-column\); its columns: stamp, open"):
        read_bars(tmp_path / "bars.csv", TimestampSpec(column="When", column_setting="--timestamp-column"))
    with pytest.raises(KronosError, match="expected one of timestamps, .*, or name yours with --timestamp-column"):
        read_bars(tmp_path / "bars.csv", TimestampSpec(column_setting="--timestamp-column"))


def test_epoch_numbers_are_utc_converted_to_the_markets_zone(tmp_path):
    from kronos_cli.market.barfile import parse_timestamps

    idx = parse_timestamps(pd.Series(EPOCH_S[:2] + 3600), "x", tz="Asia/Shanghai")
    assert list(idx) == list(DAYS[:2] + pd.Timedelta(hours=9))  # 01:00 UTC is 09:00 in Shanghai


def test_small_numbers_are_neither_dates_nor_epoch_time(tmp_path):
    """Row numbers, or DDMMYYYY whose leading zero a spreadsheet dropped (2012023), would be 1970: refused."""
    for stamps in (range(30), [int(d.strftime("%d%m%Y")) for d in DAYS]):
        write_bars(tmp_path / "bars.csv", "time", stamps)
        with pytest.raises(KronosError, match="in the timestamp column are neither dates written YYYYMMDD nor epoch"):
            read_bars(tmp_path / "bars.csv")
