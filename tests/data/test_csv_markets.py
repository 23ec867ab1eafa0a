"""Any market from CSV or Parquet: bars on the market's calendar (lunch breaks, nights and holidays are not gaps),
written as a Qlib provider that real pyqlib reads, and one-line errors for files that do not fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic_csv import write_csv_market

CN5 = [
    "data.source=csv",
    "data.freq=5min",
    "data.start_time=2024-01-01",
    "data.end_time=2024-04-30",
    "data.train_time_range=[2024-01-01,2024-03-22]",
    "data.val_time_range=[2024-03-25,2024-04-12]",
    "data.test_time_range=[2024-04-15,2024-04-30]",
    "data.lookback_window=96",
    "data.predict_window=12",
]


@pytest.fixture(scope="module")
def cn5(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("cn5")
    write_csv_market(root / "m", "cn5min", symbols=4)
    return pd.read_csv(root / "m" / "cn5min.csv")


def _prep(tmp_path, frame: pd.DataFrame | None, *extra, name="bars.csv"):
    path = tmp_path / name
    if frame is not None:
        frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    cfg = config.load(None, [*CN5, f"data.csv.path={path}", f"data.dataset_path={tmp_path / 'ds'}", *extra])
    return prepare(cfg)


@pytest.mark.parametrize("calendar", ["XSHG", "infer"])
def test_a_share_five_minute_bars_span_lunch_breaks_and_nights(tmp_path, cn5, calendar):
    m = _prep(tmp_path, cn5, f"data.csv.calendar={calendar}")
    imported = m["calendar"]["imported"]
    if calendar == "XSHG":
        assert imported["bar_label"] == "end"  # bars stamped 09:35 ... 15:00, recognised
    segments = {s["name"]: s["segments"] for s in m["symbols"]}
    # A symbol is cut only where one of its own bars is missing (a few), never at 11:30 or overnight (80 days).
    assert max(segments.values()) <= 1 + imported["missing_bars"] and max(segments.values()) < 20
    assert m["splits"]["test"]["signals"] > 0


def test_the_provider_is_read_by_real_pyqlib_with_the_files_prices(tmp_path, cn5):
    from qlib.data import D

    from kronos_cli.data.qlib_source import init_qlib

    _prep(tmp_path, cn5, "data.csv.calendar=XSHG")
    init_qlib(str(tmp_path / "ds" / "qlib"), "cn")
    cal = D.calendar(freq="5min")
    assert str(cal[0]) == "2024-01-02 09:35:00" and str(cal[24]) == "2024-01-02 13:05:00"
    got = D.features(["SH600003"], ["$close", "$factor"], freq="5min")
    want = cn5[cn5.symbol == "SH600003"].set_index(pd.to_datetime(cn5.timestamps[cn5.symbol == "SH600003"]))
    got = got.xs("SH600003", level=0).dropna()
    assert np.allclose(got["$close"].to_numpy(), want["close"].to_numpy(), rtol=1e-6)
    assert (got["$factor"] == 1).all()


def test_short_gaps_are_filled_and_counted(tmp_path, cn5):
    holes = cn5.drop(index=cn5.index[(cn5.symbol == "SH600000")][100:102])
    m = _prep(tmp_path, holes, "data.csv.calendar=XSHG", "data.csv.fill_gaps=3")
    assert m["calendar"]["imported"]["filled_bars"] >= 2


def _night(d: pd.DataFrame) -> pd.DataFrame:
    d = d.copy()
    d.loc[d.index[9], "timestamps"] = "2024-01-02 20:00:00"
    return d.sort_values(["symbol", "timestamps"], kind="stable")


@pytest.mark.parametrize(
    "mutate,extra,message",
    [
        (_night, [], r"line \d+: a bar at 2024-01-02 20:00:00 is not a bar of the XSHG \(5min\) calendar"),
        (
            lambda d: pd.concat([d, d.iloc[[7]]]).sort_values("timestamps", kind="stable"),
            [],
            r"line \d+: duplicate timestamp .* \(also on line \d+\)",
        ),
        (lambda d: d, ["data.freq=1min"], "holds bars 5min apart .* but data.freq is 1min"),
        (
            lambda d: d.assign(timestamps=np.where(d.index == 5, "2024-01-02 10:03:00", d.timestamps)),
            [],
            r"line 7: the bar at 2024-01-02 10:03:00 comes \d+min after the one before, not a multiple of 5min: "
            r"mixed bar sizes",
        ),
    ],
)
def test_bars_that_do_not_fit_are_one_line_errors_and_nothing_is_written(tmp_path, cn5, mutate, extra, message):
    frame = mutate(cn5[cn5.symbol == "SH600000"].reset_index(drop=True))
    with pytest.raises(KronosError, match=message):
        _prep(tmp_path, frame, "data.csv.calendar=XSHG", *extra)
    assert not (tmp_path / "ds").exists()


def test_parquet_without_the_mapped_column(tmp_path, cn5):
    frame = cn5.rename(columns={"close": "Close"})
    with pytest.raises(KronosError, match="lacks the column 'close' for close .*data.csv.columns.close=NAME"):
        _prep(tmp_path, frame, name="bars.parquet")
    m = _prep(tmp_path, frame, "data.csv.columns={close: Close}", name="bars.parquet")
    assert len(m["symbols"]) == 4


def test_unknown_calendar_is_a_config_error(tmp_path):
    with pytest.raises(config.ConfigError, match="data.csv.calendar 'NOPE' is not a known calendar; use one of"):
        config.load(None, [*CN5, "data.csv.path=x.csv", "data.csv.calendar=NOPE"])


FX = [
    "data.source=csv",
    "data.freq=1h",
    "data.start_time=2024-02-01",
    "data.end_time=2024-04-30",
    "data.train_time_range=[2024-02-01,2024-03-31]",
    "data.val_time_range=[2024-04-01,2024-04-14]",
    "data.test_time_range=[2024-04-15,2024-04-30]",
    "data.lookback_window=120",
    "data.predict_window=24",
]


@pytest.fixture(scope="module")
def fx1h(tmp_path_factory):
    root = tmp_path_factory.mktemp("fx1h")
    return write_csv_market(root / "m", "fx1h", symbols=4)


def _prep_fx(tmp_path, path, *extra):
    return prepare(config.load(None, [*FX, f"data.csv.path={path}", f"data.dataset_path={tmp_path / 'ds'}", *extra]))


def _broker_time(market, out):
    """The market's files as a MetaTrader broker writes them: New York close time (UTC+2, UTC+3 in US summer)."""
    out.mkdir()
    for f in market.glob("*.csv"):
        d = pd.read_csv(f)
        utc = pd.DatetimeIndex(pd.to_datetime(d.timestamps)).tz_localize("UTC")
        d["timestamps"] = utc.tz_convert("America/New_York").tz_localize(None) + pd.Timedelta(hours=7)
        d.to_csv(out / f.name, index=False)
    return out


