"""Reading bars from CSV: one file with a symbol column, or a directory of per-symbol files, any bar frequency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.barfile import check_column, check_timestamps, file_lines, read_table
from kronos_cli.bars import ALIASES, FEATURES, PRICE_COLUMNS, amount_from_volume, canonical
from kronos_cli.calendar import range_end
from kronos_cli.config import DataConfig
from kronos_cli.data.universe import Universe
from kronos_cli.errors import KronosError

# A file's column for each feature when `data.csv.columns` does not map it: our name, then the reference's.
CANDIDATES = {f: (f, *(k for k, v in ALIASES.items() if v == f)) for f in FEATURES}


class CsvSource:
    """Bars per symbol over the union calendar of all symbols; a symbol's missing bars become NaN rows (gaps)."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.path = Path(cfg.csv.path).expanduser()
        if self.path.is_dir():
            self.files = sorted(self.path.glob("*.csv"))
            if not self.files:
                raise KronosError(f"{self.path} holds no .csv files")
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise KronosError(f"no CSV file or directory at {self.path} (data.csv.path)")
        self.frames = self._read_all()
        if not self.frames:
            raise KronosError(f"no rows in {self.path} between {cfg.start_time} and {cfg.end_time}")

    def _column(self, df: pd.DataFrame, ours: str, where: str, required: bool) -> str | None:
        mapping = {canonical(k): v for k, v in self.cfg.csv.columns.items()}
        candidates = [mapping[ours]] if ours in mapping else list(CANDIDATES[ours])
        for c in candidates:
            if c in df.columns:
                return c
        if required:
            raise KronosError(
                f"{where} lacks the column {candidates[0]!r} for {ours}; map it with data.csv.columns.{ours}=NAME"
            )
        return None

    def _clean(self, df: pd.DataFrame, where: str) -> pd.DataFrame:
        ts_col = self.cfg.csv.columns.get("timestamps", self.cfg.csv.timestamp_column)
        if ts_col not in df.columns:
            raise KronosError(f"{where} lacks the timestamp column {ts_col!r}; set data.csv.timestamp_column")
        cols = {ours: self._column(df, ours, where, ours in PRICE_COLUMNS) for ours in FEATURES}
        lines = file_lines(df.index)
        out = pd.DataFrame(index=check_timestamps(df[ts_col], where, lines))
        for ours, theirs in cols.items():
            if theirs is not None:
                out[ours] = check_column(df[theirs], theirs, where, lines, price=ours in PRICE_COLUMNS)
        if "volume" not in out:
            out["volume"] = 0.0
        if "amount" not in out:
            out["amount"] = amount_from_volume(out[list(PRICE_COLUMNS)].to_numpy(), out["volume"].to_numpy())
        start, end = pd.Timestamp(self.cfg.start_time), range_end(self.cfg.end_time)
        return out[(out.index >= start) & (out.index <= end)][list(FEATURES)]

    def _read_all(self) -> dict[str, pd.DataFrame]:
        frames: dict[str, pd.DataFrame] = {}
        if len(self.files) == 1 and self.path.is_file():
            df = read_table(self.path)
            sym_col = self.cfg.csv.symbol_column
            if sym_col not in df.columns:  # one series in one file
                frames[self.path.stem.upper()] = self._clean(df, str(self.path))
            else:
                for sym, part in df.groupby(sym_col, sort=True):
                    frames[str(sym)] = self._clean(part, f"{self.path} (symbol {sym})")
        else:
            for file in self.files:
                frames[file.stem.upper()] = self._clean(read_table(file), str(file))
        return {s: f for s, f in frames.items() if len(f)}

    def universe(self) -> Universe:
        """Every symbol of the files, a member throughout (a CSV carries no pool membership)."""
        return Universe.always(sorted(self.frames), self.cfg.start_time, self.cfg.end_time)

    def calendar(self, extra: int = 0) -> tuple[pd.DatetimeIndex, int]:
        """Every timestamp any symbol has (the files' own calendar); nothing is known beyond the data."""
        cal = pd.DatetimeIndex(sorted(set().union(*(f.index for f in self.frames.values()))))
        return cal, len(cal)

    def chunks(self, symbols: list[str]) -> Iterator[list[tuple[str, pd.DataFrame]]]:
        calendar = self.calendar()[0]
        max_gap = pd.Timedelta(self.cfg.csv.max_gap) if self.cfg.csv.max_gap else None
        for i in range(0, len(symbols), self.cfg.chunk_size):
            out = []
            for sym in symbols[i : i + self.cfg.chunk_size]:
                f = self.frames[sym]
                span = calendar[(calendar >= f.index[0]) & (calendar <= f.index[-1])]
                g = f.reindex(span)  # bars other symbols have and this one lacks become NaN rows
                if max_gap is not None:
                    gap_after = np.diff(span.as_unit("ns").asi8) > max_gap.value
                    g = _insert_breaks(g, gap_after)
                out.append((sym, g))
            yield out


def _insert_breaks(df: pd.DataFrame, gap_after: np.ndarray) -> pd.DataFrame:
    """Add a NaN row after each row followed by a too-long step, so the series splits there."""
    if not gap_after.any():
        return df
    idx = np.flatnonzero(gap_after)
    breaks = pd.DataFrame(np.nan, index=df.index[idx] + pd.Timedelta(1, "ns"), columns=df.columns)
    return pd.concat([df, breaks]).sort_index()
