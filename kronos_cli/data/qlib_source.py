"""Reading bars through real pyqlib (`qlib.init`, `D.instruments`, `D.features`), a chunk of instruments at a time.

The only data module that imports qlib.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from kronos_cli.bars import FEATURES, amount_from_volume
from kronos_cli.config import DataConfig
from kronos_cli.errors import KronosError

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


class QlibSource:
    """Bars of a pool from a Qlib provider: one frame per symbol over the calendar, NaN rows where no bar."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.path = check_provider(cfg.provider_uri, cfg.freq)
        init_qlib(str(self.path), cfg.region)

    def symbols(self) -> list[str]:
        from qlib.data import D  # lazy: qlib is an optional extra and slow to import

        cfg = self.cfg
        if isinstance(cfg.instrument, list):
            known = {p.name.upper() for p in (self.path / "features").iterdir()}
            missing = [s for s in cfg.instrument if s.upper() not in known]
            if missing:
                raise KronosError(f"data.instrument lists symbols the provider does not have: {', '.join(missing)}")
            return [s.upper() for s in cfg.instrument]
        if cfg.instrument not in pools(self.path):
            raise KronosError(
                f"unknown pool {cfg.instrument!r}: {self.path}/instruments has "
                f"{', '.join(pools(self.path)) or 'no pools'}"
            )
        inst = D.instruments(market=cfg.instrument)
        symbols = D.list_instruments(
            inst, start_time=cfg.start_time, end_time=cfg.end_time, freq=cfg.freq, as_list=True
        )
        if not symbols:
            raise KronosError(
                f"pool {cfg.instrument!r} has no instruments between {cfg.start_time} and "
                f"{cfg.end_time}; check data.start_time/end_time against the provider's calendar"
            )
        return sorted(symbols)

    def chunks(self, symbols: list[str]) -> Iterator[list[tuple[str, pd.DataFrame]]]:
        """Frames with the six feature columns; amount = `amount_from_volume` (Qlib's cn_data has none)."""
        from qlib.data import D  # lazy: qlib is an optional extra and slow to import

        cfg = self.cfg
        for i in range(0, len(symbols), cfg.chunk_size):
            part = symbols[i : i + cfg.chunk_size]
            raw = D.features(part, QLIB_FIELDS, start_time=cfg.start_time, end_time=cfg.end_time, freq=cfg.freq)
            raw.columns = list(FEATURES[:5])
            out = []
            for sym in part:
                if sym not in raw.index.get_level_values(0):
                    out.append((sym, pd.DataFrame(columns=raw.columns, dtype=float)))
                    continue
                df = raw.xs(sym, level=0).sort_index()
                df["amount"] = amount_from_volume(df[list(FEATURES[:4])].to_numpy(), df["volume"].to_numpy())
                out.append((sym, df))
            yield out
