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
from kronos_cli.data.csv_source import CsvSource, unchanged
from kronos_cli.data.manifest import FORMAT, FORMAT_VERSION, ORIGIN_SPLITS, SPLITS, read_manifest, write_manifest
from kronos_cli.data.provider import PROVIDER_DIR, continue_calendar
from kronos_cli.data.qlib_source import QlibSource
from kronos_cli.data.rows import Tally, Writer, append_symbol
from kronos_cli.data.splits import SplitRange, embargo_bars, plan_splits
from kronos_cli.market.bars import FEATURES

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def open_source(cfg: Config, directory: Path) -> QlibSource | CsvSource:
    """The configured Qlib provider, or a CSV or Parquet source that is written as a Qlib provider into
    `directory`/qlib (on the market's calendar) as it is read."""
    d = cfg.data
    if d.source != "csv":
        return QlibSource(d)
    return CsvSource(d, directory / PROVIDER_DIR, previous=Path(d.dataset_path) / PROVIDER_DIR)


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
    if len(cal) > np.iinfo(np.int32).max:  # the dataset stores calendar positions as int32
        raise KronosError(
            f"the data range holds {len(cal):,} market bars, more than a dataset indexes ({np.iinfo(np.int32).max:,}); "
            f"shorten it (data.start_time, data.end_time) or use longer bars (data.freq)",
            setting=("data.start_time", "data.end_time", "data.freq"),
        )
    return cal.as_unit("ns").asi8, info


def prepare(cfg: Config, progress: Progress | None = None) -> dict:
    """Build the dataset at `cfg.data.dataset_path` (replacing any old one atomically); returns its manifest."""
    d, t0 = cfg.data, time.perf_counter()
    kept = _unchanged(cfg)
    if kept is not None:
        return kept
    meta, dropped, tally = [], [], Tally()
    with atomic_dir(Path(d.dataset_path)) as tmp:
        source = open_source(cfg, tmp)
        universe = source.universe()
        calendar, cal_info = market_calendar(source, d.predict_window)
        plan = plan_splits(d, calendar[: cal_info["bars"]])
        symbols = universe.symbols()
        log.info("preparing %d instruments (%s source)", len(symbols), d.source)
        w, done = Writer(tmp), 0
        for chunk in source.bars(symbols):
            for name, ns, x in chunk:
                entry = append_symbol(w, tally, name, ns, x, len(meta), calendar, universe, d, plan)
                (dropped.append({"symbol": name, **entry}) if "reason" in entry else meta.append(entry))
            done += len(chunk)
            if progress:
                progress(done, len(symbols), f"{done}/{len(symbols)} instruments")
        digests = w.close(calendar)
        if tally.repaired_candles:
            log.warning(
                "%d bar(s) had a high below the open or close or a low above them; widened to the body "
                "(data.bad_candles: refuse stops at the first instead)",
                tally.repaired_candles,
            )
        if isinstance(source, CsvSource):
            cal_info["imported"] = source.report.to_json()
        _check(d, meta, tally)
        manifest = _manifest(cfg, meta, dropped, tally, w.rows, cal_info, plan, time.perf_counter() - t0)
        sealed = write_manifest(tmp, manifest, digests)
        manifest.update(arrays=sealed["arrays"], digest=sealed["digest"])
    log.info("dataset written to %s", d.dataset_path)
    return manifest


def _unchanged(cfg: Config) -> dict | None:
    """The manifest of the dataset already at `data.dataset_path` when this config built it from CSV or Parquet
    files that have not changed since: a no-op that writes nothing."""
    d = cfg.data
    if d.source != "csv" or not (Path(d.dataset_path) / "manifest.json").is_file():
        return None
    try:
        manifest = read_manifest(d.dataset_path)
    except KronosError:
        return None
    if manifest["config_hash"] != dataset_hash(cfg) or not unchanged(d, Path(d.dataset_path) / PROVIDER_DIR):
        return None
    log.info("the dataset at %s is up to date with %s: nothing to do", d.dataset_path, d.csv.path)
    return manifest


def _check(d: DataConfig, meta: list[dict], tally: Tally) -> None:
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
    tally: Tally,
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
