"""What a fetch did, per symbol, as a typed result: rendered once as a table, as JSON, and as the config snippet
that points `kronos pipeline` at the data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from kronos_cli.core.tables import Table

NEW, UPDATED, CURRENT, FAILED = "new", "updated", "up to date", "failed"
SPLITS = ("train", "val", "test")
MARKETS = {"XSHG": "cn", "XSHE": "cn", "XHKG": "hk", "24/7": "crypto", "forex": "fx"}  # else us rules


@dataclass
class SymbolResult:
    symbol: str
    stored_as: str
    status: str = FAILED
    bars: int = 0
    first: str = ""
    last: str = ""
    gaps: int = 0  # bars the market's calendar has inside the symbol's span that the source did not give
    downloaded: int = 0  # bars the source sent this time (the overlap checked again included)
    added: int = 0  # bars new to the store
    error: str = ""


@dataclass
class FetchReport:
    source: str
    out: str
    fmt: str
    freq: str
    calendar: str
    pool: str | None = None
    results: list[SymbolResult] = field(default_factory=list)
    bytes_written: int = 0

    @property
    def failed(self) -> list[SymbolResult]:
        return [r for r in self.results if r.status == FAILED]

    def to_json(self) -> dict:
        return {**asdict(self), "failed": [r.symbol for r in self.failed]}

    def table(self) -> Table:
        t = Table(
            f"kronos fetch {self.source} -> {self.out} ({self.fmt}, {self.freq} bars)",
            ["symbol", "status", "bars", "first", "last", "gaps", "new bars"],
            caption=f"gaps: bars the {self.calendar} calendar has inside a symbol's span that the source did not give",
        )
        for r in self.results:
            t.add(r.stored_as, r.status, f"{r.bars:,}", r.first, r.last, f"{r.gaps:,}", f"{r.added:,}")
        return t

    def config_snippet(self) -> str:
        """A config that reads what was written, for `kronos pipeline -c`: the span's first 70% of days train, the
        next 15% validate, the last 15% test (and are backtested on the market's rules against the pool's equal
        weight); everything else keeps its default."""
        ok = [r for r in self.results if r.status != FAILED and r.bars]
        first = pd.Timestamp(min((r.first for r in ok), default="2000-01-01")).normalize()
        last = pd.Timestamp(max((r.last for r in ok), default="2000-01-01")).normalize()
        a, b, day = first + (last - first) * 0.7, first + (last - first) * 0.85, pd.Timedelta(days=1)
        splits = dict(zip(SPLITS, [(first, a), (a + day, b), (b + day, last)]))
        ranges = "".join(f'  {k}_time_range: ["{x:%Y-%m-%d}", "{y:%Y-%m-%d}"]\n' for k, (x, y) in splits.items())
        test = splits["test"]
        topk = max(1, min(50, len(ok) // 2))
        return (
            f"# kronos fetch {self.source} into {Path(self.out).resolve()}; run: kronos pipeline -c THIS_FILE\n"
            f"run_name: {self.source}_{self.freq}\ndata:\n{self._source_yaml()}  freq: {self.freq}\n"
            f'  start_time: "{first:%Y-%m-%d}"\n  end_time: "{last:%Y-%m-%d}"\n{ranges}'
            f"  dataset_path: ./data/{self.source}_{self.freq}\n"
            f"backtest:\n  market: {MARKETS.get(self.calendar, 'us')}\n  benchmark: equal-weight\n"
            f'  start_time: "{test[0]:%Y-%m-%d}"\n  end_time: "{test[1]:%Y-%m-%d}"\n  topk: {topk}\n  n_drop: 1\n'
        )

    def _source_yaml(self) -> str:
        out = Path(self.out).resolve()
        if self.fmt == "qlib":
            region = "cn" if MARKETS.get(self.calendar) == "cn" else "us"
            return f"  source: qlib\n  provider_uri: {out}\n  region: {region}\n  instrument: {self.pool or 'all'}\n"
        return f"  source: csv\n  csv:\n    path: {out}\n    calendar: {self.calendar}\n"
