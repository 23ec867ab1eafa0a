"""The result of `kronos evaluate`, typed: every model's and baseline's scores, the significance tests, the
leaderboard and the plots."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.evaluate.scores import ModelScores
from kronos_cli.plots import plot_by_horizon, plot_calibration, plot_ic_by_month, plot_pit
from kronos_cli.split_forecasts import precision_table
from kronos_cli.tables import Table, num, pct, render_text

# leaderboard columns: (title, how to read it from the scores, better: "low", "high" or a nominal level)
COLUMNS = [
    ("MAE %", lambda s: s.overall["MAE"], "low"),
    ("MASE", lambda s: s.overall["MASE"], "low"),
    ("CRPS %", lambda s: s.overall["CRPS"], "low"),
    ("WQL", lambda s: s.overall["WQL"], "low"),
    ("cov50", lambda s: s.coverage["0.5"], 0.5),
    ("cov80", lambda s: s.coverage["0.8"], 0.8),
    ("cov90", lambda s: s.coverage["0.9"], 0.9),
    ("direction", lambda s: s.overall["direction"], "high"),
    ("IC", lambda s: s.ic["IC"], "high"),
    ("Rank IC", lambda s: s.ic["Rank IC"], "high"),
    ("IC t", lambda s: s.ic["IC_t"], "high"),
]
PERCENT = {"MAE %", "CRPS %", "cov50", "cov80", "cov90", "direction"}


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    loss_a: float
    loss_b: float
    statistic: float
    p_value: float
    days: int

    @property
    def verdict(self) -> str:
        if not self.p_value < 0.05:
            return "no significant difference"
        return f"{self.a} better" if self.statistic < 0 else f"{self.b} better"


@dataclass
class EvaluationResult:
    run_name: str
    split: str
    windows: int
    labelled: int
    days: int
    sampling: dict[str, Any]
    models: list[ModelScores]
    comparisons: list[Comparison]
    conventions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # forecasting; scoring (baselines included)
    outputs: dict[str, str] = field(default_factory=dict)
    precision: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> bf16/fp16 deviation from fp32

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("models", "comparisons")}
        d["models"] = [m.to_json() for m in self.models]
        d["comparisons"] = [{**dataclasses.asdict(c), "verdict": c.verdict} for c in self.comparisons]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvaluationResult:
        """The result as `to_json` saved it in evaluation.json (the daily losses behind the tests are not kept)."""
        fields = {k: v for k, v in d.items() if k not in ("models", "comparisons", "precision")}
        return cls(
            **fields,
            models=[ModelScores(**_nan(m)) for m in d["models"]],
            comparisons=[Comparison(**{k: v for k, v in _nan(c).items() if k != "verdict"}) for c in d["comparisons"]],
            precision=_nan(d.get("precision", {})),
        )

    def beats_last_close(self, label: str) -> list[str]:
        return [
            c.metric
            for c in self.comparisons
            if c.a == label and c.b == "last close" and c.p_value < 0.05 and c.statistic < 0
        ]

    def tables(self) -> list[Table]:
        board = Table(
            f"kronos evaluate: {self.split} split, {self.labelled:,} of {self.windows:,} windows with a known "
            f"future over {self.days} days",
            ["model", *[c[0] for c in COLUMNS], "beats last close"],
            caption=self.conventions["units"] + " Best of each column marked; 'beats last close' lists "
            "the scores on which a Diebold-Mariano test says the model is better (p < 0.05).",
        )
        for m in self.models:
            cells = [_cell(title, get(m)) for title, get, _ in COLUMNS]
            board.add(m.label, *cells, ", ".join(self.beats_last_close(m.label)) or "-")
        for col, (_, get, better) in enumerate(COLUMNS, start=1):
            values = np.array([get(m) for m in self.models], dtype=float)
            if np.isfinite(values).any():
                key = -values if better == "high" else values if better == "low" else np.abs(values - better)
                best = np.nanmin(np.where(np.isfinite(key), key, np.nan))
                board.bold |= {(r, col) for r in range(len(values)) if key[r] == best}
        sig = Table(
            "Significance: Diebold-Mariano tests on daily mean losses (negative statistic: the first is better)",
            ["first", "second", "score", "first's loss %", "second's loss %", "statistic", "p-value", "verdict"],
            caption="Newey-West variance with predict - 1 lags, Harvey-Leybourne-Newbold correction, "
            "Student's t with days - 1 degrees of freedom",
        )
        for c in self.comparisons:
            sig.add(
                c.a,
                c.b,
                c.metric,
                pct(c.loss_a, 3),
                pct(c.loss_b, 3),
                num(c.statistic, 2),
                num(c.p_value, 4),
                c.verdict,
            )
        extra = [precision_table(p) for p in self.precision.values()]
        for label, t in zip(self.precision, extra):
            t.title = f"{label}: {t.title}"
        return [board, sig, *extra]

    def report_text(self) -> str:
        head = [
            f"Kronos evaluation: {self.run_name}, {self.split} split",
            "=" * 60,
            f"sampling: {self.sampling}",
            *[f"{k}: {v}" for k, v in self.conventions.items()],
            *[f"note: {n}" for n in self.notes],
            "",
        ]
        return "\n".join(head) + render_text(self.tables())

    def plots(self, out: Path) -> dict[str, str]:
        title = f"{self.run_name}, {self.split} split"
        shown = [m for m in self.models if m.kind == "model" or m.label == "hist. vol (normal)"]
        files = {
            "error_by_horizon": plot_by_horizon(
                {m.label: m.by_horizon for m in self.models}, out / "error_by_horizon.png", title
            ),
            "calibration": plot_calibration(
                {m.label: m.coverage for m in shown}, out / "calibration.png", f"{title}: interval coverage"
            ),
            "pit": plot_pit({m.label: m.pit for m in shown}, out / "pit.png", f"{title}: PIT histograms"),
            "ic_by_month": plot_ic_by_month(
                {m.label: m.ic_by_month for m in self.models if m.ic_by_month},
                out / "ic_by_month.png",
                f"{title}: mean daily IC by month",
            ),
        }
        return {k: str(v) for k, v in files.items()}


def _nan(value: Any) -> Any:
    """Scores saved as null (strict JSON has no NaN) back to NaN, in mappings and lists of them."""
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return value


def _cell(title: str, value: float) -> str:
    if value != value:
        return "-"
    return pct(value) if title in PERCENT else num(value, 2 if title == "IC t" else 3)
