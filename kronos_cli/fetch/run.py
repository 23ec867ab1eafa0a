"""A fetch from start to end: check the request, download each symbol's missing tail (retried when the source
fails for a moment), check the overlap with what is stored, write, and report per symbol. A symbol that fails is
listed and the others are still written."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.files import FileStore
from kronos_cli.fetch.frames import OVERLAP_BARS, revision, tail_after
from kronos_cli.fetch.qlib_store import QlibStore
from kronos_cli.fetch.report import CURRENT, NEW, UPDATED, FetchReport, SymbolResult
from kronos_cli.fetch.request import FetchRequest
from kronos_cli.fetch.retry import SymbolError
from kronos_cli.fetch.sources import Source, open_source, stored_name
from kronos_cli.market.sessions import calendar_names, check_calendar_name, exchange_tz, session_grid

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def fetch(
    req: FetchRequest, progress: Progress | None = None, page: int | None = None, now: pd.Timestamp | None = None
) -> FetchReport:
    """Run a fetch; a mistake in the request is a KronosError before anything is downloaded or written. Only bars
    that ended by `now` (default: the clock, in the market's time zone) are stored: one still forming (today's,
    this hour's) would read as revised at the next fetch, so it waits for that fetch."""
    src = open_source(req, page)
    src.interval(req.freq)
    calendar = req.calendar or src.default_calendar(req.symbols)
    if check_calendar_name(calendar):
        raise KronosError(
            f"calendar {calendar!r} is not known; use one of {', '.join(calendar_names())}", setting="calendar"
        )
    tz = exchange_tz(calendar)
    now = pd.Timestamp.now(tz or "UTC").tz_localize(None) if now is None else now
    if hasattr(src, "check_range"):  # a source that keeps only recent bars of some sizes
        src.check_range(req.start, req.freq, now)
    members = _members(src, req)
    symbols = tuple(dict.fromkeys([*req.symbols, *(members or {})]))
    report = FetchReport(req.source, str(req.out), req.fmt, req.freq.qlib, calendar, req.pool)
    store = _store(req, calendar)
    frames: dict[str, pd.DataFrame] = {}
    pause = src.pause_s if req.politeness.pause_s is None else req.politeness.pause_s
    for i, symbol in enumerate(symbols):
        if progress:
            progress(i, len(symbols), symbol)
        if i and pause:
            time.sleep(pause)
        result, merged = _one(src, store, req, symbol, now)
        report.results.append(result)
        if merged is not None:
            frames[result.stored_as] = merged
    if progress:
        progress(len(symbols), len(symbols), "writing")
    grid = _grid(calendar, req, frames)
    store.close(grid, _pool(req, members, frames))
    for r in report.results:
        if r.stored_as in frames:
            r.gaps = _gaps(grid, frames[r.stored_as].index)
    report.bytes_written = store.bytes_written
    return report


def _store(req: FetchRequest, calendar: str) -> FileStore | QlibStore:
    if req.fmt == "qlib":
        meta = {"calendar": calendar, "bar_label": "start", "freq": req.freq.qlib, "amount": True, "source": req.source}
        return QlibStore(req.out, req.freq, meta)
    return FileStore(req.out, req.fmt, req.freq.intraday)


def _members(src: Source, req: FetchRequest) -> dict[str, pd.Timestamp] | None:
    if req.pool is None:
        return None
    if not hasattr(src, "members"):
        raise KronosError(f"the {req.source} source knows no index members; pool needs akshare", setting="pool")
    if req.fmt != "qlib":
        log.warning("bar files carry no pool: %s's membership is kept only in the qlib format", req.pool)
    return src.members(req.pool)


def _pool(req: FetchRequest, members: dict | None, frames: dict[str, pd.DataFrame]) -> dict | None:
    """An index's pool for the provider: each member from the day it joined (or its first bar) to its last bar."""
    if not members:
        return None
    spans = {s: [(max(t, frames[s].index[0]), frames[s].index[-1])] for s, t in members.items() if s in frames}
    return {"name": req.pool.lower(), "spans": spans}


def _grid(calendar: str, req: FetchRequest, frames: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The market's bars over every symbol's span (gaps are counted against it; the provider's calendar)."""
    if not frames:
        return pd.DatetimeIndex([])
    first = min(f.index[0] for f in frames.values())
    last = max(f.index[-1] for f in frames.values())
    return session_grid(calendar, req.freq).bars(first, last)


def _gaps(grid: pd.DatetimeIndex, have: pd.DatetimeIndex) -> int:
    """The market's bars inside a symbol's span that it lacks."""
    inside = grid[(grid >= have[0]) & (grid <= have[-1])]
    return int((~inside.isin(have)).sum())


def _one(
    src: Source, store, req: FetchRequest, symbol: str, now: pd.Timestamp
) -> tuple[SymbolResult, pd.DataFrame | None]:
    """Fetch one symbol's missing tail and store it; a failure is recorded in the result, not raised."""
    result = SymbolResult(symbol, symbol)
    try:
        result.stored_as = stored_name(req.source, symbol)
        stored = None if req.refresh else store.read(result.stored_as)
        start = req.start if stored is None else stored.index[-min(OVERLAP_BARS, len(stored))]
        new = src.bars(symbol, start, req.end, req.freq)
    except (SymbolError, KronosError) as exc:
        result.error = str(exc)
        return result, None
    except Exception as exc:  # the source failed for good (retries spent, no network): this symbol only
        result.error = _failure(exc)
        return result, None
    new = new.loc[(new.index >= start) & (new.index <= req.end) & (new.index + req.freq.step <= now)]
    revised = revision(stored, new) if stored is not None else None
    if revised is not None:
        result.error = f"{revised.describe()}; nothing written, pass --refresh to download {symbol} whole"
        return result, None
    if stored is None and new.empty:
        result.error = f"no bars of {symbol} between {req.start} and {req.end}"
        return result, None
    tail = tail_after(stored, new)
    merged = new if stored is None else pd.concat([stored, tail])
    if stored is None or len(tail):
        store.put(result.stored_as, stored, merged, tail)
    result.status = NEW if stored is None else UPDATED if len(tail) else CURRENT
    result.downloaded, result.added, result.bars = len(new), len(tail) if stored is not None else len(new), len(merged)
    result.first, result.last = _stamp(merged.index[0], req), _stamp(merged.index[-1], req)
    return result, merged


def _stamp(t: pd.Timestamp, req: FetchRequest) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if req.freq.intraday else f"{t:%Y-%m-%d}"


def _failure(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
