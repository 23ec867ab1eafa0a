"""`kronos prep`: market bars into gap-aware, leak-free windows per split, stored without pickle.

A series is cut into segments wherever a bar is missing (a suspension, a hole in a CSV); windows of
lookback + predict + 1 bars never cross a segment boundary, and segments shorter than that are dropped and
counted. A window belongs to a split when its target rows (the bars after the lookback) lie inside the split's
time range; its lookback may come from earlier rows. Rows are streamed to disk a chunk of instruments at a
time, so memory grows with the chunk, not the pool.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli import __version__
from kronos_cli.bars import FEATURES
from kronos_cli.calendar import calendar_features
from kronos_cli.config import Config, section_hash
from kronos_cli.data.csv_source import CsvSource
from kronos_cli.data.qlib_source import QlibSource
from kronos_cli.data.store import FORMAT, FORMAT_VERSION, MANIFEST, SPLITS, NpyAppender
from kronos_cli.errors import KronosError
from kronos_cli.io import atomic_dir, write_json

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def open_source(cfg: Config) -> CsvSource | QlibSource:
    return CsvSource(cfg.data) if cfg.data.source == "csv" else QlibSource(cfg.data)


def segments(valid: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def dataset_hash(cfg: Config) -> str:
    """What decides whether a prepared dataset is still valid for a config."""
    data = dataclasses.replace(cfg.data, chunk_size=0, dataset_path="")
    return section_hash(data)


def prepare(cfg: Config, progress: Progress | None = None) -> dict:
    """Build the dataset at `cfg.data.dataset_path` (replacing any old one atomically); returns its manifest."""
    d = cfg.data
    t0 = time.perf_counter()
    lookback, window = d.lookback_window, d.lookback_window + d.predict_window + 1
    ranges = {s: tuple(pd.Timestamp(x).value for x in getattr(d, f"{s}_time_range")) for s in SPLITS}
    # An end date names a whole day: 2022-12-31 includes that day's intraday bars.
    ranges = {
        s: (a, b + (pd.Timedelta(days=1).value - 1 if pd.Timestamp(b).normalize().value == b else 0))
        for s, (a, b) in ranges.items()
    }
    source = open_source(cfg)
    symbols = source.symbols()
    log.info("preparing %d instruments (%s source)", len(symbols), d.source)
    target = Path(d.dataset_path)
    meta: list[dict] = []
    dropped: list[dict] = []
    counts = {s: 0 for s in SPLITS}
    spans: dict[str, list[int]] = {s: [] for s in SPLITS}
    short_segments = missing_rows = 0
    with atomic_dir(target) as tmp:
        feats = NpyAppender(tmp / "features.npy", np.float32, (len(FEATURES),))
        stamps = NpyAppender(tmp / "stamps.npy", np.int8, (5,))
        stamps_ts = NpyAppender(tmp / "timestamps.npy", np.int64)
        wins = {s: NpyAppender(tmp / f"windows_{s}.npy", np.int64, (2,)) for s in SPLITS}
        row = done = 0
        for chunk in source.chunks(symbols):
            for sym, df in chunk:
                x = df[list(FEATURES)].to_numpy(dtype=np.float64) if len(df) else np.zeros((0, len(FEATURES)))
                valid = np.isfinite(x).all(axis=1) & (x[:, :4] > 0).all(axis=1) & (x[:, 4:] >= 0).all(axis=1)
                missing_rows += int((~valid).sum())
                segs = segments(valid)
                kept = [(a, b) for a, b in segs if b - a >= window]
                short_segments += len(segs) - len(kept)
                if not kept:
                    reason = (
                        "no bars in range"
                        if not valid.any()
                        else f"no run of {window} consecutive bars (longest {max((b - a for a, b in segs), default=0)})"
                    )
                    dropped.append({"symbol": sym, "reason": reason})
                    continue
                sym_idx = len(meta)
                ts_all = pd.DatetimeIndex(df.index).as_unit("ns").asi8
                sym_rows = 0
                for a, b in kept:
                    n = b - a
                    ts = ts_all[a:b]
                    feats.append(x[a:b].astype(np.float32))
                    stamps.append(calendar_features(df.index[a:b]).astype(np.int8))
                    stamps_ts.append(ts)
                    rel = np.arange(n - window + 1)
                    first_target, last_target = ts[rel + lookback], ts[rel + window - 1]
                    for s, (lo, hi) in ranges.items():
                        sel = (first_target >= lo) & (last_target <= hi)
                        if sel.any():
                            starts = row + rel[sel]
                            wins[s].append(np.stack([starts, np.full_like(starts, sym_idx)], axis=1))
                            counts[s] += int(sel.sum())
                            spans[s] += [int(first_target[sel][0]), int(last_target[sel][-1])]
                    row += n
                    sym_rows += n
                meta.append(
                    {
                        "name": sym,
                        "rows": sym_rows,
                        "segments": len(kept),
                        "first": str(pd.Timestamp(ts_all[kept[0][0]])),
                        "last": str(pd.Timestamp(ts_all[kept[-1][1] - 1])),
                    }
                )
            done += len(chunk)
            if progress:
                progress(done, len(symbols), f"{done}/{len(symbols)} instruments")
        for appender in (feats, stamps, stamps_ts, *wins.values()):
            appender.close()
        if not meta:
            raise KronosError(
                f"no instrument has {window} consecutive bars between {d.start_time} and "
                f"{d.end_time}; widen the date range or shorten lookback/predict windows"
            )
        empty = [s for s in SPLITS if counts[s] == 0]
        if empty:
            raise KronosError(
                f"no windows fall in the {', '.join(empty)} split(s): "
                + "; ".join(f"{s}_time_range {getattr(d, f'{s}_time_range')}" for s in empty)
                + f" lies outside the data ({meta[0]['first'][:10]}..{max(m['last'] for m in meta)[:10]}) or is "
                f"shorter than the predict window; adjust the ranges"
            )
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kronos_cli": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config_hash": dataset_hash(cfg),
            "data_config": dataclasses.asdict(d),
            "features": list(FEATURES),
            "lookback_window": lookback,
            "predict_window": d.predict_window,
            "window": window,
            "clip": d.clip,
            "rows": row,
            "missing_rows": missing_rows,
            "short_segments_dropped": short_segments,
            "symbols": meta,
            "dropped": dropped,
            "splits": {
                s: {
                    "windows": counts[s],
                    "range": getattr(d, f"{s}_time_range"),
                    "first_target": str(pd.Timestamp(min(spans[s]))) if spans[s] else None,
                    "last_target": str(pd.Timestamp(max(spans[s]))) if spans[s] else None,
                }
                for s in SPLITS
            },
            "elapsed_s": round(time.perf_counter() - t0, 2),
        }
        write_json(tmp / MANIFEST, manifest)
    _warn_overlaps(d)
    log.info("dataset written to %s", target)
    return manifest


def _warn_overlaps(d) -> None:
    for a, b in (("train", "val"), ("val", "test"), ("train", "test")):
        ra, rb = getattr(d, f"{a}_time_range"), getattr(d, f"{b}_time_range")
        lo, hi = max(ra[0], rb[0]), min(ra[1], rb[1])
        if lo <= hi:
            log.warning("the %s and %s target ranges overlap (%s..%s): windows there are in both splits", a, b, lo, hi)
