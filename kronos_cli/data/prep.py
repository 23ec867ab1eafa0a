"""`kronos prep`: market bars into gap-aware, point-in-time windows per split, stored without pickle.

A series is cut into segments wherever a bar is missing (a suspension, a hole in a CSV). Two kinds of window
are cut from the segments:
- training windows of lookback + predict + 1 consecutive bars, in a split when the bars after the lookback
  (its targets) lie in the split's range (after the embargo) and, with `data.universe: point_in_time`, the stock
  is a pool member on its last lookback bar;
- signal origins (val and test): every bar of a pool member that ends `lookback` consecutive bars, whether or not
  later bars exist, so that a signal never depends on the future.
Rows are streamed to disk a chunk of instruments at a time, so memory grows with the chunk, not the pool.
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
from kronos_cli.config import Config, DataConfig, section_hash
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir
from kronos_cli.core.tables import Table
from kronos_cli.data.csv_source import CsvSource
from kronos_cli.data.manifest import ARRAYS, FORMAT, FORMAT_VERSION, ORIGIN_SPLITS, SPLITS, write_manifest
from kronos_cli.data.provider import PROVIDER_DIR, continue_calendar
from kronos_cli.data.qlib_source import QlibSource
from kronos_cli.data.splits import SplitRange, embargo_bars, plan_splits
from kronos_cli.data.store import NpyAppender
from kronos_cli.data.universe import Universe
from kronos_cli.market.bars import FEATURES, reconcile_candles
from kronos_cli.market.stamps import calendar_features

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def open_source(cfg: Config, directory: Path) -> QlibSource | CsvSource:
    """The configured Qlib provider, or a CSV or Parquet source that is written as a Qlib provider into
    `directory`/qlib (on the market's calendar) as it is read."""
    d = cfg.data
    return CsvSource(d, directory / PROVIDER_DIR) if d.source == "csv" else QlibSource(d)


def segments(valid: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True."""
    padded = np.concatenate([[False], valid, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def dataset_hash(cfg: Config) -> str:
    """What decides whether a prepared dataset is still valid for a config: its data section and the dataset
    format (a newer format makes `kronos pipeline` prepare the data again)."""
    data = dataclasses.replace(cfg.data, chunk_size=0, dataset_path="")
    return f"{section_hash(data)[:12]}v{FORMAT_VERSION}"


def market_calendar(source: QlibSource | CsvSource, predict: int) -> tuple[np.ndarray, dict]:
    """The market's bars in the data range, then `predict + 1` later ones (the source's own calendar where it
    knows them, else the market calendar's next bars, else projected by the bars' spacing) for the stamps of
    forecasts made on the last days."""
    cal, inside = source.calendar(extra=predict + 1)
    known = len(cal) - inside
    if known < predict + 1:
        cal = cal.append(continue_calendar(cal, predict + 1 - known, source.meta))
    info = {
        "bars": inside,
        "first": str(cal[0]),
        "last": str(cal[inside - 1]),
        "known_after": known,
        "projected_after": max(0, predict + 1 - known),
    }
    return cal.as_unit("ns").asi8, info


@dataclasses.dataclass
class _Tally:
    windows: dict[str, int] = dataclasses.field(default_factory=lambda: {s: 0 for s in SPLITS})
    origins: dict[str, int] = dataclasses.field(default_factory=lambda: {s: 0 for s in ORIGIN_SPLITS})
    target_span: dict[str, list[int]] = dataclasses.field(default_factory=lambda: {s: [] for s in SPLITS})
    origin_span: dict[str, list[int]] = dataclasses.field(default_factory=lambda: {s: [] for s in ORIGIN_SPLITS})
    short_segments: int = 0
    missing_rows: int = 0
    repaired_candles: int = 0


class _Writer:
    """The arrays of a dataset being built, appended one symbol segment at a time."""

    def __init__(self, directory: Path):
        def appender(name: str) -> NpyAppender:
            return NpyAppender(directory / f"{name}.npy", *ARRAYS[name])

        self.features, self.stamps = appender("features"), appender("stamps")
        self.timestamps, self.calpos = appender("timestamps"), appender("calpos")
        self.windows = {s: appender(f"windows_{s}") for s in SPLITS}
        self.origins = {s: appender(f"origins_{s}") for s in ORIGIN_SPLITS}

    @property
    def rows(self) -> int:
        return self.features.rows

    def close(self) -> None:
        for a in (
            self.features,
            self.stamps,
            self.timestamps,
            self.calpos,
            *self.windows.values(),
            *self.origins.values(),
        ):
            a.close()


def _segment(
    w: _Writer,
    tally: _Tally,
    x: np.ndarray,
    index: pd.DatetimeIndex,
    calpos: np.ndarray,
    sym: int,
    member: np.ndarray,
    d: DataConfig,
    plan: dict[str, SplitRange],
) -> None:
    """Append one segment's rows, its training windows and its signal origins."""
    look, pred, n, row = d.lookback_window, d.predict_window, len(x), w.rows
    window = look + pred + 1
    ts = index.as_unit("ns").asi8
    w.features.append(x.astype(np.float32))
    w.stamps.append(calendar_features(index).astype(np.int8))
    w.timestamps.append(ts)
    w.calpos.append(calpos)
    if n >= window:
        rel = np.arange(n - window + 1)
        first, last = ts[rel + look], ts[rel + window - 1]
        ok = member[rel + look - 1] if d.universe == "point_in_time" else np.ones(len(rel), dtype=bool)
        for s, r in plan.items():
            sel = ok & (first >= r.lo) & (last <= r.hi)
            if sel.any():
                w.windows[s].append(np.stack([row + rel[sel], np.full(int(sel.sum()), sym)], axis=1))
                tally.windows[s] += int(sel.sum())
                tally.target_span[s] += [int(first[sel][0]), int(last[sel][-1])]
    rel = np.arange(look - 1, n)
    for s in ORIGIN_SPLITS:
        sel = member[rel] & plan[s].origin_mask(ts[rel], calpos[rel], pred)
        if sel.any():
            w.origins[s].append(np.stack([row + rel[sel], np.full(int(sel.sum()), sym)], axis=1))
            tally.origins[s] += int(sel.sum())
            tally.origin_span[s] += [int(ts[rel][sel][0]), int(ts[rel][sel][-1])]


def _symbol(
    w: _Writer,
    tally: _Tally,
    name: str,
    df: pd.DataFrame,
    sym: int,
    calendar: np.ndarray,
    universe: Universe,
    d: DataConfig,
    plan: dict[str, SplitRange],
) -> dict:
    """Append a symbol's kept segments; returns its manifest entry, or {"reason": ...} when nothing is kept."""
    x = df[list(FEATURES)].to_numpy(dtype=np.float64, copy=True) if len(df) else np.zeros((0, len(FEATURES)))
    valid = np.isfinite(x).all(axis=1) & (x[:, :4] > 0).all(axis=1) & (x[:, 4:] >= 0).all(axis=1)
    tally.missing_rows += int((~valid).sum())
    x[valid], repaired = reconcile_candles(x[valid], d.bad_candles, name, pd.DatetimeIndex(df.index[valid]))
    tally.repaired_candles += repaired
    segs = segments(valid)
    kept = [(a, b) for a, b in segs if b - a >= d.lookback_window]
    tally.short_segments += len(segs) - len(kept)
    if not kept:
        longest = max((b - a for a, b in segs), default=0)
        return {
            "reason": "no bars in range"
            if not valid.any()
            else f"no run of {d.lookback_window} consecutive bars (longest {longest})"
        }
    index = pd.DatetimeIndex(df.index)
    ns = index.as_unit("ns").asi8
    calpos = np.searchsorted(calendar, ns)
    member = universe.member_mask(name, ns)
    first_row = w.rows
    for a, b in kept:
        _segment(w, tally, x[a:b], index[a:b], calpos[a:b], sym, member[a:b], d, plan)
    return {
        "name": name,
        "first_row": first_row,
        "rows": w.rows - first_row,
        "segments": len(kept),
        "first": str(index[kept[0][0]]),
        "last": str(index[kept[-1][1] - 1]),
        "members": universe.describe(name),
    }


def prepare(cfg: Config, progress: Progress | None = None) -> dict:
    """Build the dataset at `cfg.data.dataset_path` (replacing any old one atomically); returns its manifest."""
    d, t0 = cfg.data, time.perf_counter()
    meta, dropped, tally = [], [], _Tally()
    with atomic_dir(Path(d.dataset_path)) as tmp:
        source = open_source(cfg, tmp)
        universe = source.universe()
        calendar, cal_info = market_calendar(source, d.predict_window)
        plan = plan_splits(d, calendar[: cal_info["bars"]])
        symbols = universe.symbols()
        log.info("preparing %d instruments (%s source)", len(symbols), d.source)
        w, done = _Writer(tmp), 0
        for chunk in source.chunks(symbols):
            for name, df in chunk:
                entry = _symbol(w, tally, name, df, len(meta), calendar, universe, d, plan)
                (dropped.append({"symbol": name, **entry}) if "reason" in entry else meta.append(entry))
            done += len(chunk)
            if progress:
                progress(done, len(symbols), f"{done}/{len(symbols)} instruments")
        w.close()
        if tally.repaired_candles:
            log.warning(
                "%d bar(s) had a high below the open or close or a low above them; widened to the body "
                "(data.bad_candles: refuse stops at the first instead)",
                tally.repaired_candles,
            )
        if isinstance(source, CsvSource):
            cal_info["imported"] = source.report.to_json()
        np.save(tmp / "calendar.npy", calendar.astype(ARRAYS["calendar"][0]), allow_pickle=False)
        _check(d, meta, tally)
        manifest = _manifest(cfg, meta, dropped, tally, w.rows, cal_info, plan, time.perf_counter() - t0)
        sealed = write_manifest(tmp, manifest)
        manifest.update(arrays=sealed["arrays"], digest=sealed["digest"])
    log.info("dataset written to %s", d.dataset_path)
    return manifest


def _check(d: DataConfig, meta: list[dict], tally: _Tally) -> None:
    if not meta:
        raise KronosError(
            f"no instrument has {d.lookback_window} consecutive bars between {d.start_time} and "
            f"{d.end_time}; widen the date range or shorten data.lookback_window"
        )
    data_span = f"{meta[0]['first'][:10]}..{max(m['last'] for m in meta)[:10]}"
    empty = [s for s in ("train", "val") if tally.windows[s] == 0]
    if empty:
        raise KronosError(
            f"no windows fall in the {', '.join(empty)} split(s): "
            + "; ".join(f"{s}_time_range {getattr(d, f'{s}_time_range')}" for s in empty)
            + f" lies outside the data ({data_span}), is shorter than lookback + predict windows or has no pool "
            f"member; adjust the ranges"
        )
    if tally.origins["test"] == 0:
        raise KronosError(
            f"no signal day falls in the test split: test_time_range {d.test_time_range} lies outside "
            f"the data ({data_span}) or has no pool member with {d.lookback_window} bars of history"
        )


def _bounds(values: list[int]) -> tuple[str | None, str | None]:
    return (str(pd.Timestamp(min(values))), str(pd.Timestamp(max(values)))) if values else (None, None)


def _manifest(
    cfg: Config,
    meta: list[dict],
    dropped: list[dict],
    tally: _Tally,
    rows: int,
    cal_info: dict,
    plan: dict[str, SplitRange],
    elapsed: float,
) -> dict:
    d = cfg.data
    splits = {}
    for s in SPLITS:
        first_t, last_t = _bounds(tally.target_span[s])
        splits[s] = {
            "range": getattr(d, f"{s}_time_range"),
            **plan[s].describe(),
            "windows": tally.windows[s],
            "first_target": first_t,
            "last_target": last_t,
        }
        if s in ORIGIN_SPLITS:
            first_o, last_o = _bounds(tally.origin_span[s])
            splits[s].update({"signals": tally.origins[s], "first_signal": first_o, "last_signal": last_o})
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kronos_cli": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": dataset_hash(cfg),
        "data_config": dataclasses.asdict(d),
        "features": list(FEATURES),
        "lookback_window": d.lookback_window,
        "predict_window": d.predict_window,
        "window": d.lookback_window + d.predict_window + 1,
        "clip": d.clip,
        "embargo": embargo_bars(d),
        "universe": d.universe,
        "calendar": cal_info,
        "rows": rows,
        "missing_rows": tally.missing_rows,
        "short_segments_dropped": tally.short_segments,
        "repaired_candles": tally.repaired_candles,
        "symbols": meta,
        "dropped": dropped,
        "splits": splits,
        "elapsed_s": round(elapsed, 2),
    }


def _span(a: object, b: object) -> str:
    return f"{str(a)[:10]}..{str(b)[:10]}" if a else "-"


def split_table(manifest: dict, where: object) -> list[Table]:
    """Each split's range, what the embargo left out, its training windows and its signals ((bar, symbol) forecasts)."""
    t = Table(
        f"dataset {where}",
        ["split", "range", "effective start", "embargoed bars", "windows", "targets", "signals", "signal span"],
        caption=f"embargo {manifest['embargo']} bars between splits; training windows: {manifest['universe']}",
    )
    for split, i in manifest["splits"].items():
        has = "signals" in i
        t.add(
            split,
            f"{i['range'][0]}..{i['range'][1]}",
            str(i["effective_start"])[:10],
            i["embargoed_bars"],
            f"{i['windows']:,}",
            _span(i["first_target"], i["last_target"]),
            f"{i['signals']:,}" if has else "-",
            _span(i.get("first_signal"), i.get("last_signal")) if has else "-",
        )
    return [t]
