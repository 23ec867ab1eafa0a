"""Property-based (hypothesis): any bar file, in any column order and delimiter, with empty, non-numeric,
infinite, negative or huge values, unparseable, duplicate or unsorted timestamps and time zones, gives bars or a
one-line user error, never a traceback; and a valid file reads back its own values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kronos_cli.core.errors import KronosError
from kronos_cli.market.barfile import read_bars

COLUMNS = ["timestamps", "open", "high", "low", "close", "volume", "amount"]
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-5, 10**9).map(str),
    st.sampled_from(["", "abc", "1e999", "-0", "nan", " 3 "]),
)
STAMPS = st.one_of(
    st.datetimes(
        min_value=pd.Timestamp("2000-01-01").to_pydatetime(), max_value=pd.Timestamp("2030-01-01").to_pydatetime()
    ).map(str),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01 09:30:00+08:00", "", "x", "2024-13-45", "01/02/2024"]),
)
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def _write(path, order, rows, sep):
    lines = [sep.join(order)] + [sep.join(dict(zip(COLUMNS, r))[c] for c in order) for r in rows]
    path.write_text("\n".join(lines) + "\n")


@SETTINGS
@given(
    st.permutations(COLUMNS), st.lists(st.tuples(STAMPS, *[CELLS] * 6), max_size=25), st.sampled_from([",", ";", "\t"])
)
def test_any_bar_file_gives_bars_or_a_user_error(tmp_path_factory, order, rows, sep):
    path = tmp_path_factory.mktemp("bars") / "b.csv"
    _write(path, order, rows, sep)
    try:
        read_bars(path)
    except KronosError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip()


@SETTINGS
@given(
    st.permutations(COLUMNS),
    st.lists(st.floats(0.01, 1e6), min_size=16, max_size=40),
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from([None, "UTC", "Asia/Shanghai"]),
)
def test_a_valid_file_reads_back_its_values(tmp_path_factory, order, closes, sep, tz):
    stamps = pd.date_range("2024-01-01 09:30", periods=len(closes), freq="5min", tz=tz)
    c = np.array(closes)
    rows = [
        (str(t), repr(x), repr(x * 1.01), repr(x * 0.99), repr(x), "100", repr(100 * x)) for t, x in zip(stamps, closes)
    ]
    path = tmp_path_factory.mktemp("bars") / "b.csv"
    _write(path, order, rows, sep)
    bars = read_bars(path)
    assert np.array_equal(bars["close"].to_numpy(), c)
    assert (bars["timestamps"].dt.strftime("%H:%M").iloc[:2] == ["09:30", "09:35"]).all()  # wall-clock time kept
