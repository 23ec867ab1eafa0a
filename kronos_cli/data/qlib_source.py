"""Reading bars through real pyqlib (`qlib.init`, `D.instruments`, `D.features`), a chunk of instruments at a time.

The only data module that imports qlib.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_cli.config import DataConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.data.provider import pool_of, provider_meta, provider_uri
from kronos_cli.data.universe import Universe
from kronos_cli.market.bars import FEATURES, amount_from_volume
from kronos_cli.market.sessions import parse_freq
from kronos_cli.market.stamps import range_end

log = logging.getLogger(__name__)

QLIB_FIELDS = ["$open", "$high", "$low", "$close", "$volume"]
HOW_TO_GET = (
    "get Qlib's cn_data with `python -m qlib.run.get_data qlib_data --target_dir "
    "~/.qlib/qlib_data/cn_data --region cn`, or try `kronos demo-data DIR` for a synthetic market"
)
_initialised: tuple[str, str] | None = None


def check_provider(uri: str, freq: str) -> Path:
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise KronosError(f"no Qlib provider directory at {path}; {HOW_TO_GET}")
    if not (path / "calendars" / f"{freq}.txt").is_file() or not any((path / "features").glob("*")):
        raise KronosError(
            f"{path} is not a Qlib provider directory with {freq} data (calendars/{freq}.txt and "
            f"features/ are missing or empty); {HOW_TO_GET}"
        )
    return path


def init_qlib(uri: str, region: str) -> None:
    """qlib.init once per process and provider."""
    global _initialised
    if _initialised == (uri, region):
        return
    # Qlib's own progress bars (tqdm) and routine warnings would bury ours; its errors still show.
    os.environ.setdefault("TQDM_DISABLE", "1")
    import qlib  # lazy: qlib is an optional extra and slow to import

    qlib.init(
        provider_uri=uri,
        region=region,
        logging_level=logging.ERROR,
        kernels=1,
        expression_cache=None,
        dataset_cache=None,
    )
    logging.getLogger("qlib").setLevel(logging.WARNING)
    _initialised = (uri, region)


def pools(path: Path) -> list[str]:
    return sorted(p.stem for p in (path / "instruments").glob("*.txt"))


def check_pool_file(path: Path) -> None:
    """Every line of a pool file must carry a membership span: SYMBOL, start date, end date."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        ok = len(parts) >= 3
        if ok:
            try:
                pd.Timestamp(parts[1]), pd.Timestamp(parts[2])
            except ValueError:
                ok = False
        if not ok:
            raise KronosError(
                f"{path} line {n} ({line.strip()!r}) has no membership span; a pool file lists SYMBOL<TAB>start"
                f"<TAB>end per line so that members are known day by day (write one span per line, e.g. "
                f"SH600000\t2011-01-04\t2099-12-31 for a permanent member)"
            )


class QlibSource:
    """Bars of a pool from a Qlib provider: one frame per symbol over the calendar, NaN rows where no bar.
    `uri` is the provider (default `data.provider_uri`), `pool` the pool or symbol list (`data.instrument`)."""

    def __init__(self, cfg: DataConfig, uri: str | None = None, pool: str | list[str] | None = None):
        self.cfg = cfg
        self.freq = parse_freq(cfg.freq).qlib
        self.path = check_provider(uri or cfg.provider_uri, self.freq)
        self.pool = cfg.instrument if pool is None else pool
        self.meta = provider_meta(self.path)
        init_qlib(str(self.path), cfg.region)

    def universe(self) -> Universe:
        """The symbols that were members at any time in the data range, with their membership spans."""
        from qlib.data import D  # lazy: qlib is an optional extra and slow to import

        cfg, pool = self.cfg, self.pool
        if isinstance(pool, list):
            known = {p.name.upper() for p in (self.path / "features").iterdir()}
            missing = [s for s in pool if s.upper() not in known]
            if missing:
                raise KronosError(f"data.instrument lists symbols the provider does not have: {', '.join(missing)}")
            return Universe.always([s.upper() for s in pool], cfg.start_time, cfg.end_time)
        if pool not in pools(self.path):
            raise KronosError(
                f"unknown pool {pool!r}: {self.path}/instruments has {', '.join(pools(self.path)) or 'no pools'}"
            )
        check_pool_file(self.path / "instruments" / f"{pool}.txt")
        inst = D.instruments(market=pool)
        end = range_end(cfg.end_time)
        spans = D.list_instruments(inst, start_time=cfg.start_time, end_time=end, freq=self.freq, as_list=False)
        if not spans:
            raise KronosError(
                f"pool {pool!r} has no instruments between {cfg.start_time} and {cfg.end_time}; check "
                f"data.start_time/end_time against the provider's calendar"
            )
        return Universe({sym: sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in s) for sym, s in spans.items()})

    def calendar(self, extra: int = 0) -> tuple[pd.DatetimeIndex, int]:
        """The provider's bars from data.start_time to data.end_time, then up to `extra` later bars of its calendar
        (which days a market trades is known ahead; no price is read); also how many of them are in range."""
        from qlib.data import D  # lazy: qlib is an optional extra and slow to import

        cal = pd.DatetimeIndex(D.calendar(start_time=self.cfg.start_time, freq=self.freq))
        inside = int((cal <= range_end(self.cfg.end_time)).sum())
        return cal[: inside + extra], inside

    def chunks(self, symbols: list[str]) -> Iterator[list[tuple[str, pd.DataFrame]]]:
        """Frames with the six feature columns; amount = `amount_from_volume` (Qlib's cn_data has none)."""
        from qlib.data import D  # lazy: qlib is an optional extra and slow to import

        cfg = self.cfg
        fields = QLIB_FIELDS + (["$amount"] if self.meta.get("amount") else [])
        end = range_end(cfg.end_time)
        for i in range(0, len(symbols), cfg.chunk_size):
            part = symbols[i : i + cfg.chunk_size]
            raw = D.features(part, fields, start_time=cfg.start_time, end_time=end, freq=self.freq)
            raw.columns = list(FEATURES[: len(fields)])
            out, present = [], set(raw.index.unique(level=0))  # one set, not a scan of the index per symbol
            for sym in part:
                if sym not in present:
                    out.append((sym, pd.DataFrame(columns=raw.columns, dtype=float)))
                    continue
                df = raw.xs(sym, level=0).sort_index()
                if "amount" not in df:
                    df["amount"] = amount_from_volume(df[list(FEATURES[:4])].to_numpy(), df["volume"].to_numpy())
                out.append((sym, df))
            yield out

    def bars(self, symbols: list[str]) -> Iterator[list[tuple[str, np.ndarray, np.ndarray]]]:
        """`chunks` as (symbol, int64 ns, (T, 6) float64 bars in FEATURES order), what `prep` reads."""
        for chunk in self.chunks(symbols):
            yield [
                (sym, pd.DatetimeIndex(df.index).as_unit("ns").asi8, df[list(FEATURES)].to_numpy(dtype=np.float64))
                if len(df)
                else (sym, np.zeros(0, np.int64), np.zeros((0, len(FEATURES))))
                for sym, df in chunk
            ]


def open_provider(d: DataConfig) -> QlibSource:
    """The config's bars through Qlib: `data.provider_uri`, or the provider `kronos prep` wrote from CSV files."""
    uri = provider_uri(d)
    if d.source == "csv" and not Path(uri).is_dir():
        raise KronosError(f"no prepared market data at {uri}; run `kronos prep` with this config first")
    return QlibSource(d, uri, pool_of(d))
