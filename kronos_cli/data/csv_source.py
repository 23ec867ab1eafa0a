"""CSV and Parquet bars into a Qlib provider, on the market's calendar.

`data.csv.path` is one file with a symbol column, or a directory of per-symbol files (the symbol is the file
name), CSV or Parquet. Each file is read once and checked line by line (`barfile`), its bars are placed on the
expected bar grid of `data.csv.calendar` (`sessions`): a bar off the grid (at night on XSHG, a bar size that does
not match `data.freq`) is an error naming the file and line and the calendar the data fits; a grid bar a symbol
lacks inside its span is a gap (a missing bar), optionally filled for short runs. A calendar that opens weekends
the data closes (24/7 for forex bars) is an error before anything is written. The result is written as a Qlib
provider, which `prep` then reads like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data import provider
from kronos_cli.data.universe import Universe
from kronos_cli.market.barfile import (
    DAY_MONTH,
    TimestampSpec,
    check_column,
    check_order,
    file_lines,
    parse_timestamps,
    read_table,
    sniff_delimiter,
)
from kronos_cli.market.bars import ALIASES, FEATURES, PRICE_COLUMNS, amount_from_volume, canonical
from kronos_cli.market.sessions import (
    NS_PER_DAY,
    BarFreq,
    InferredGrid,
    SessionGrid,
    bars_per_day,
    canonical_calendar,
    exchange_tz,
    fitted_grid,
    infer_calendar,
    is_exchange,
    parse_freq,
    weekend_gap,
)
from kronos_cli.market.stamps import range_end

log = logging.getLogger(__name__)
SUFFIXES = (".csv", ".parquet")
# A file's column for each feature when `data.csv.columns` does not map it: our name, then the reference's.
CANDIDATES = {f: (f, *(k for k, v in ALIASES.items() if v == f)) for f in FEATURES}


@dataclass
class Series:
    """One symbol's bars as read: wall-clock ns, (T, 6) values in FEATURES order, and where each came from."""

    symbol: str
    ns: np.ndarray
    values: np.ndarray
    lines: np.ndarray
    where: str


@dataclass
class ImportReport:
    """What the import did, for the manifest: the calendar, the bar label, bars, symbols, gaps."""

    calendar: str
    bar_label: str
    bars: int = 0
    symbols: int = 0
    missing_bars: int = 0
    filled_bars: int = 0
    files: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


def source_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise KronosError(f"{path} holds no .csv or .parquet files")
        return files
    if path.is_file():
        return [path]
    raise KronosError(f"no CSV file or directory at {path} (data.csv.path)")


