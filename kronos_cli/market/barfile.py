"""Reading and checking files of bars; every error is one line naming the file, the line as the file shows it
(the header is line 1) and, where it applies, the column."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from kronos_cli.core.errors import KronosError, excerpt
from kronos_cli.market.bars import ALIASES, FEATURES, PRICE_COLUMNS, TIMESTAMP_ALIASES, prepare_frame

DELIMITERS = (",", ";", "\t", "|")
FLOAT32_MAX = float(np.finfo(np.float32).max)
EPOCH_UNITS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us", "epoch_ns": "ns"}  # the formats of epoch numbers
# An epoch number's unit by its magnitude: seconds below 1e11 (the year 5138), then ms, us, else ns.
EPOCH_LIMITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
COMPACT = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}  # whole numbers written YYYYMMDD[HHMM[SS]], by digits
# A date written with the day and the month before the year, in either order (02/01/2023, 2.1.23, 09:30 02-01-2023);
# ISO's year comes first, and a year is not followed by a colon (the -05:00 of an offset after fractional seconds).
# No look-arounds: pyarrow's RE2 matches it over a whole column.
DAY_MONTH = re.compile(r"(?:^|\D)(?P<first>\d{1,2})[/.-](?P<second>\d{1,2})[/.-](?:\d{4}|\d{2})(?:$|[^\d:])")
DIGITS = r"\s*\d+(\.\d*)?\s*"
PARSED = ("datetime64", "datetime", "date")  # pandas' names of values that are times already (ISO read by pyarrow)


@dataclass(frozen=True)
class TimestampSpec:
    """Which column holds a file's timestamps and how they are written, resolved where the user sets them; the
    settings name the flag or config key that sets each, for the messages."""

    column: str | None = None  # None: the first of TIMESTAMP_ALIASES the file has
    format: str | None = None  # a strptime format (%d/%m/%Y %H:%M) or one of EPOCH_UNITS; None: detected
    column_setting: str = "the timestamp column"
    format_setting: str = "the timestamp format"


DETECT = TimestampSpec()


def file_lines(index: pd.Index) -> np.ndarray:
    """The file line of each row of a frame read with its header on line 1 (blank lines kept as rows)."""
    return np.asarray(index, dtype=np.int64) + 2


def sniff_delimiter(path: Path, data: bytes | None = None) -> str:
    """The delimiter of a bar file (or of its bytes, when read already), from its header line: comma, semicolon,
    tab or pipe."""
    if data is None:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline()
    else:
        header = data[: data.find(b"\n") if b"\n" in data[:65536] else 65536].decode("utf-8", "replace")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def read_table(
    path: str | os.PathLike, what: str = "CSV file", usecols: list[str] | None = None, data: bytes | None = None
) -> pd.DataFrame:
    """A bar file as strings-or-numbers, with its delimiter sniffed and its blank lines kept (so that row i is
    line i + 2); CSV, or Parquet by its suffix; only `usecols` when given (and present); from `data`, the file's
    bytes, when they were read already."""
    p = Path(path).expanduser()
    if data is None:
        if p.is_dir():
            raise KronosError(f"{p} is a directory; pass a {what} (or set data.csv.path to the directory in a config)")
        if not p.is_file():
            raise KronosError(f"no {what} at {p}")
    source = p if data is None else io.BytesIO(data)
    if p.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(source, columns=usecols)
        except Exception as exc:
            raise KronosError(f"{p} could not be read as Parquet ({str(exc).splitlines()[0]})") from exc
    sep = sniff_delimiter(p, data)
    fast = _read_csv_arrow(p if data is None else data, sep, usecols)
    if fast is not None:
        return fast
    try:
        return pd.read_csv(
            source if data is None else io.BytesIO(data),
            sep=sep,
            skip_blank_lines=False,
            usecols=lambda c: usecols is None or c in usecols,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise KronosError(f"{p} could not be read as CSV ({str(exc).splitlines()[0]})") from exc


def parse_timestamps(
    values: pd.Series, where: str, lines: np.ndarray | None = None, tz=None, spec: TimestampSpec = DETECT
) -> pd.DatetimeIndex:
    """Parsed timestamps, naive wall-clock time, read in `spec.format` or in the format the whole column shows
    (`_detect`). Time-zone-aware values (and epoch numbers, which are UTC) are converted to `tz` when given, then
    the zone is dropped."""
    lines = file_lines(pd.RangeIndex(len(values))) if lines is None else lines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' format-inference notes: our error below says what to do
        parsed, form = _by_format(values, spec.format) if spec.format else _detect(values, where, spec)
    idx = pd.DatetimeIndex(parsed)
    if idx.hasnans:
        i = int(np.argmax(idx.isna()))
        raw = values.iloc[i]
        if pd.isna(raw) or str(raw).strip() == "":
            raise KronosError(f"{where} line {lines[i]}: empty timestamp; fill or drop that line")
        if spec.format:
            codes = "" if "%" in spec.format else " (strptime codes such as %d/%m/%Y %H:%M, or epoch_s, epoch_ms)"
            fix = f"it does not fit {spec.format_setting} {spec.format!r}{codes}; fix that line or the format"
        elif form:
            fix = f"the column's dates are written {form!r}; write them all one way or set {spec.format_setting}"
        else:
            fix = f"use ISO dates such as 2024-01-31 or 2024-01-31 09:35:00, or set {spec.format_setting}"
        raise KronosError(f"{where} line {lines[i]}: timestamp {excerpt(str(raw))} is not a date; {fix}")
    if idx.tz is not None:
        idx = (idx.tz_convert(tz) if tz is not None else idx).tz_localize(None)
    beyond = (idx < pd.Timestamp.min) | (idx > pd.Timestamp.max)
    if beyond.any():
        i = int(np.argmax(beyond))
        raise KronosError(
            f"{where} line {lines[i]}: timestamp {excerpt(str(values.iloc[i]))} reads as {idx[i]}, beyond pandas' "
            f"range (1677-2262); fix that line or set {spec.format_setting}"
        )
    return idx.as_unit("ns")


def _to_datetime(values: pd.Series, **kwargs) -> pd.Series:
    """pd.to_datetime with NaT where a value does not parse; a column of mixed UTC offsets comes back in UTC."""
    for utc in (False, True):
        try:
            return pd.to_datetime(values, errors="coerce", utc=utc, **kwargs)
        except (ValueError, TypeError, OverflowError):
            continue
    return pd.Series(pd.NaT, index=values.index)


def _as_text(values: pd.Series) -> pd.Series:
    """Values as the file writes them (whole numbers without a decimal point), NA where a cell is empty."""
    if pd.api.types.is_float_dtype(values):
        known = values.dropna()
        if (known % 1 == 0).all() and (known.abs() < 1e18).all():
            return values.astype("Int64").astype("string")
    return values.astype("string")


def _by_format(values: pd.Series, fmt: str) -> tuple[pd.Series, str]:
    """Values read in the format the user set: strptime's, or epoch numbers in one of EPOCH_UNITS."""
    if pd.api.types.infer_dtype(values, skipna=True) in PARSED:  # ISO the reader has parsed, or Parquet's times
        return _to_datetime(values), fmt
    if fmt in EPOCH_UNITS:
        return _epoch(pd.to_numeric(values, errors="coerce"), EPOCH_UNITS[fmt]), fmt
    return _to_datetime(_as_text(values), format=fmt), fmt


