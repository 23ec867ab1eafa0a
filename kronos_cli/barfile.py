"""Reading and checking files of bars; every error is one line naming the file, the line as the file shows it
(the header is line 1) and, where it applies, the column."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.bars import ALIASES, FEATURES, PRICE_COLUMNS, TIMESTAMP_ALIASES, prepare_frame
from kronos_cli.errors import KronosError

DELIMITERS = (",", ";", "\t", "|")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def file_lines(index: pd.Index) -> np.ndarray:
    """The file line of each row of a frame read with its header on line 1 (blank lines kept as rows)."""
    return np.asarray(index, dtype=np.int64) + 2


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a bar file, from its header line: comma, semicolon, tab or pipe."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def read_table(path: str | os.PathLike, what: str = "CSV file", usecols: list[str] | None = None) -> pd.DataFrame:
    """A bar file as strings-or-numbers, with its delimiter sniffed and its blank lines kept (so that row i is
    line i + 2); CSV, or Parquet by its suffix; only `usecols` when given (and present)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise KronosError(f"{p} is a directory; pass a {what} (or set data.csv.path to the directory in a config)")
    if not p.is_file():
        raise KronosError(f"no {what} at {p}")
    if p.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(p, columns=usecols)
        except Exception as exc:
            raise KronosError(f"{p} could not be read as Parquet ({str(exc).splitlines()[0]})") from exc
    sep = sniff_delimiter(p)
    fast = _read_csv_arrow(p, sep, usecols)
    if fast is not None:
        return fast
    try:
        return pd.read_csv(p, sep=sep, skip_blank_lines=False, usecols=lambda c: usecols is None or c in usecols)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise KronosError(f"{p} could not be read as CSV ({str(exc).splitlines()[0]})") from exc


def parse_timestamps(values: pd.Series, where: str, lines: np.ndarray | None = None, tz=None) -> pd.DatetimeIndex:
    """Parsed timestamps, naive wall-clock time: ISO text takes the fast path, anything else pandas' mixed
    parser. Time-zone-aware values are converted to `tz` when given, then the zone is dropped."""
    lines = file_lines(pd.RangeIndex(len(values))) if lines is None else lines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' format-inference notes: our error below says what to do
        parsed = None
        for kwargs in ({"format": "ISO8601"}, {"format": "mixed"}, {"format": "mixed", "utc": True}):
            try:
                parsed = pd.to_datetime(values, errors="coerce", **kwargs)
            except (ValueError, TypeError):
                continue
            if not pd.isna(parsed).any() or kwargs.get("utc"):
                break
    idx = pd.DatetimeIndex(parsed)
    if idx.hasnans:
        i = int(np.argmax(idx.isna()))
        raw = values.iloc[i]
        if pd.isna(raw) or str(raw).strip() == "":
            raise KronosError(f"{where} line {lines[i]}: empty timestamp; fill or drop that line")
        raise KronosError(
            f"{where} line {lines[i]}: timestamp {str(raw)!r} is not a date; use ISO dates such as "
            f"2024-01-31 or 2024-01-31 09:35:00"
        )
    if idx.tz is not None:
        idx = (idx.tz_convert(tz) if tz is not None else idx).tz_localize(None)
    return idx.as_unit("ns")


def check_order(idx: pd.DatetimeIndex, where: str, lines: np.ndarray) -> None:
    """Strictly increasing: a repeated timestamp or one out of order is a one-line error naming both lines."""
    diffs = np.diff(idx.asi8)
    if (diffs == 0).any():
        i = int(np.argmax(diffs == 0)) + 1
        raise KronosError(
            f"{where} line {lines[i]}: duplicate timestamp {idx[i]} (also on line {lines[i - 1]}); drop one of them"
        )
    if (diffs < 0).any():
        i = int(np.argmax(diffs < 0)) + 1
        raise KronosError(
            f"{where} line {lines[i]}: timestamp {idx[i]} comes before the one on line {lines[i - 1]}; "
            f"sort the file by time"
        )


def _read_csv_arrow(p: Path, sep: str, usecols: list[str] | None) -> pd.DataFrame | None:
    """pyarrow's multi-threaded CSV reader (ISO timestamps parsed natively, blank lines kept as empty rows);
    None when it cannot read the file, so that pandas' reader reports the problem the usual way. A timestamp
    column with UTC offsets (+08:00, Z) is read again as text: pyarrow would convert it to UTC and lose the
    wall-clock time the bars were stamped with, which `parse_timestamps` keeps."""
    import pyarrow as pa  # lazy: only the CSV reading path needs it
    import pyarrow.csv as pc  # lazy: as above

    def read(text_columns: list[str]):
        return pc.read_csv(
            p,
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


def check_timestamps(values: pd.Series, where: str, lines: np.ndarray | None = None) -> pd.DatetimeIndex:
    """Parsed, strictly increasing timestamps (a time zone is dropped, the wall-clock time kept)."""
    lines = file_lines(pd.RangeIndex(len(values))) if lines is None else lines
    idx = parse_timestamps(values, where, lines)
    check_order(idx, where, lines)
    return idx


def _blank(raw: object) -> bool:
    return pd.isna(raw) or str(raw).strip() == ""


def check_column(values: pd.Series, column: str, where: str, lines: np.ndarray, price: bool) -> np.ndarray:
    """A numeric column as float64: every value present, a number, finite, within float32's range; prices
    positive, volumes and amounts not negative."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)

    def fail(mask: np.ndarray, what: str) -> None:
        i = int(np.argmax(mask))
        raise KronosError(
            f"{where} line {lines[i]}, column {column!r}: {what.format(v=numbers[i], raw=values.iloc[i])}"
            f"; fix or drop that line"
        )

    missing = np.isnan(numbers)
    if missing.any():
        fail(missing, "is empty" if _blank(values.iloc[int(np.argmax(missing))]) else "{raw!r} is not a number")
    if np.isinf(numbers).any():
        fail(np.isinf(numbers), "is infinite")
    if (np.abs(numbers) > FLOAT32_MAX).any():
        fail(np.abs(numbers) > FLOAT32_MAX, "{v:g} is beyond the float32 range (3.4e38) the model computes in")
    bad = numbers <= 0 if price else numbers < 0
    if bad.any():
        fail(bad, "{v:g} is not a positive price" if price else "{v:g} is negative")
    return numbers


def read_bars(path: str | os.PathLike) -> pd.DataFrame:
    """A frame with a `timestamps` column and the bar columns, checked line by line."""
    p = Path(path).expanduser()
    df = read_table(p)
    df.columns = [str(c).strip().lower() for c in df.columns]
    ts_col = next((c for c in TIMESTAMP_ALIASES if c in df.columns), None)
    if ts_col is None:
        raise KronosError(
            f"{p} has no timestamps column (columns: {', '.join(df.columns)}); expected one of "
            f"{', '.join(TIMESTAMP_ALIASES)}"
        )
    df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns and v not in df.columns})
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise KronosError(
            f"{p} lacks the column(s) {', '.join(missing)}; open, high, low and close are required "
            f"(volume and amount are optional)"
        )
    lines = file_lines(df.index)
    out = pd.DataFrame({"timestamps": check_timestamps(df[ts_col], str(p), lines)})
    for col in (c for c in FEATURES if c in df.columns):
        out[col] = check_column(df[col], col, str(p), lines, price=col in PRICE_COLUMNS)
    prepare_frame(out, str(p))  # the same checks the predictor applies
    return out
