"""What a fetch asks for, resolved once at the command line into one typed object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions import BarFreq, parse_freq
from kronos_cli.market.stamps import range_end

FORMATS = ("csv", "parquet", "qlib")


@dataclass(frozen=True)
class Politeness:
    """How hard a source is asked: attempts per request, the first back-off (doubled each retry, at most
    `max_wait_s`) and a pause between symbols (None: the source's own, `Source.pause_s`)."""

    attempts: int = 5
    first_wait_s: float = 1.0
    max_wait_s: float = 60.0
    pause_s: float | None = None


@dataclass(frozen=True)
class FetchRequest:
    """One fetch: a source's symbols over [start, end] at one bar size, into `out` as `fmt`."""

    source: str
    symbols: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    freq: BarFreq
    out: Path
    fmt: str = "csv"
    calendar: str | None = None  # the market calendar gaps are counted against [default: the source's]
    exchange: str = "binance"  # ccxt's exchange id
    pool: str | None = None  # an index whose point-in-time members are fetched (akshare: csi300, ...)
    refresh: bool = False  # download every symbol whole, replacing what is stored (revisions accepted)
    politeness: Politeness = field(default_factory=Politeness)


def build_request(
    source: str, symbols: list[str], start: str, end: str | None, interval: str, out: Path, fmt: str = "csv", **extra
) -> FetchRequest:
    """A checked FetchRequest; every mistake is a one-line KronosError naming the option."""
    if fmt not in FORMATS:
        raise KronosError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}", setting="fmt")
    if not symbols and not extra.get("pool"):
        raise KronosError("name at least one symbol (or pool for an index's members)", setting="pool")
    try:
        t0 = pd.Timestamp(start)
        t1 = range_end(end) if end else pd.Timestamp.now().floor("min")
    except (ValueError, TypeError) as exc:
        raise KronosError(f"start and end must be dates such as 2024-01-31 ({exc})", ("start", "end")) from None
    if t1 < t0:
        raise KronosError(f"end ({end}) is before start ({start})", ("end", "start"))
    unique = tuple(dict.fromkeys(s.strip() for s in symbols if s.strip()))
    return FetchRequest(source, unique, t0, t1, parse_freq(interval), Path(out).expanduser(), fmt, **extra)