def _detect(values: pd.Series, where: str, spec: TimestampSpec) -> tuple[pd.Series, str | None]:
    """The column's timestamps without a format, and the format found when it is not ISO: ISO text (the fast
    path), whole numbers written YYYYMMDD[HHMM[SS]], epoch numbers by magnitude, dates written with the day and
    the month before the year in the order the whole column shows (never guessed), else the format pandas
    guesses from the first value, else its mixed parser."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in PARSED:
        return _to_datetime(values), None
    if kind in ("integer", "floating", "mixed-integer-float"):
        return _numbers(pd.to_numeric(values, errors="coerce"), where, spec)
    parsed = _to_datetime(values, format="ISO8601")
    if not pd.isna(parsed).any():
        return parsed, None
    text = _as_text(values)
    filled = text.dropna().str.strip()
    filled = filled[filled != ""]
    if len(filled) and filled.str.fullmatch(DIGITS).all():  # numbers read as text (a Parquet string column)
        return _numbers(pd.to_numeric(values, errors="coerce"), where, spec)
    order = _day_month_order(text, where, spec)
    if order is not None:
        day_first, form = order
        if form is None:  # a form pandas cannot name: its flexible parser, told the order
            return _to_datetime(text, format="mixed", dayfirst=day_first), "day first" if day_first else "month first"
        return _to_datetime(text, format=form), form
    guess = guess_datetime_format(filled.iloc[0]) if len(filled) else None
    if guess is not None:
        parsed = _to_datetime(text, format=guess)
        if not pd.isna(parsed).any():
            return parsed, None
    return _to_datetime(text, format="mixed"), None


def _numbers(n: pd.Series, where: str, spec: TimestampSpec) -> tuple[pd.Series, str]:
    """Whole numbers all written YYYYMMDD (or YYYYMMDDHHMM[SS]) as such, else epoch time (UTC) in the unit the
    largest magnitude says; smaller numbers (row numbers, DDMMYYYY) are refused."""
    known = n.dropna()
    if len(known) and (known % 1 == 0).all() and (known.abs() < 1e15).all():
        digits = known.astype(np.int64).astype(str)
        lengths = digits.str.len().unique()
        if len(lengths) == 1 and lengths[0] in COMPACT:
            parsed = pd.to_datetime(digits.reindex(n.index), format=COMPACT[lengths[0]], errors="coerce")
            if not pd.isna(parsed[known.index]).any():
                return parsed, COMPACT[lengths[0]]
    top = float(known.abs().max()) if len(known) else 0.0
    if len(known) and top < 1e8:  # before March 1973 in seconds: not a time, or a date in another order
        v = known.iloc[0]
        raise KronosError(
            f"{where}: numbers such as {int(v) if v % 1 == 0 else v} in the timestamp column are neither dates "
            f"written YYYYMMDD nor epoch time (1973 on); set {spec.format_setting}"
        )
    unit = next((u for limit, u in EPOCH_LIMITS if top < limit), "ns")
    return _epoch(n, unit), f"epoch_{unit}"


def _epoch(n: pd.Series, unit: str) -> pd.Series:
    """Epoch numbers as UTC times, NaT where one is empty or beyond pandas' range (1677-2262)."""
    try:
        return pd.to_datetime(n, unit=unit, utc=True, errors="coerce")
    except (ValueError, OverflowError):
        return pd.Series(pd.NaT, index=n.index, dtype="datetime64[ns, UTC]")


