"""CSV and Parquet bars into a Qlib provider, on the market's calendar.

`data.csv.path` is one file with a symbol column, or a directory of per-symbol files (the symbol is the file
name), CSV or Parquet. Each file is read once and checked line by line (`csv_files`), its bars are placed on the
expected bar grid of `data.csv.calendar` (`csv_grid`): a bar off the grid is an error naming the file and line and
the calendar the data fits; a grid bar a symbol lacks inside its span is a gap (a missing bar), optionally filled
for short runs. The result is written as a Qlib provider, which `prep` then reads like any other.

Speed: files are read, checked, placed and written by a pool of threads (pyarrow's parser, hashing, numpy and
file writes release the GIL), in order, a few files ahead of the dataset being built; files are hashed from the
bytes read for parsing. Against the last import (`csv_state`): unchanged files are not read (their field files
are linked), files that only grew are read from their first new byte and their new bars appended to a copy of
their field files; benchmarks/bench_prep_csv.py measures both against pyarrow's own read of the files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data import csv_state, provider
from kronos_cli.data.csv_files import CsvReader, Part, Series
from kronos_cli.data.csv_grid import check_bar_size, check_on_grid, check_weekends, choose_label, fill_short_gaps
from kronos_cli.data.universe import Universe
from kronos_cli.market.barfile import check_order
from kronos_cli.market.bars import FEATURES
from kronos_cli.market.sessions import exchange_tz, is_exchange, parse_freq

log = logging.getLogger(__name__)
WORKERS = min(8, os.cpu_count() or 1)


@dataclass
class ImportReport:
    """What the import did, for the manifest: the calendar, the bar label, bars, symbols, gaps, and how much
    it read (files unchanged since the last import are not read, grown ones only from their new bytes)."""

    calendar: str
    bar_label: str
    bars: int = 0
    symbols: int = 0
    missing_bars: int = 0
    filled_bars: int = 0
    files: int = 0
    files_read: int = 0
    bars_read: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Placed:
    """A symbol's bars on the calendar from index `first` (float32, as stored; NaN rows where one is missing,
    `missing` of them)."""

    symbol: str
    first: int
    bars: np.ndarray
    filled: int
    state: dict
    missing: int


@dataclass
class Imported:
    """A file's symbols on the calendar and its entry in the import state."""

    name: str
    placed: list[Placed]
    state: dict
    read: bool
    bars_read: int


def ordered(fn: Callable, items: Iterable, workers: int = WORKERS) -> Iterator:
    """fn(item) for each item, computed by a thread pool at most 2 x workers items ahead, in order."""
    with ThreadPoolExecutor(workers) as pool:
        pending = []
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.pop(0).result()
        for f in pending:
            yield f.result()


def unchanged(d: DataConfig, provider_dir: Path) -> bool:
    """Whether the source's files are those the provider at `provider_dir` was imported from, unchanged."""
    state = csv_state.load(provider_dir, d)
    if state is None:
        return False
    reader = CsvReader(d)
    if sorted(f.name for f in reader.files) != sorted(state["files"]):
        return False
    return all(csv_state.compare(f, state["files"][f.name]).status == "same" for f in reader.files)


