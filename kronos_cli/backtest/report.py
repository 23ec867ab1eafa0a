"""The result of a backtest, typed: what it measured, under which conventions, and its tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kronos_cli.split_forecasts import precision_table
from kronos_cli.tables import Table, num, pct, render_text


@dataclass
class BacktestResult:
    run_name: str
    tokenizer: str
    predictor: str
    device: str
    benchmark: str
    backtest_range: list[str]  # first and last trading day
    signal_range: list[str]  # first and last signal day of the test split
    notes: list[str]
    signal_days: int  # (day, stock) forecasts of the test split
    labelled: int  # of those, with a known label
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

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """Everything (`full`), or the summary a script wants (no daily returns, no config)."""
        d = dataclasses.asdict(self)
        if not full:
            d.pop("daily_returns"), d.pop("config")
        return d

    def tables(self) -> list[Table]:
        c = self.conventions
        quality = Table(
            f"Signal quality: {self.labelled:,} of {self.signal_days:,} test-split signals have a known label",
            ["signal", "IC", "ICIR", "Rank IC", "Rank ICIR", "days"],
            caption=f"label: {c['label']}",
        )
        for name, q in self.signal_quality.items():
            quality.add(name, num(q["IC"]), num(q["ICIR"]), num(q["Rank IC"]), num(q["Rank ICIR"]), q["days"])
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
        tables = [quality, accuracy, self._portfolio_table()]
        return tables + ([precision_table(self.precision)] if self.precision else [])

    def _portfolio_table(self) -> Table:
        c = self.conventions
        p = Table(
            f"TopkDropout vs {self.benchmark}, {self.backtest_range[0]}..{self.backtest_range[1]} (with cost)",
            ["signal", "ann. return", "volatility", "IR", "max DD", "win rate", "turnover", "excess ann.", "excess IR"],
            caption=f"returns per bar annualised with {c['annualization']} and accumulated by {c['accumulation']} "
            f"(Qlib's conventions); {c['market']}",
        )
        for name, m in self.portfolio.items():
            w, e = m["with_cost"], m["excess_with_cost"]
            p.add(
                name,
                pct(w["annualized_return"]),
                pct(w["volatility"]),
                num(w["information_ratio"], 2),
                pct(w["max_drawdown"]),
                pct(w["win_rate"], 0),
                num(w.get("turnover", float("nan")), 2),
                pct(e["annualized_return"]),
                num(e["information_ratio"], 2),
            )
        b = self.benchmark_stats
        if b:
            p.add(
                "benchmark",
                pct(b["annualized_return"]),
                pct(b["volatility"]),
                num(b["information_ratio"], 2),
                pct(b["max_drawdown"]),
                pct(b["win_rate"], 0),
                "",
                "",
                "",
            )
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