def _day_month_order(text: pd.Series, where: str, spec: TimestampSpec) -> tuple[bool, str | None] | None:
    """Whether a column's dates written with the day and the month before the year (02/01/2023 09:30) put the day
    first, and their format where pandas can name it; None when the column has no such dates. Day first when some
    first field is above 12, month first when some second one is; when neither is, the file does not say which
    and the user is asked."""
    import pyarrow as pa  # lazy: as in _read_csv_arrow; RE2 matches a million rows in a fraction of a second
    import pyarrow.compute as pc  # lazy: as above

    found = pc.extract_regex(pa.array(text.to_numpy(dtype=object, na_value=None), pa.string()), DAY_MONTH.pattern)
    matched = found.is_valid().to_numpy(zero_copy_only=False)
    if not matched.any():
        return None
    fields = found.filter(pa.array(matched))
    first, second = (pc.cast(fields.field(k), pa.int16()).to_numpy() for k in ("first", "second"))
    sample = str(text.iloc[int(np.argmax(matched))]).strip()
    formats = {day_first: guess_datetime_format(sample, dayfirst=day_first) for day_first in (True, False)}
    if (first > 12).any() or (second > 12).any():
        day_first = bool((first > 12).any())
        return day_first, formats[day_first]
    choices = (
        f"{formats[True]!r} (day first) or {formats[False]!r} (month first)"
        if all(formats.values())
        else "a format with %d before %m (day first) or %m before %d (month first)"
    )
    raise KronosError(
        f"{where}: dates such as {sample!r} read both day first and month first (no day above 12 in the column); "
        f"set {spec.format_setting} to {choices}"
    )


def check_order(idx: pd.DatetimeIndex | np.ndarray, where: str, lines: np.ndarray) -> None:
    """Strictly increasing (timestamps, or their int64 ns): a repeated timestamp or one out of order is a one-line
    error naming both lines."""
    ns = idx.asi8 if isinstance(idx, pd.DatetimeIndex) else np.asarray(idx)
    diffs = np.diff(ns)
    if (diffs > 0).all():
        return
    if (diffs == 0).any():
        i = int(np.argmax(diffs == 0)) + 1
        raise KronosError(
            f"{where} line {lines[i]}: duplicate timestamp {pd.Timestamp(ns[i])} (also on line {lines[i - 1]}); "
            f"drop one of them"
        )
    i = int(np.argmax(diffs < 0)) + 1
    raise KronosError(
        f"{where} line {lines[i]}: timestamp {pd.Timestamp(ns[i])} comes before the one on line {lines[i - 1]}; "
        f"sort the file by time"
    )