class CsvSource:
    """A CSV or Parquet source imported into a Qlib provider at `root` while `prep` reads it: the interface of
    `QlibSource` (universe, calendar, bars, meta). The first pass reads the bar times (the calendar's span, or
    the sessions of an inferred calendar) and writes the calendar and the pool; the second reads each file
    whole (or what was appended to it since the import in `previous`), checks it, puts it on the grid, writes
    its feature bins and hands its bars on, so that memory grows with a few files, not with the market."""

    def __init__(self, d: DataConfig, root: Path, previous: Path | None = None):
        self.d, self.root, self.freq = d, root, parse_freq(d.freq)
        self.reader = CsvReader(d, exchange_tz(d.csv.calendar))
        self.previous, self.old = previous, csv_state.load(previous, d)
        self.changes = self._compare()
        self._tails: dict[Path, tuple[list[Series], int]] = {}
        ns_all, self.spans = self._scan()
        if not len(ns_all):
            raise KronosError(f"no rows in {self.reader.path} between {d.start_time} and {d.end_time}")
        self.label, self.grid = choose_label(d, self.freq, ns_all)
        self.cal = self.grid.bars(pd.Timestamp(ns_all.min()), pd.Timestamp(ns_all.max()))
        self.ns_all = ns_all
        # Every bar time; none for an exchange's calendar, which knows its weekends (and reads a directory's files
        # by their first and last bars only).
        self.seen = None if is_exchange(d.csv.calendar) else ns_all
        if self.seen is not None:
            check_weekends(self.grid, self.cal.asi8, self.seen)
        if self.old is not None and not csv_state.extends(self.old["calendar"], self.cal.asi8):
            # The calendar moved (an earlier first bar, another bar label): every bar with it, so every file is
            # imported whole; the bar times and spans are those the scan found.
            self.old, self._tails = None, {}
            self.changes = {f: csv_state.compare(f, None) for f in self.reader.files}
        self.report = ImportReport(self.grid.describe(), self.label, bars=len(self.cal), files=len(self.reader.files))
        self.meta = {"calendar": d.csv.calendar, "bar_label": self.label, "freq": self.freq.qlib, "amount": True}
        provider.write_calendar(root, self.freq.qlib, self.cal)
        pool = {s: [(pd.Timestamp(a), pd.Timestamp(b))] for s, (a, b) in self.spans.items()}
        provider.write_pool(root, provider.CSV_POOL, pool, self.freq.qlib)
        provider.write_meta(root, self.meta)

    def _compare(self) -> dict[Path, csv_state.Change]:
        """Each file against the last import; all of them `new` (a whole import) unless every recorded file is
        still there, unchanged or grown."""
        files = self.reader.files
        old = self.old["files"] if self.old is not None else {}
        changes = dict(zip(files, ordered(lambda f: csv_state.compare(f, old.get(f.name)), files)))
        kept = all(c.status in ("same", "appended", "new") for c in changes.values())
        if self.old is None or not kept or not set(old) <= {f.name for f in files}:
            self.old = None
            return {f: csv_state.compare(f, None) for f in files}
        return changes

    def _part(self, c: csv_state.Change) -> Part:
        """The bytes to read of a file: all of them, or its header line and its appended bytes."""
        if c.status != "appended":
            return Part(c.file, c.file.read_bytes())
        with open(c.file, "rb") as f:
            header = f.readline()
            f.seek(c.old["size"])
            return Part(c.file, header + f.read(), c.old["rows"], len(header))

    def _scan(self) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
        """Every bar time in range (for the calendar's span, or a calendar read from the data) and each symbol's
        first and last bar: a directory's files on an exchange's calendar by their first and last lines, else
        what is new since the last import (a single file's series are kept for the second pass)."""
        files, reader = self.reader.files, self.reader
        spans: dict[str, tuple[int, int]] = {}
        out = []
        if self.old is not None and not reader.quick:
            out.append(self.old["seen"])
            spans = {s: (v["first"], v["last"]) for f in self.old["files"].values() for s, v in f["symbols"].items()}
        if reader.quick:
            for f, ns in reader.first_and_last(files).items():
                out.append(ns)
                if len(ns):
                    spans[f.stem.upper()] = (int(ns.min()), int(ns.max()))
        else:
            todo = [c for c in self.changes.values() if c.status in ("new", "appended")]
            if len(files) == 1:
                self._tails = {c.file: reader.read(self._part(c)) for c in todo}
                times = {s.symbol: s.ns for series, _ in self._tails.values() for s in series}
            else:
                times = dict(zip((c.file.stem.upper() for c in todo), ordered(self._bar_times, todo)))
            for symbol, ns in times.items():
                out.append(ns)
                if len(ns):
                    a, b = spans.get(symbol, (int(ns[0]), int(ns[0])))
                    spans[symbol] = (min(a, int(ns.min())), max(b, int(ns.max())))
        spans = {k: v for k, v in spans.items() if self.reader.picked(k)}
        self.reader.check_picked(spans)
        ns_all = np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)
        return ns_all, dict(sorted(spans.items()))

    def _bar_times(self, c: csv_state.Change) -> np.ndarray:
        return self.reader.bar_times(self._part(c))

    def universe(self) -> Universe:
        """Every symbol, a member over its own span (a CSV carries no pool membership)."""
        return Universe({s: [(pd.Timestamp(a), pd.Timestamp(b))] for s, (a, b) in self.spans.items()})

    def calendar(self, extra: int = 0) -> tuple[pd.DatetimeIndex, int]:
        return self.cal, len(self.cal)

    def bars(self, symbols: list[str]) -> Iterator[list[tuple[str, np.ndarray, np.ndarray]]]:
        """(symbol, ns, (T, 6) bars as stored) of every wanted symbol, each file's as it is imported (at most
        `data.chunk_size` at a time): the pool reads ahead only while the symbols are taken, so the dataset is
        built from one file while the next ones are read."""
        wanted, files = set(symbols), {}
        cal = self.cal.asi8
        for done in ordered(self._import, self.changes.values()):
            files[done.name] = done.state
            self.report.files_read += done.read
            self.report.bars_read += done.bars_read
            chunk = []
            for p in done.placed:
                self.report.symbols += 1
                self.report.filled_bars += p.filled
                self.report.missing_bars += p.missing
                if p.symbol in wanted:
                    chunk.append((p.symbol, cal[p.first : p.first + len(p.bars)], p.bars))
            for i in range(0, len(chunk), self.d.chunk_size):
                yield chunk[i : i + self.d.chunk_size]
        csv_state.save(self.root, self.d, files, cal, self.ns_all)
        log.info(
            "%d symbols from %s on the %s calendar: %d bars, %d missing, %d filled; %d bars read from %d files",
            len(self.spans),
            self.reader.path,
            self.report.calendar,
            len(self.cal),
            self.report.missing_bars,
            self.report.filled_bars,
            self.report.bars_read,
            self.report.files_read,
        )

    def _import(self, c: csv_state.Change) -> Imported:
        """A file's symbols on the calendar, their bins written (or carried over and extended)."""
        old = c.old["symbols"] if self.old is not None and c.old else {}
        part = None if c.status == "same" else self._part(c)
        series, rows = self._tails.get(c.file) or (self.reader.read(part) if part is not None else ([], 0))
        by_symbol = {s.symbol: s for s in series}
        placed = []
        for symbol in sorted({*old, *by_symbol}):  # a single file's symbols in order, as it is read whole
            s, before = by_symbol.get(symbol), old.get(symbol)
            placed.append(self._place(s) if before is None else self._extend(symbol, before, s))
        if part is None:
            return Imported(c.file.name, placed, {**c.old, "mtime_ns": c.mtime_ns}, False, 0)
        digest = c.prefix if c.status == "appended" else hashlib.sha256()
        digest.update(memoryview(part.data)[part.skip :])  # the bytes read for parsing, hashed once
        size = (c.old["size"] if c.status == "appended" else 0) + len(part.data) - part.skip
        symbols = {p.symbol: p.state for p in placed}
        ends = part.data.endswith(b"\n")
        state = csv_state.file_state(size, c.mtime_ns, digest.hexdigest(), rows + part.offset, ends, symbols)
        return Imported(c.file.name, placed, state, True, sum(len(s.ns) for s in series))

    def _place(self, s: Series) -> Placed:
        """A series on the grid over its span (NaN rows where a bar is missing), its bins written."""
        check_bar_size(s, self.freq)
        pos = check_on_grid(s, self.cal.asi8, self.grid, self.seen)
        first, last = int(pos[0]), int(pos[-1])
        values, filled = s.values, 0  # no bar missing: the series is its run of the grid as it is
        if last - first + 1 > len(pos):
            values = np.full((last - first + 1, len(FEATURES)), np.nan, dtype=np.float32)
            values[pos - first] = s.values
            filled = int(fill_short_gaps(values, self.d.csv.fill_gaps))
        stored = provider.write_bars(self.root, s.symbol, self.freq.qlib, first, values)
        state = {"first": int(s.ns[0]), "last": int(s.ns[-1]), "last_line": int(s.lines[-1]), "filled": filled}
        return Placed(s.symbol, first, stored, filled, state, len(values) - len(pos) - filled)

    def _extend(self, symbol: str, before: dict, s: Series | None) -> Placed:
        """A symbol of the last import: its bins carried over, and the bars of `s` (read from the bytes
        appended since) placed after its last one and appended to them, as a whole import would write them."""
        provider.carry_bars(self.previous, self.root, symbol, self.freq.qlib, append=s is not None)
        first, stored = provider.read_bars(self.root, symbol, self.freq.qlib)
        if s is None:
            return Placed(symbol, first, stored, before["filled"], before, int(np.isnan(stored[:, 3]).sum()))
        end = first + len(stored) - 1  # the stored last bar's index
        seam = Series(symbol, np.r_[before["last"], s.ns], s.values, np.r_[before["last_line"], s.lines], s.where)
        check_order(seam.ns[:2], seam.where, seam.lines[:2])  # the first new bar after the last old one
        check_bar_size(seam, self.freq)
        pos = check_on_grid(s, self.cal.asi8, self.grid, self.seen)
        values = np.full((int(pos[-1]) - end + 1, len(FEATURES)), np.nan, dtype=np.float32)
        values[0], values[pos - end] = stored[-1], s.values
        filled = int(fill_short_gaps(values, self.d.csv.fill_gaps))
        new = provider.write_bars(self.root, symbol, self.freq.qlib, first, values[1:], before=stored[-1])
        state = {**before, "last": int(s.ns[-1]), "last_line": int(s.lines[-1]), "filled": before["filled"] + filled}
        bars = np.concatenate([stored, new])
        return Placed(symbol, first, bars, state["filled"], state, int(np.isnan(bars[:, 3]).sum()))
