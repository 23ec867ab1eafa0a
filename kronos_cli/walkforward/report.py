"""The result of `kronos walkforward`, typed: the plan, each fold's scores and portfolio, the stitched leaderboard
(an `EvaluationResult` over the whole span), the fold wins with their sign tests, the span's one backtest, its
tables, report text and plots."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kronos_cli.core.tables import Table, num, pct, render_text
from kronos_cli.evaluate.report import EvaluationResult
from kronos_cli.report.plots import plot_by_fold, plot_walkforward

MODEL = "fine-tuned"
RESULTS = "walkforward.json"  # the result's one source of truth: the text report, the plots and the page


@dataclass
class WalkForwardResult:
    run_name: str
    inputs: str  # the hash of everything the result depends on: a rerun with the same one does nothing
    base: str  # the base model's label: zero-shot, or initial weights for a preset
    plan: list[dict]  # FoldPlan.to_json()
    embargo: int
    folds: list[dict]  # per fold: dates, training bars, what ran, scores per model, portfolio
    wins: list[dict]  # against, metric, wins, folds, share, p_value (sign test), by_fold
    evaluation: EvaluationResult  # the stitched record's leaderboard and Diebold-Mariano tests
    backtest: dict[str, Any]  # the span's one backtest: signal, strategy, benchmark, range, stats, days
    daily: dict[str, list] = field(default_factory=dict)  # per bar: date, return, cost, bench
    timings: dict[str, float] = field(default_factory=dict)
    up_to_date: bool = False  # a rerun found this result for the same inputs and did nothing
    outputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("evaluation", "daily")}
        d["stitched"] = self.evaluation.to_json()
        d["daily"] = self.daily
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WalkForwardResult:
        fields = {f.name for f in dataclasses.fields(cls)} - {"evaluation"}
        return cls(**{k: v for k, v in d.items() if k in fields}, evaluation=EvaluationResult.from_json(d["stitched"]))

    def fold_table(self) -> Table:
        base = self.base
        t = Table(
            f"Walk-forward by fold: {len(self.folds)} folds, {self.backtest.get('signal', '')} signal",
            [
                "fold",
                "test",
                "train bars",
                "model",
                "IC",
                "IC t",
                "MASE",
                "CRPS %",
                f"MASE {base}",
                f"CRPS % {base}",
                "return",
                "max DD",
            ],
            caption=f"IC and scores of the fold's refitted model ({MODEL}) on its test period; MASE < 1 beats the last "
            f"close; return and max drawdown: the span's one backtest (with cost) over the fold's days",
        )
        for f in self.folds:
            m, b, p = f["scores"][MODEL], f["scores"][base], f["portfolio"]
            t.add(
                f["fold"],
                " .. ".join(f["test"]),
                f"{f['train_bars']:,}",
                "refit" if f["refit"] else f"fold {f['model_of_fold']}",
                num(_f(m["IC"]), 3),
                num(_f(m["IC_t"]), 2),
                num(_f(m["MASE"]), 3),
                pct(_f(m["CRPS"]), 3),
                num(_f(b["MASE"]), 3),
                pct(_f(b["CRPS"]), 3),
                pct(_f(p.get("return"))),
                pct(_f(p.get("max_drawdown"))),
            )
        return t

    def wins_table(self) -> Table:
        t = Table(
            "Folds won by the refitted model",
            ["against", "on", "won", "share", "sign test p"],
            caption="a win: a lower mean error on the fold's test period; p: one-sided binomial test against "
            "a coin flip",
        )
        for w in self.wins:
            t.add(
                w["against"],
                w["metric"],
                f"{w['wins']} of {w['folds']}",
                pct(_f(w["share"]), 0),
                num(_f(w["p_value"]), 3),
            )
        return t

    def span_table(self) -> Table:
        b, s = self.backtest, self.backtest.get("stats", {}).get("with_cost", {})
        x = self.backtest.get("stats", {}).get("excess_with_cost", {})
        t = Table(
            f"One backtest over the span: {b.get('strategy', '')}",
            ["range", "days", "return", "annualised", "max DD", "IR", f"excess over {b.get('benchmark', '')}"],
            caption="positions carried across fold boundaries; compounded, with cost",
        )
        t.add(
            " .. ".join(b.get("range", [])),
            b.get("days", ""),
            pct(_f(s.get("total_return"))),
            pct(_f(s.get("annualized_return"))),
            pct(_f(s.get("max_drawdown"))),
            num(_f(s.get("information_ratio")), 2),
            pct(_f(x.get("total_return"))),
        )
        return t

    def tables(self) -> list[Table]:
        return [self.fold_table(), self.wins_table(), self.span_table(), *self.evaluation.tables()]

    def report_text(self) -> str:
        head = [
            f"Kronos walk-forward: {self.run_name}, {len(self.folds)} folds, embargo {self.embargo} bars",
            f"stitched test span: {self.backtest.get('range')}",
            "",
        ]
        return "\n".join(head) + render_text(self.tables()) + "\n" + self.evaluation.report_text()

    def plots(self, out: Path) -> dict[str, str]:
        folds = [str(f["fold"]) for f in self.folds]
        made = {}
        if self.daily.get("date"):
            daily = pd.DataFrame(
                {k: v for k, v in self.daily.items() if k != "date"}, index=pd.to_datetime(self.daily["date"])
            )
            starts = [pd.Timestamp(f["test"][0]) for f in self.folds]
            made["returns_plot"] = plot_walkforward(
                daily,
                starts,
                out / "cumulative_excess.png",
                f"{self.run_name}: walk-forward backtest",
                self.backtest["benchmark"],
            )
        labels = list(self.folds[0]["scores"]) if self.folds else []
        for key, name, ylabel, scale in (
            ("IC", "ic_by_fold.png", "mean daily IC", 1),
            ("MASE", "mase_by_fold.png", "MASE (below 1 beats the last close)", 1),
            ("CRPS", "crps_by_fold.png", "CRPS (% of the last close)", 100),
        ):
            values = {lab: [scale * _f(f["scores"][lab][key]) for f in self.folds] for lab in labels}
            values = {k: v for k, v in values.items() if any(x == x for x in v)}
            if values:
                made[name.removesuffix(".png")] = plot_by_fold(
                    values, folds, out / name, f"{self.run_name}: {key} by fold", ylabel
                )
        return {k: str(v) for k, v in made.items()}


def _f(x: Any) -> float:
    """A score as a float: JSON's null (a score not defined) is NaN."""
    return float("nan") if x is None else float(x)