class CsvReader:
    """Reads the files of `data.csv.path` into Series, one file at a time."""

    def __init__(self, d: DataConfig, tz=None):
        self.d, self.tz = d, tz
        self.path = Path(d.csv.path).expanduser()
        self.files = source_files(self.path)
        # `data.instrument` as a list picks symbols (a file's stem, or a symbol column's value; any case)
        self.wanted = {str(x).upper() for x in d.instrument} if isinstance(d.instrument, list) else None
        if self.wanted is not None and len(self.files) > 1:
            self.files = [f for f in self.files if f.stem.upper() in self.wanted] or self.files[:0]
        self.freq = parse_freq(d.freq)
        self.start, self.end = pd.Timestamp(d.start_time), range_end(d.end_time)
        self.stamps = TimestampSpec(
            d.csv.columns.get("timestamps", d.csv.timestamp_column),
            d.csv.timestamp_format,
            "data.csv.timestamp_column",
            "data.csv.timestamp_format",
        )
        self._cached: pd.DataFrame | None = None

    def _column(self, df: pd.DataFrame, ours: str, where: str, required: bool) -> str | None:
        mapping = {canonical(k): v for k, v in self.d.csv.columns.items()}
        candidates = [mapping[ours]] if ours in mapping else list(CANDIDATES[ours])
        for c in candidates:
            if c in df.columns:
                return c
        if required:
            raise KronosError(
                f"{where} lacks the column {candidates[0]!r} for {ours} (columns: {', '.join(map(str, df.columns))})"
                f"; map it with data.csv.columns.{ours}=NAME"
            )
        return None

    def _checked(self, df: pd.DataFrame, where: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
        """Timestamps, values and file lines of a whole file, every value checked."""
        ts_col = self.stamps.column
        if ts_col not in df.columns:
            raise KronosError(
                f"{where} lacks the timestamp column {ts_col!r} (columns: {', '.join(map(str, df.columns))}); "
                f"set data.csv.timestamp_column"
            )
        lines = file_lines(pd.RangeIndex(len(df)))
        idx = parse_timestamps(df[ts_col].reset_index(drop=True), where, lines, tz=self.tz, spec=self.stamps)
        cols = {ours: self._column(df, ours, where, ours in PRICE_COLUMNS) for ours in FEATURES}
        values = np.full((len(df), len(FEATURES)), np.nan)
        for i, (ours, theirs) in enumerate(cols.items()):
            if theirs is not None:
                values[:, i] = check_column(
                    df[theirs].reset_index(drop=True), theirs, where, lines, ours in PRICE_COLUMNS
                )
        if cols["volume"] is None:
            values[:, 4] = 0.0
        if cols["amount"] is None:
            values[:, 5] = amount_from_volume(values[:, :4], values[:, 4])
        if not self.freq.intraday:
            idx = idx.normalize()
        return idx, values, lines

    def _series(self, symbol: str, idx, values, lines, where: str) -> Series | None:
        check_order(idx, where, lines)
        keep = (idx >= self.start) & (idx <= self.end)
        if not keep.any():
            return None
        return Series(symbol, idx.asi8[keep], values[keep], lines[keep], where)

    def series(self) -> Iterator[Series]:
        for file in self.files:
            df = self._cached if self._cached is not None else read_table(file)
            sym_col = self.d.csv.symbol_column
            idx, values, lines = self._checked(df, str(file))
            if len(self.files) > 1 or sym_col not in df.columns:  # one series per file, named by the file
                s = self._series(file.stem.upper(), idx, values, lines, str(file))
                if s is not None and self.picked(s.symbol):
                    yield s
                continue
            symbols = df[sym_col].astype(str).to_numpy()
            order = np.argsort(symbols, kind="stable")
            names, first = np.unique(symbols[order], return_index=True)
            for name, a, b in zip(names, first, [*first[1:], len(order)]):
                if not self.picked(name):
                    continue
                rows = order[a:b]
                s = self._series(name, idx[rows], values[rows], lines[rows], f"{file} (symbol {name})")
                if s is not None:
                    yield s

    def scan(self) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
        """Every bar time in range (for the calendar's span, or a calendar inferred from the data) and each
        symbol's first and last bar: one file is read whole (and kept for `series`), a directory's files only
        their time column."""
        ts_col = self.stamps.column
        sym_col = self.d.csv.symbol_column
        single = len(self.files) == 1
        if single:
            self._cached = read_table(self.files[0])
        out, spans = [], {}
        for file in self.files:
            # An exchange's grid needs only the span; the others are fitted to (or checked against) every bar.
            quick = _first_and_last(file, ts_col) if not single and is_exchange(self.d.csv.calendar) else None
            if quick and not self.stamps.format and any(DAY_MONTH.search(q) for q in quick):
                quick = None  # the whole column decides whether the day or the month comes first
            df = self._cached if single else pd.DataFrame({ts_col: quick}) if quick else None
            if df is None:
                df = read_table(file, usecols=[ts_col])
            if ts_col not in df.columns:
                self._checked(df, str(file))  # the one-line error naming the file's columns
            idx = parse_timestamps(df[ts_col].reset_index(drop=True), str(file), tz=self.tz, spec=self.stamps)
            idx = idx if self.freq.intraday else idx.normalize()
            keep = (idx >= self.start) & (idx <= self.end)
            ns = idx.asi8[keep]
            out.append(ns)
            if single and sym_col in df.columns:
                sym = df[sym_col].astype(str).to_numpy()
                if self.wanted is not None:
                    keep &= np.isin(np.char.upper(sym.astype(str)), list(self.wanted))
                    ns = idx.asi8[keep]
                    out[-1] = ns
                sym = sym[keep]
                frame = pd.DataFrame({"s": sym, "t": ns}).groupby("s")["t"].agg(["min", "max"])
                spans.update({str(k): (int(a), int(b)) for k, a, b in frame.itertuples()})
            elif len(ns):
                spans[file.stem.upper()] = (int(ns.min()), int(ns.max()))
        if self.wanted is not None:
            spans = {k: v for k, v in spans.items() if self.picked(k)}
            self._check_picked(spans)
        ns_all = np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)
        return ns_all, dict(sorted(spans.items()))

    def picked(self, symbol: str) -> bool:
        return self.wanted is None or symbol.upper() in self.wanted

    def _check_picked(self, spans: dict) -> None:
        """Every symbol `data.instrument` lists is in the files (with bars in the data range)."""
        missing = sorted(self.wanted - {k.upper() for k in spans})
        if missing:
            have = sorted({f.stem.upper() for f in source_files(self.path)}) if self.path.is_dir() else []
            listed = f"; the files are {', '.join(have[:20])}{' ...' if len(have) > 20 else ''}" if have else ""
            raise KronosError(
                f"data.instrument lists {', '.join(missing[:10])}, which {self.path} has no bars of between "
                f"data.start_time and data.end_time{listed}; fix the list (or use a pool name for every symbol)"
            )


