"""Bars stored as a Qlib provider directory (`data.source: qlib`, `data.provider_uri` set to it), written with the
project's one provider writer (`data.provider`): calendar, the `all` pool (plus an index's point-in-time pool where
the source knows it), feature bins with `$factor`, and `kronos_provider.json` naming the market calendar.

The symbols of a fetch are written together when it ends. When the calendar only grows at its end, each feature bin
gets its new values appended under a journal (the tail is all that is written); otherwise (a symbol older than the
calendar's start, a symbol downloaded whole again (`refresh`), a first fetch) the provider is written whole into
a new directory that replaces the old one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir, json_text, recover_dir, write_text
from kronos_cli.data import provider
from kronos_cli.fetch.frames import COLUMNS
from kronos_cli.fetch.journal import append_bytes, journaled, recover
from kronos_cli.market.sessions import BarFreq

POOL = provider.CSV_POOL  # every symbol, over its own span


class QlibStore:
    def __init__(self, root: Path, freq: BarFreq, meta: dict) -> None:
        self.root, self.freq, self.meta, self.bytes_written = recover_dir(Path(root)), freq, meta, 0
        self.updates: dict[str, tuple[pd.DataFrame | None, pd.DataFrame]] = {}
        if self.root.is_dir() and any(self.root.iterdir()):
            if "source" not in provider.provider_meta(self.root):  # only what a fetch wrote is rewritten
                raise KronosError(
                    f"{self.root} is not empty and holds no provider `kronos fetch` wrote; fetch into an empty or "
                    f"new directory (out)",
                    setting="out",
                )
            recover(self.root)
        self.calendar = self._read_calendar()

    def _cal_path(self, root: Path | None = None) -> Path:
        return (root or self.root) / "calendars" / f"{self.freq.qlib}.txt"

    def _read_calendar(self) -> pd.DatetimeIndex:
        p = self._cal_path()
        if not p.is_file():
            return pd.DatetimeIndex([])
        return pd.DatetimeIndex(pd.to_datetime(p.read_text().split("\n")[:-1])).as_unit("ns")

    def _bin(self, name: str, field: str, root: Path | None = None) -> Path:
        return (root or self.root) / "features" / name.lower() / f"{field}.{self.freq.qlib}.bin"

    def spans(self) -> dict[str, list[tuple]]:
        """The symbols stored and their spans, as the `all` pool lists them."""
        p = self.root / "instruments" / f"{POOL}.txt"
        rows = [line.split("\t") for line in p.read_text().splitlines() if line] if p.is_file() else []
        return {r[0]: [(pd.Timestamp(r[1]), pd.Timestamp(r[2]))] for r in rows}

    def read(self, name: str) -> pd.DataFrame | None:
        if not self._bin(name, "close").is_file():
            return None
        cols = {}
        for field in COLUMNS:
            raw = np.fromfile(self._bin(name, field), dtype="<f4")
            first, cols[field] = int(raw[0]), raw[1:].astype(np.float64)
        index = self.calendar[first : first + len(cols["close"])]
        df = pd.DataFrame(cols, index=index, columns=list(COLUMNS))
        df.index.name = "timestamps"
        return df[np.isfinite(df["close"].to_numpy())]

    def put(self, name: str, stored: pd.DataFrame | None, merged: pd.DataFrame, tail: pd.DataFrame) -> None:
        self.updates[name] = (stored, merged)

    def close(self, grid: pd.DatetimeIndex, members: dict[str, list[tuple]] | None = None) -> None:
        """Write every update; `grid` is the market's bars over the fetched span, `members` an index's pool."""
        if not self.updates and members is None:
            return
        spans = [df.index for _, df in self.updates.values()] + [self.calendar, grid]
        cal = pd.DatetimeIndex(np.unique(np.concatenate([s.as_unit("ns").asi8 for s in spans if len(s)])))
        old = self.calendar
        replaced = any(stored is None and self._bin(n, "close").is_file() for n, (stored, _) in self.updates.items())
        if len(old) and cal[: len(old)].equals(old) and not replaced:  # a refreshed symbol is rewritten whole
            self._append(cal, members)
        else:
            self._rewrite(cal, members)
        self.calendar = cal

    def _fields(self, values: np.ndarray) -> dict[str, np.ndarray]:
        fields = provider.qlib_fields(values[:, :6])
        fields["factor"] = values[:, 6]
        return fields

    def _on(self, cal: pd.DatetimeIndex, df: pd.DataFrame) -> tuple[int, np.ndarray]:
        """A series on the calendar from its first bar: its first index and (T, 7) values, NaN where no bar."""
        pos = cal.get_indexer(df.index)
        values = np.full((pos[-1] - pos[0] + 1, len(COLUMNS)), np.nan)
        values[pos - pos[0]] = df[list(COLUMNS)].to_numpy()
        return int(pos[0]), values

    def _small_files(self, root: Path, cal: pd.DatetimeIndex, members) -> dict[Path, str]:
        """The calendar and pools as text (under `root`), to be written with the bins."""
        spans = self.spans()
        spans.update({n: [(m.index[0], m.index[-1])] for n, (_, m) in self.updates.items()})
        with tempfile.TemporaryDirectory() as staging:
            provider.write_calendar(Path(staging), self.freq.qlib, cal)
            provider.write_pool(Path(staging), POOL, dict(sorted(spans.items())), self.freq.qlib)
            if members:
                provider.write_pool(Path(staging), members["name"], members["spans"], self.freq.qlib)
            return {root / p.relative_to(staging): p.read_text() for p in sorted(Path(staging).rglob("*.txt"))}

    def _append(self, cal: pd.DatetimeIndex, members) -> None:
        small = self._small_files(self.root, cal, members)
        bins = [self._bin(n, f) for n in self.updates for f in provider.qlib_fields(np.zeros((0, 6)))]
        with journaled(self.root, sorted(set(bins)), list(small)):
            for name, (stored, merged) in self.updates.items():
                self._append_one(cal, name, stored, merged)
            for path, text in small.items():
                write_text(path, text)
                self.bytes_written += len(text.encode())
            write_text(self.root / provider.PROVIDER_META, json_text(self.meta))

    def _append_one(self, cal: pd.DatetimeIndex, name: str, stored: pd.DataFrame | None, merged: pd.DataFrame) -> None:
        first, values = self._on(cal, merged)
        if stored is None or not self._bin(name, "close").is_file():
            provider.write_series(self.root, name, self.freq.qlib, first, self._fields(values))
            self.bytes_written += sum(p.stat().st_size for p in self._bin(name, "close").parent.iterdir())
            return
        have = (self._bin(name, "close").stat().st_size - 4) // 4  # values stored after the first index
        if have >= len(values):
            return
        fields = self._fields(values[max(have - 1, 0) :])  # one stored row before: the change needs its close
        for field, v in fields.items():
            data = np.asarray(v[1 if have else 0 :], dtype="<f4").tobytes()
            self.bytes_written += append_bytes(self._bin(name, field), data)

    def _rewrite(self, cal: pd.DatetimeIndex, members) -> None:
        every = {n: self.read(n) for n in self.spans() if n not in self.updates}
        every.update({n: m for n, (_, m) in self.updates.items()})
        with atomic_dir(self.root) as tmp:
            for name, df in every.items():
                if df is not None and len(df):
                    first, values = self._on(cal, df)
                    provider.write_series(tmp, name, self.freq.qlib, first, self._fields(values))
            for path, text in self._small_files(tmp, cal, members).items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            if members is None and (self.root / "instruments").is_dir():  # keep a pool written by an earlier fetch
                for p in (self.root / "instruments").glob("*.txt"):
                    if p.name != f"{POOL}.txt":
                        (tmp / "instruments" / p.name).write_text(p.read_text())
            (tmp / provider.PROVIDER_META).write_text(json_text(self.meta))
            self.bytes_written += sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
