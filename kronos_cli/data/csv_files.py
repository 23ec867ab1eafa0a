"""The files of a CSV or Parquet source read into checked series: which files, which columns, every value and
timestamp checked with the file's line (`barfile`), one series per file or per symbol of a single file.

A file is parsed once by pyarrow's multi-threaded reader with typed columns (ISO timestamps, float64 numbers),
each column checked in pyarrow's own buffer by its extremes and copied once, into the float32 bars the provider
and the dataset store; only a file that pass cannot vouch for (a timestamp in another form or with a zone, text
in a number column, an empty or bad cell) is read again the general way (`read_table`, `parse_timestamps`,
`check_column`), which accepts it or says which line is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.market.barfile import (
    DAY_MONTH,
    FLOAT32_MAX,
    TimestampSpec,
    check_column,
    check_order,
    file_lines,
    parse_timestamps,
    read_table,
    sniff_delimiter,
)
from kronos_cli.market.bars import ALIASES, FEATURES, PRICE_COLUMNS, canonical, mean_price
from kronos_cli.market.sessions import NS_PER_DAY, is_exchange, parse_freq
from kronos_cli.market.stamps import range_end

SUFFIXES = (".csv", ".parquet")
# A file's column for each feature when `data.csv.columns` does not map it: our name, then the reference's.
CANDIDATES = {f: (f, *(k for k, v in ALIASES.items() if v == f)) for f in FEATURES}


@dataclass
class Series:
    """One symbol's bars as read: wall-clock ns, (T, 6) float32 values in FEATURES order (as stored), and where
    each came from."""

    symbol: str
    ns: np.ndarray
    values: np.ndarray
    lines: np.ndarray
    where: str


@dataclass
class Part:
    """What to read of a file: its bytes (all of them, or its header line and the bytes appended since the last
    import) and how many rows come before them (for the line numbers)."""

    file: Path
    data: bytes
    offset: int = 0
    skip: int = 0  # the header line's bytes before the appended ones


def read_typed(path: Path, data: bytes, types: dict, columns: list[str] | None = None):
    """A bar file's bytes as a pyarrow table with the columns of `types` parsed as those types (timestamps as
    naive ISO 8601, numbers as float64) by pyarrow's multi-threaded reader, blank lines kept as empty rows; None
    when a cell does not parse as its type (a zone offset, a date in another form, text in a number column) or
    the file is not simple to read, so that `read_table` and the checks say what is wrong the usual way."""
    import pyarrow as pa  # lazy: only the reading paths need it
    import pyarrow.csv as pc  # lazy: as above
    import pyarrow.parquet as pq  # lazy: as above

    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(pa.BufferReader(data), columns=columns)
            if not all(_plain(f.type, types.get(f.name)) for f in table.schema):
                return None
            return table.cast(pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in table.schema]))
        return pc.read_csv(
            pa.py_buffer(data),
            parse_options=pc.ParseOptions(delimiter=sniff_delimiter(path, data), ignore_empty_lines=False),
            convert_options=pc.ConvertOptions(
                column_types=types, include_columns=columns or [], include_missing_columns=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowKeyError, pa.ArrowTypeError, UnicodeDecodeError):
        return None


def _plain(have, want) -> bool:
    """Whether a Parquet column of type `have` reads as `want` without a judgement: numbers as float64, times
    without a zone (a zone's wall-clock time is `parse_timestamps`' to decide)."""
    import pyarrow as pa  # lazy: as above

    if want is None:
        return True
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(have) and have.tz is None
    return pa.types.is_integer(have) or pa.types.is_floating(have)


def source_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise KronosError(f"{path} holds no .csv or .parquet files")
        return files
    if path.is_file():
        return [path]
    raise KronosError(f"no CSV file or directory at {path} (data.csv.path)")


def plain_column(values: np.ndarray, price: bool) -> bool:
    """Whether a float64 column passes `check_column` (present, finite, within float32's range, a price positive,
    a volume or amount not negative), from its smallest and largest value: no temporary the size of the file."""
    if not len(values):
        return True
    lo, hi = values.min(), values.max()  # NaN in, NaN out: fails both comparisons
    return bool((lo > 0 if price else lo >= 0) and hi <= FLOAT32_MAX)


def stored_bars(columns: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """(T, 6) float32 bars, as the provider and the dataset store them, from the float64 columns read (a price
    column each, volume and amount when the file has them): no volume is zero volume and amount, no amount is
    `amount_from_volume` of the float64 values."""
    out = np.empty((rows, len(FEATURES)), dtype=np.float32)
    for i, name in enumerate(FEATURES):
        if name in columns:
            out[:, i] = columns[name]
    if "volume" not in columns:
        out[:, 4] = 0.0
    if "amount" not in columns and "volume" not in columns:
        out[:, 5] = 0.0
    elif "amount" not in columns:  # `amount_from_volume` of the columns; beyond float32: inf, a missing row later
        out[:, 5] = columns["volume"] * mean_price(*(columns[p] for p in PRICE_COLUMNS))
    return out


class CsvReader:
    """Reads the files of `data.csv.path` into Series, one file (or one part of a file) at a time."""

    def __init__(self, d: DataConfig, tz=None):
        self.d, self.tz = d, tz
        self.path = Path(d.csv.path).expanduser()
        self.files = source_files(self.path)
        # `data.instrument` as a list picks symbols (a file's stem, or a symbol column's value; any case)
        self.wanted = {str(x).upper() for x in d.instrument} if isinstance(d.instrument, list) else None
        if self.wanted is not None and len(self.files) > 1:
            self.files = [f for f in self.files if f.stem.upper() in self.wanted] or self.files[:0]
        self.freq = parse_freq(d.freq)
        self.start, self.end = pd.Timestamp(d.start_time).value, range_end(d.end_time).value
        self.stamps = TimestampSpec(
            d.csv.columns.get("timestamps", d.csv.timestamp_column),
            d.csv.timestamp_format,
            "data.csv.timestamp_column",
            "data.csv.timestamp_format",
        )
        self.mapping = {canonical(k): v for k, v in d.csv.columns.items()}
        self.quick = len(self.files) > 1 and is_exchange(d.csv.calendar)

    def _column(self, columns: list[str], ours: str, where: str, required: bool) -> str | None:
        candidates = [self.mapping[ours]] if ours in self.mapping else list(CANDIDATES[ours])
        for c in candidates:
            if c in columns:
                return c
        if required:
            raise KronosError(
                f"{where} lacks the column {candidates[0]!r} for {ours} (columns: {', '.join(map(str, columns))})"
                f"; map it with data.csv.columns.{ours}=NAME"
            )
        return None

    def _lacks_stamps(self, columns: list[str], where: str) -> None:
        if self.stamps.column not in columns:
            raise KronosError(
                f"{where} lacks the timestamp column {self.stamps.column!r} (columns: {', '.join(map(str, columns))}"
                f"); set data.csv.timestamp_column"
            )

    def _fast(self, part: Part, symbol_column: str | None):
        """(ns, values, lines, symbols) of a file every value of which is a plain ISO time or number, else None;
        each column is checked in place (pyarrow's buffer), then copied once, into the stored float32 bars."""
        import pyarrow as pa  # lazy: as in barfile

        names = {c for f in FEATURES for c in ([self.mapping[f]] if f in self.mapping else CANDIDATES[f])}
        types = {self.stamps.column: pa.timestamp("ns"), **{c: pa.float64() for c in names}}
        table = read_typed(part.file, part.data, types)
        if table is None or self.stamps.column not in table.column_names:
            return None
        ts = table.column(self.stamps.column)
        cols = {ours: self._column(table.column_names, ours, str(part.file), False) for ours in FEATURES}
        if any(cols[p] is None for p in PRICE_COLUMNS) or ts.null_count or ts.type != pa.timestamp("ns"):
            return None
        read = {}
        for ours, theirs in cols.items():
            if theirs is not None:
                column = table.column(theirs)
                if column.null_count or column.type != pa.float64():
                    return None
                read[ours] = column.to_numpy()
                if not plain_column(read[ours], ours in PRICE_COLUMNS):
                    return None
        values = stored_bars(read, table.num_rows)
        ns = ts.to_numpy().view(np.int64)
        ns = ns if self.freq.intraday else ns // NS_PER_DAY * NS_PER_DAY
        lines = np.arange(2 + part.offset, 2 + part.offset + table.num_rows, dtype=np.int64)
        symbols = None
        if symbol_column is not None and symbol_column in table.column_names:
            symbols = table.column(symbol_column).to_pandas().astype(str).to_numpy()
        return ns, values, lines, symbols

    def _checked(self, df: pd.DataFrame, where: str, offset: int = 0):
        """(ns, values, lines) of a whole frame read the general way, every value checked."""
        columns = list(df.columns)
        self._lacks_stamps(columns, where)
        lines = file_lines(pd.RangeIndex(len(df))) + offset
        idx = parse_timestamps(df[self.stamps.column].reset_index(drop=True), where, lines, self.tz, self.stamps)
        cols = {ours: self._column(columns, ours, where, ours in PRICE_COLUMNS) for ours in FEATURES}
        read = {
            ours: check_column(df[theirs].reset_index(drop=True), theirs, where, lines, ours in PRICE_COLUMNS)
            for ours, theirs in cols.items()
            if theirs is not None
        }
        if not self.freq.intraday:
            idx = idx.normalize()
        return idx.asi8, stored_bars(read, len(df)), lines

    def read(self, part: Part) -> tuple[list[Series], int]:
        """A file's series (or those of its new part), each checked and in time order, its bars in the data
        range, by symbol (sorted) for a single file with a symbol column; and how many rows it holds."""
        where = str(part.file)
        sym_col = self.d.csv.symbol_column if len(self.files) == 1 else None
        fast = self._fast(part, sym_col)
        if fast is None:
            df = read_table(part.file, data=part.data)
            symbols = df[sym_col].astype(str).to_numpy() if sym_col in df.columns else None
            fast = (*self._checked(df, where, part.offset), symbols)
        ns, values, lines, symbols = fast
        if symbols is None:  # one series per file, named by the file
            s = self._series(part.file.stem.upper(), ns, values, lines, where)
            return ([s] if s is not None and self.picked(s.symbol) else []), len(ns)
        order = np.argsort(symbols, kind="stable")
        names, first = np.unique(symbols[order], return_index=True)
        out = []
        for name, a, b in zip(names, first, [*first[1:], len(order)]):
            if self.picked(name):
                rows = order[a:b]
                s = self._series(name, ns[rows], values[rows], lines[rows], f"{where} (symbol {name})")
                out += [s] if s is not None else []
        return out, len(ns)

    def _series(self, symbol: str, ns, values, lines, where: str) -> Series | None:
        check_order(ns, where, lines)
        a, b = np.searchsorted(ns, self.start), np.searchsorted(ns, self.end, "right")  # rising: the range's rows
        if a == b:
            return None
        return Series(symbol, ns[a:b], values[a:b], lines[a:b], where)

    def picked(self, symbol: str) -> bool:
        return self.wanted is None or symbol.upper() in self.wanted

    def check_picked(self, spans: dict) -> None:
        """Every symbol `data.instrument` lists is in the files (with bars in the data range)."""
        if self.wanted is None:
            return
        missing = sorted(self.wanted - {k.upper() for k in spans})
        if missing:
            have = sorted({f.stem.upper() for f in source_files(self.path)}) if self.path.is_dir() else []
            listed = f"; the files are {', '.join(have[:20])}{' ...' if len(have) > 20 else ''}" if have else ""
            raise KronosError(
                f"data.instrument lists {', '.join(missing[:10])}, which {self.path} has no bars of between "
                f"data.start_time and data.end_time{listed}; fix the list (or use a pool name for every symbol)"
            )

    def bar_times(self, part: Part) -> np.ndarray:
        """Every bar time of a file (or part) in the data range, from its time column alone."""
        import pyarrow as pa  # lazy: as in barfile

        table = read_typed(part.file, part.data, {self.stamps.column: pa.timestamp("ns")}, [self.stamps.column])
        ts = table.column(self.stamps.column) if table is not None and table.num_columns else None
        if ts is not None and not ts.null_count and ts.type == pa.timestamp("ns"):
            ns = ts.to_numpy().view(np.int64)
        else:
            df = read_table(part.file, usecols=[self.stamps.column], data=part.data)
            if self.stamps.column not in df.columns:
                self._checked(df, str(part.file))  # the one-line error naming the file's columns
            values = df[self.stamps.column].reset_index(drop=True)
            ns = parse_timestamps(values, str(part.file), file_lines(values.index) + part.offset, self.tz, self.stamps)
            ns = ns.asi8
        ns = ns if self.freq.intraday else ns // NS_PER_DAY * NS_PER_DAY
        return ns[(ns >= self.start) & (ns <= self.end)]

    def first_and_last(self, files: list[Path]) -> dict[Path, np.ndarray]:
        """The first and last bar times of each file (in the data range) from its first lines and its tail,
        parsed together; a file that is not simple to read that way is read by its time column."""
        quick = {f: _first_and_last(f, self.stamps.column) for f in files}
        if not self.stamps.format:
            quick = {f: None if q and any(DAY_MONTH.search(v) for v in q) else q for f, q in quick.items()}
        simple = [f for f, q in quick.items() if q]
        out: dict[Path, np.ndarray] = {}
        if simple:
            text = pd.Series([v for f in simple for v in quick[f]])
            # One parse of every file's pair when all are written alike (digits aside), else each file's alone.
            alike = text.str.replace(r"\d", "0", regex=True).nunique() == 1
            try:
                ns = parse_timestamps(text, str(self.path), tz=self.tz, spec=self.stamps).asi8 if alike else None
            except KronosError:  # a bad one: parsed alone below, for its file's message
                ns = None
            if ns is None:
                ns = np.concatenate([parse_timestamps(pd.Series(quick[f]), str(f), None, self.tz, self.stamps).asi8
                                     for f in simple])  # fmt: skip
            ns = ns if self.freq.intraday else ns // NS_PER_DAY * NS_PER_DAY
            for i, f in enumerate(simple):
                pair = ns[2 * i : 2 * i + 2]
                out[f] = pair[(pair >= self.start) & (pair <= self.end)]
        for f in files:
            if f not in out:
                out[f] = self.bar_times(Part(f, f.read_bytes()))
        return out


def _first_and_last(path: Path, ts_col: str | None) -> list[str] | None:
    """The first and last timestamps of a CSV file sorted by time, from its first lines and its tail (the span
    of a calendar that does not depend on the data needs no more); None when that is not simple to read."""
    if path.suffix.lower() != ".csv":
        return None
    with open(path, "rb") as f:
        head = [f.readline().decode("utf-8", "replace") for _ in range(2)]
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        tail = [t for t in f.read().decode("utf-8", "replace").splitlines() if t.strip()]
    sep = sniff_delimiter(path)
    names = [c.strip().strip('"') for c in head[0].rstrip("\r\n").split(sep)]
    if ts_col not in names or len(tail) < 2 or '"' in head[1] + tail[-1]:
        return None
    cells = [line.rstrip("\r\n").split(sep) for line in (head[1], tail[-1])]
    if any(len(c) != len(names) for c in cells):
        return None
    return [c[names.index(ts_col)].strip() for c in cells]