def _read_csv_arrow(p: Path | bytes, sep: str, usecols: list[str] | None) -> pd.DataFrame | None:
    """pyarrow's multi-threaded CSV reader (ISO timestamps parsed natively, blank lines kept as empty rows);
    None when it cannot read the file, so that pandas' reader reports the problem the usual way. A timestamp
    column with UTC offsets (+08:00, Z) is read again as text: pyarrow would convert it to UTC and lose the
    wall-clock time the bars were stamped with, which `parse_timestamps` keeps."""
    import pyarrow as pa  # lazy: only the CSV reading path needs it
    import pyarrow.csv as pc  # lazy: as above

    def read(text_columns: list[str]):
        return pc.read_csv(
            pa.py_buffer(p) if isinstance(p, bytes) else p,
            parse_options=pc.ParseOptions(delimiter=sep, ignore_empty_lines=False),
            convert_options=pc.ConvertOptions(
                include_columns=usecols,
                include_missing_columns=False,
                timestamp_parsers=[pc.ISO8601],
                column_types={c: pa.string() for c in text_columns},
            ),
        )

    try:
        table = read([])
        zoned = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz is not None]
        if zoned:
            table = read(zoned)
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeDecodeError):
        return None
    return table.to_pandas()


def check_timestamps(
    values: pd.Series, where: str, lines: np.ndarray | None = None, spec: TimestampSpec = DETECT
) -> pd.DatetimeIndex:
    """Parsed, strictly increasing timestamps (a time zone is dropped, the wall-clock time kept)."""
    lines = file_lines(pd.RangeIndex(len(values))) if lines is None else lines
    idx = parse_timestamps(values, where, lines, spec=spec)
    check_order(idx, where, lines)
    return idx


def _blank(raw: object) -> bool:
    return pd.isna(raw) or str(raw).strip() == ""


def check_column(values: pd.Series, column: str, where: str, lines: np.ndarray, price: bool) -> np.ndarray:
    """A numeric column as float64: every value present, a number, finite, within float32's range; prices
    positive, volumes and amounts not negative."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return check_numbers(numbers, column, where, lines, price, values.iloc.__getitem__)


def check_numbers(numbers: np.ndarray, column: str, where: str, lines: np.ndarray, price: bool, raw) -> np.ndarray:
    """`check_column` of numbers read already; `raw(i)` is cell i as the file writes it, for the message."""

    def fail(mask: np.ndarray, what: str) -> None:
        i = int(np.argmax(mask))
        raise KronosError(
            f"{where} line {lines[i]}, column {column!r}: {what.format(v=numbers[i], raw=excerpt(raw(i)))}"
            f"; fix or drop that line"
        )

    missing = np.isnan(numbers)
    if missing.any():
        fail(missing, "is empty" if _blank(raw(int(np.argmax(missing)))) else "{raw} is not a number")
    if np.isinf(numbers).any():
        fail(np.isinf(numbers), "is infinite")
    if (np.abs(numbers) > FLOAT32_MAX).any():
        fail(np.abs(numbers) > FLOAT32_MAX, "{v:g} is beyond the float32 range (3.4e38) the model computes in")
    bad = numbers <= 0 if price else numbers < 0
    if bad.any():
        fail(bad, "{v:g} is not a positive price" if price else "{v:g} is negative")
    return numbers


def read_bars(path: str | os.PathLike, spec: TimestampSpec = DETECT) -> pd.DataFrame:
    """A frame with a `timestamps` column and the bar columns, checked line by line; the timestamps are in
    `spec.column` (else the first of TIMESTAMP_ALIASES the file has), read as `spec.format` says."""
    p = Path(path).expanduser()
    df = read_table(p)
    df.columns = [str(c).strip().lower() for c in df.columns]
    if spec.column is not None:
        ts_col = spec.column.strip().lower()
        if ts_col not in df.columns:
            raise KronosError(
                f"{p} has no column {spec.column!r} ({spec.column_setting}); its columns: {', '.join(df.columns)}"
            )
    else:
        ts_col = next((c for c in TIMESTAMP_ALIASES if c in df.columns), None)
    if ts_col is None:
        raise KronosError(
            f"{p} has no timestamps column (columns: {', '.join(df.columns)}); expected one of "
            f"{', '.join(TIMESTAMP_ALIASES)}, or name yours with {spec.column_setting}"
        )
    df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns})
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise KronosError(
            f"{p} lacks the column(s) {', '.join(missing)}; open, high, low and close are required "
            f"(volume and amount are optional)"
        )
    lines = file_lines(df.index)
    out = pd.DataFrame({"timestamps": check_timestamps(df[ts_col], str(p), lines, spec)})
    for col in (c for c in FEATURES if c in df.columns):
        out[col] = check_column(df[col], col, str(p), lines, price=col in PRICE_COLUMNS)
    prepare_frame(out, str(p))  # the same checks the predictor applies
    return out