@pytest.mark.parametrize("calendar,clock", [("forex", "UTC"), ("24/5", "UTC"), ("forex", "broker")])
def test_fx_hourly_bars_across_daylight_saving_have_no_weekend_gaps(tmp_path, fx1h, calendar, clock):
    """Weekends are not gaps: the only missing bars are the few the market file lacks inside each pair's span."""
    from tests.market.test_sessions import forex_hours

    path = fx1h if clock == "UTC" else _broker_time(fx1h, tmp_path / "broker")
    m = _prep_fx(tmp_path, path, f"data.csv.calendar={calendar}")
    imported = m["calendar"]["imported"]
    assert imported["calendar"].startswith("forex (60min, " + ("UTC" if clock == "UTC" else "New York close time"))
    lacking = 0  # the forex hours by their definition, inside each pair's own span, that its file has no bar for
    for f in fx1h.glob("*.csv"):
        stamps = pd.DatetimeIndex(pd.to_datetime(pd.read_csv(f).timestamps))
        lacking += len(forex_hours(str(stamps[0]), str(stamps[-1] + pd.Timedelta(minutes=1)))) - len(stamps)
    assert imported["missing_bars"] == lacking and lacking < 20
    assert max(s["segments"] for s in m["symbols"]) <= 1 + lacking  # cut only where a bar is missing
    assert m["splits"]["test"]["signals"] > 0


def test_a_24_7_calendar_on_fx_bars_says_the_data_closes_on_weekends(tmp_path, fx1h):
    """Seen in the issue: 24/7 turned the weekends into 2,063 missing bars and the error blamed the lookback."""
    with pytest.raises(KronosError, match=r"the data closes on weekends, which the 24/7 \(60min\) calendar .*"
                                          r"set data.csv.calendar to forex \(or infer\)"):  # fmt: skip
        _prep_fx(tmp_path, fx1h, "data.csv.calendar=24/7")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "calendar,shift,message",
    [
        ("XNYS", "0h", r"is not a bar of the XNYS \(60min\) calendar .*; the data fits forex \(60min, UTC, stamped at "
                       r"the bar start\): set data.csv.calendar to forex \(or infer\)"),
        ("24/7", "0h", r"24/7 \(5min\) calendar .*; the data fits XSHG \(5min\): set data.csv.calendar to XSHG"),
        ("24/7", "1h", r"set data.csv.calendar to infer \(it finds inferred \(5min, Mon-Fri, 48 bars a day from "
                       r"10:35 to 16:00\)\)"),
    ],
)  # fmt: skip
def test_a_calendar_that_does_not_fit_names_the_one_that_does(tmp_path, fx1h, cn5, calendar, shift, message):
    """The error names the calendar used and the one the data fits: forex, an exchange whose holidays the data
    keeps, else what `infer` finds (here: A-share bars stamped an hour late fit no exchange)."""
    if calendar == "XNYS":
        with pytest.raises(KronosError, match=message):
            _prep_fx(tmp_path, fx1h, f"data.csv.calendar={calendar}")
        return
    late = cn5.assign(timestamps=pd.to_datetime(cn5.timestamps) + pd.Timedelta(shift))
    with pytest.raises(KronosError, match=message):
        _prep(tmp_path, late, f"data.csv.calendar={calendar}")


def test_data_instrument_picks_symbols_of_a_directory_and_of_a_single_file(tmp_path, fx1h, cn5):
    """`data.instrument: [EURUSD]` on a CSV market had prepared every pair: a one-series market needed a folder."""
    names = sorted(f.stem.upper() for f in fx1h.glob("*.csv"))
    m = _prep_fx(tmp_path, fx1h, "data.csv.calendar=forex", f"data.instrument=[{names[0].lower()},{names[1]}]")
    assert [s["name"] for s in m["symbols"]] == names[:2]
    one = _prep(tmp_path, cn5, "data.csv.calendar=XSHG", f"data.instrument=[{cn5.symbol.iloc[0]}]")
    assert [s["name"] for s in one["symbols"]] == [str(cn5.symbol.iloc[0])]
    with pytest.raises(KronosError, match=r"data.instrument lists NOPE, which .* has no bars .*; the files are "):
        _prep_fx(tmp_path, fx1h, "data.csv.calendar=forex", f"data.instrument=[{names[0]},nope]")