def _first_and_last(path: Path, ts_col: str) -> list[str] | None:
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


def check_bar_size(s: Series, freq: BarFreq) -> None:
    """Consecutive bars of one day are `freq` apart (or a multiple of it: a missing bar)."""
    if not freq.intraday or len(s.ns) < 2:
        if not freq.intraday and len(s.ns) > 1 and (np.diff(s.ns) == 0).any():
            i = int(np.argmax(np.diff(s.ns) == 0)) + 1
            raise KronosError(
                f"{s.where} lines {s.lines[i - 1]} and {s.lines[i]} are two bars on {pd.Timestamp(s.ns[i]):%Y-%m-%d}"
                f" but data.freq is day: intraday bars? set data.freq to their bar size"
            )
        return
    steps = np.diff(s.ns)
    same_day = (s.ns[1:] // NS_PER_DAY) == (s.ns[:-1] // NS_PER_DAY)
    inside = steps[same_day]
    if not len(inside):
        return
    sizes, counts = np.unique(inside, return_counts=True)
    common = pd.Timedelta(int(sizes[np.argmax(counts)]), "ns")
    if common != freq.step:
        raise KronosError(
            f"{s.where} holds bars {_minutes(common)} apart (its most common step) but data.freq is {freq}; set "
            f"data.freq to the file's bar size"
        )
    odd = same_day & (steps % freq.step.value != 0)
    if odd.any():
        i = int(np.argmax(odd)) + 1
        raise KronosError(
            f"{s.where} line {s.lines[i]}: the bar at {pd.Timestamp(s.ns[i])} comes {_minutes(steps[i - 1])} after "
            f"the one before, not a multiple of {freq}: mixed bar sizes; keep one bar size per file"
        )


def _minutes(ns) -> str:
    return f"{pd.Timedelta(int(getattr(ns, 'value', ns)), 'ns').total_seconds() / 60:g}min"


def choose_label(d: DataConfig, freq: BarFreq, ns: np.ndarray) -> tuple[str, SessionGrid]:
    """The calendar's grid in the convention the bars fit (the bar label unless the config names it; for forex,
    the vendor's clock), and its bar label."""
    grid = fitted_grid(d.csv.calendar, freq, ns, d.csv.bar_label)
    return grid.label, grid


def fitting_calendar(freq: BarFreq, seen: np.ndarray, used: SessionGrid) -> str | None:
    """What to set for data that does not fit the calendar `used`: the calendar the bar times `seen` fit
    (`sessions.infer_calendar`: 24/7, forex, a known exchange, else what `infer` finds); None when that is `used`."""
    found = infer_calendar(freq, seen)
    if canonical_calendar(found.name) == canonical_calendar(used.name):
        return None
    if isinstance(found, InferredGrid):
        return f"set data.csv.calendar to infer (it finds {found.describe()})"
    return f"the data fits {found.describe()}: set data.csv.calendar to {found.name} (or infer)"


def check_on_grid(s: Series, grid_ns: np.ndarray, grid: SessionGrid, seen: np.ndarray | None = None) -> np.ndarray:
    """Each bar's position on the grid; a bar off it is a one-line error saying which calendar the bar times
    `seen` (all the data's, else the series') fit."""
    pos = np.searchsorted(grid_ns, s.ns)
    ok = (pos < len(grid_ns)) & (grid_ns[np.minimum(pos, len(grid_ns) - 1)] == s.ns)
    if not ok.all():
        i = int(np.argmax(~ok))
        hint = fitting_calendar(grid.freq, s.ns if seen is None else seen, grid)
        raise KronosError(
            f"{s.where} line {s.lines[i]}: a bar at {pd.Timestamp(s.ns[i])} is not a bar of the {grid.describe()} "
            f"calendar (at night, on a holiday or weekend, in a lunch break, or off the bar size); "
            + (hint or "the rest of the data fits that calendar: fix or drop that line, or set data.csv.bar_label")
        )
    return pos


def check_weekends(grid: SessionGrid, grid_ns: np.ndarray, seen: np.ndarray) -> None:
    """A calendar that opens the weekends the data closes (24/7 for forex or stocks) would count every weekend
    as missing bars: a one-line error naming the calendar that fits instead (none: the missing bars count)."""
    gap = weekend_gap(seen, grid_ns)
    per_day = bars_per_day(pd.DatetimeIndex(grid_ns))
    if gap is None or gap[1] <= 0.75 or gap[0] < max(4, 2 * per_day):  # a few empty weekends: ordinary gaps
        return
    hint = fitting_calendar(grid.freq, seen, grid)
    if hint is not None:
        raise KronosError(
            f"the data closes on weekends, which the {grid.describe()} calendar (data.csv.calendar) would count as "
            f"missing bars ({gap[0]:,} weekend bars in the data's span); {hint}"
        )


def fill_short_gaps(values: np.ndarray, limit: int) -> int:
    """Fill runs of at most `limit` missing rows in place: OHLC at the last close, zero volume and amount."""
    missing = np.isnan(values[:, 3])
    if limit <= 0 or not missing.any():
        return 0
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    filled = 0
    for a, b in zip(edges[0::2], edges[1::2]):
        if b - a <= limit and a > 0:
            values[a:b, :4] = values[a - 1, 3]
            values[a:b, 4:] = 0.0
            filled += b - a
    return filled


class CsvSource:
    """A CSV or Parquet source imported into a Qlib provider at `root` while `prep` reads it: the interface of
    `QlibSource` (universe, calendar, chunks, meta). The first pass reads every bar time (the calendar's span,
    or the sessions of an inferred calendar) and writes the calendar and the pool; the second reads each file
    whole, checks it, puts it on the grid, writes its feature bins and hands its frame on, so that memory grows
    with a file, not with the market."""

    def __init__(self, d: DataConfig, root: Path):
        self.d, self.root, self.freq = d, root, parse_freq(d.freq)
        self.reader = CsvReader(d, exchange_tz(d.csv.calendar))
        ns_all, self.spans = self.reader.scan()
        if not len(ns_all):
            raise KronosError(f"no rows in {self.reader.path} between {d.start_time} and {d.end_time}")
        self.label, self.grid = choose_label(d, self.freq, ns_all)
        self.cal = self.grid.bars(pd.Timestamp(ns_all.min()), pd.Timestamp(ns_all.max()))
        # Every bar time; none for an exchange's calendar, which knows its weekends (and reads a directory's files
        # by their first and last bars only).
        self.seen = None if is_exchange(d.csv.calendar) else ns_all
        if self.seen is not None:
            check_weekends(self.grid, self.cal.asi8, self.seen)
        self.report = ImportReport(self.grid.describe(), self.label, bars=len(self.cal), files=len(self.reader.files))
        self.meta = {"calendar": d.csv.calendar, "bar_label": self.label, "freq": self.freq.qlib, "amount": True}
        provider.write_calendar(root, self.freq.qlib, self.cal)
        pool = {s: [(pd.Timestamp(a), pd.Timestamp(b))] for s, (a, b) in self.spans.items()}
        provider.write_pool(root, provider.CSV_POOL, pool, self.freq.qlib)
        provider.write_meta(root, self.meta)

    def universe(self) -> Universe:
        """Every symbol, a member over its own span (a CSV carries no pool membership)."""
        return Universe({s: [(pd.Timestamp(a), pd.Timestamp(b))] for s, (a, b) in self.spans.items()})

    def calendar(self, extra: int = 0) -> tuple[pd.DatetimeIndex, int]:
        return self.cal, len(self.cal)

    def chunks(self, symbols: list[str]) -> Iterator[list[tuple[str, pd.DataFrame]]]:
        wanted, chunk = set(symbols), []
        for s in self.reader.series():
            if s.symbol in wanted:
                chunk.append((s.symbol, self._place(s)))
            if len(chunk) >= self.d.chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        log.info(
            "%d symbols from %s on the %s calendar: %d bars, %d missing, %d filled",
            len(self.spans),
            self.reader.path,
            self.report.calendar,
            len(self.cal),
            self.report.missing_bars,
            self.report.filled_bars,
        )

    def _place(self, s: Series) -> pd.DataFrame:
        """The series on the grid over its span (NaN rows where a bar is missing), its bins written."""
        check_bar_size(s, self.freq)
        pos = check_on_grid(s, self.cal.asi8, self.grid, self.seen)
        first, last = int(pos[0]), int(pos[-1])
        values = np.full((last - first + 1, len(FEATURES)), np.nan)
        values[pos - first] = s.values
        filled = fill_short_gaps(values, self.d.csv.fill_gaps)
        self.report.filled_bars += filled
        self.report.missing_bars += int(np.isnan(values[:, 3]).sum())
        provider.write_series(self.root, s.symbol, self.freq.qlib, first, provider.qlib_fields(values))
        self.report.symbols += 1
        return pd.DataFrame(values, index=self.cal[first : last + 1], columns=list(FEATURES))
