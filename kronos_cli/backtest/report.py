"""The result of a backtest, typed: what it measured, under which conventions, and its tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kronos_cli.backtest.sensitivity import Sensitivity
from kronos_cli.core.tables import Table, num, pct, render_text
from kronos_cli.metrics.ic import MIN_NAMES
from kronos_cli.metrics.portfolio import ACCUMULATIONS
from kronos_cli.runtime.precision import precision_table


@dataclass
class BacktestResult:
    run_name: str
    tokenizer: str
    predictor: str
    device: str
    strategy: str  # TopkDropout, or long/short (long/flat) on the forecast's sign for one series
    benchmark: str
    backtest_range: list[str]  # first and last traded bar
    signal_range: list[str]  # first and last signal bar of the test split
    notes: list[str]
    signals: int  # (bar, symbol) forecasts of the test split
    labelled: int  # of those, with a known label
    symbols: int  # the most symbols with a signal on one bar
    forecast_cache: str
    reused_forecasts: int
    conventions: dict[str, Any]
    signal_quality: dict[str, dict[str, float]]
    forecast_accuracy: dict[str, float]
    portfolio: dict[str, dict[str, dict[str, float]]]
    benchmark_stats: dict[str, float]
    daily_returns: dict[str, dict[str, list]] = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    elapsed_s: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    precision: dict[str, Any] | None = None  # with --dtype bf16/fp16: the deviation from fp32 on a sample
    series_quality: dict[str, dict[str, float]] | None = None  # time-series IC, where a cross-section is too small
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)  # signal -> orders filled, cut, refused
    sensitivity: Sensitivity | None = None  # capacity and cost curves of the first signal

    def __post_init__(self) -> None:
        if isinstance(self.sensitivity, dict):  # read back from the JSON (`page.load_result`)
            self.sensitivity = Sensitivity.from_json(self.sensitivity)

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """Everything (`full`), or the summary a script wants (no daily returns, no config)."""
        d = dataclasses.asdict(self)
        if not full:
            d.pop("daily_returns"), d.pop("config")
        return d

    def tables(self) -> list[Table]:
        a = self.forecast_accuracy
        accuracy = Table(
            "Forecast accuracy (close, as a return on the last close)",
            ["windows", "MAE", "RMSE", "MAE last close", "MASE", "direction"],
            caption="the mean of the sample paths; MASE = MAE / MAE of the last-close (no change) forecast, below 1 "
            "beats it; direction: share of moving steps with the right sign [Wilson 95% interval]",
        )
        accuracy.add(
            f"{a['windows']:,}",
            pct(a["MAE"]),
            pct(a["RMSE"]),
            pct(a["MAE_last_close"]),
            num(a["MASE"], 3),
            f"{pct(a['direction'], 1)} [{pct(a['direction_lo'], 1)}, {pct(a['direction_hi'], 1)}]",
        )
        tables = [self._quality_table(), accuracy, self._portfolio_table(), fills_table(self.fills)]
        tables += self.sensitivity.tables() if self.sensitivity else []
        return tables + ([precision_table(self.precision)] if self.precision else [])

    def _quality_table(self) -> Table:
        c, unit = self.conventions, _plural(self.conventions["bar"])
        head = f"Signal quality: {self.labelled:,} of {self.signals:,} test-split signals have a known label"
        if self.series_quality is None:
            quality = Table(
                head, ["signal", "IC", "ICIR", "Rank IC", "Rank ICIR", unit], caption=f"label: {c['label']}"
            )
            for name, q in self.signal_quality.items():
                quality.add(name, num(q["IC"]), num(q["ICIR"]), num(q["Rank IC"]), num(q["Rank ICIR"]), q["days"])
            return quality
        quality = Table(
            f"{head}; cross-sectional IC not defined for fewer than {MIN_NAMES} symbols a bar ({self.symbols} here)",
            ["signal", "time-series IC", "t", f"{unit} x symbols"],
            caption=f"the correlation over {unit} of the signal with its label within each symbol (both standardised "
            f"per symbol, pooled); t over its Newey-West standard error, as labels of neighbouring {unit} overlap; "
            f"label: {c['label']}",
        )
        for name, q in self.series_quality.items():
            quality.add(name, num(q["corr"]), num(q["t"], 2), f"{q['windows']:,}")
        return quality

    def _portfolio_table(self) -> Table:
        c, bench = self.conventions, self.benchmark
        columns = ["signal", "total", "before cost", "ann. return", "volatility", "IR", "max DD", "win rate"]
        p = Table(
            f"{self.strategy} vs {bench}, {self.backtest_range[0]}..{self.backtest_range[1]} (with cost)",
            columns + ["turnover", "excess ann.", "excess IR"],
            caption=f"total and before cost: the whole backtest's return; {ACCUMULATIONS[c['accumulation']]}; "
            f"annualised with {c['annualization']}; IR = mean / std x sqrt(bars a year); turnover: traded value / "
            f"account value, a bar; excess over {bench}; {c['market']}",
        )
        for name, m in self.portfolio.items():
            w, e = m["with_cost"], m["excess_with_cost"]
            total, *rest = _row(w)
            before = pct(m["without_cost"]["total_return"])
            turnover = num(w.get("turnover", float("nan")), 2)
            p.add(name, total, before, *rest, turnover, pct(e["annualized_return"]), num(e["information_ratio"], 2))
        if self.benchmark_stats:
            total, *rest = _row(self.benchmark_stats)
            p.add(bench, total, "", *rest, "", "", "")
        return p

    def report_text(self) -> str:
        head = [
            f"Kronos backtest: {self.run_name}",
            "=" * 60,
            f"tokenizer  {self.tokenizer}",
            f"predictor  {self.predictor}",
            f"benchmark  {self.benchmark}    backtest {self.backtest_range[0]}..{self.backtest_range[1]}    "
            f"signals {self.signal_range[0]}..{self.signal_range[1]}",
            "",
        ]
        head += [f"note: {n}" for n in self.notes]
        head += [f"{k}: {v}" for k, v in self.conventions.items()] + [""]
        return "\n".join(head) + render_text(self.tables())


def fills_table(fills: dict[str, dict[str, Any]]) -> Table:
    """Each signal's orders: filled in full, in part, not at all, and the trades refused before an order."""
    t = Table(
        "Fills: what the exchange could not trade",
        ["signal", "orders", "filled", "partly", "not filled", "volume cap", "fill rate", "buys refused", "locked"],
        caption="orders sent to the exchange; volume cap: orders filled in part or not at all because they asked "
        "for more than the cap; fill rate: value dealt / value asked at the deal price; buys refused: wanted, not "
        "sent (price limit or suspension); locked: bars x held symbols that could not be sold",
    )
    for name, f in fills.items():
        refused, locked = _reasons(f["refused_buys"]), _reasons(f["locked_holdings"])
        t.add(name, f"{f['orders']:,}", f"{f['filled']:,}", f"{f['partial']:,}", f"{f['unfilled']:,}",
              f"{f['volume_capped']:,}", pct(f["fill_rate"], 1), refused, locked)  # fmt: skip
    return t


def _reasons(counts: dict[str, int]) -> str:
    """12 (price limit 9, suspension 3), or 0."""
    total = sum(counts.values())
    return f"{total:,} ({', '.join(f'{k} {v:,}' for k, v in counts.items())})" if total else "0"


def _row(stats: dict[str, float]) -> list[str]:
    """Total and annualised return, volatility, IR, max drawdown and win rate, as the portfolio table shows them."""
    return [
        pct(stats["total_return"]),
        pct(stats["annualized_return"]),
        pct(stats["volatility"]),
        num(stats["information_ratio"], 2),
        pct(stats["max_drawdown"]),
        pct(stats["win_rate"], 0),
    ]


def _plural(bar: str) -> str:
    """The column heading for a count of bars: days for daily bars, bars otherwise."""
    return "days" if bar == "day" else "bars"
