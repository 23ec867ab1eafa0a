"""Bars stored as one file per symbol in the layout `kronos prep` reads (`data.csv.path` set to the directory):
`SYMBOL.csv` or `SYMBOL.parquet` with the columns timestamps, open, high, low, close, volume, amount, factor.

A CSV update appends the new rows under a journal (only the tail is written); a Parquet file is rewritten whole,
atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kronos_cli.core.io import atomic_path
from kronos_cli.fetch.frames import COLUMNS
from kronos_cli.fetch.journal import append_bytes, journaled, recover


class FileStore:
    def __init__(self, root: Path, fmt: str, intraday: bool) -> None:
        self.root, self.fmt, self.bytes_written = Path(root), fmt, 0
        self.stamp = "%Y-%m-%d %H:%M:%S" if intraday else "%Y-%m-%d"
        self.root.mkdir(parents=True, exist_ok=True)
        recover(self.root)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.{self.fmt}"

    def read(self, name: str) -> pd.DataFrame | None:
        p = self.path(name)
        if not p.is_file():
            return None
        df = pd.read_parquet(p) if self.fmt == "parquet" else pd.read_csv(p)
        df = df.set_index(pd.DatetimeIndex(pd.to_datetime(df["timestamps"]), name="timestamps").as_unit("ns"))
        return df.reindex(columns=list(COLUMNS)).astype("float64")

    def _text(self, df: pd.DataFrame, header: bool) -> str:
        return df.to_csv(header=header, date_format=self.stamp, lineterminator="\n")

    def put(self, name: str, stored: pd.DataFrame | None, merged: pd.DataFrame, tail: pd.DataFrame) -> None:
        """Store `merged` (which is `stored` followed by `tail`)."""
        p = self.path(name)
        if self.fmt == "csv" and stored is not None and p.is_file():
            with journaled(self.root, [p], []):
                self.bytes_written += append_bytes(p, self._text(tail, header=False).encode())
            return
        with atomic_path(p) as tmp:
            if self.fmt == "parquet":
                merged.to_parquet(tmp)
            else:
                tmp.write_text(self._text(merged, header=True))
        self.bytes_written += p.stat().st_size

    def close(self, calendar: str, members: dict | None = None) -> None:
        """Nothing is left to write: every symbol was written as it came."""
