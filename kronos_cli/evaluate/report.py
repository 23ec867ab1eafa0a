"""The result of `kronos evaluate`, typed: every model's and baseline's scores, the significance tests, the
leaderboard and the plots."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.core.tables import Table, num, pct, render_text
from kronos_cli.evaluate.comparisons import LEVEL, Comparison, strongest_baselines
from kronos_cli.evaluate.coverage import coverage_table
from kronos_cli.evaluate.sample import counted
from kronos_cli.evaluate.scores import LOSSES, MIN_TIMES, ModelScores
from kronos_cli.report.plots import plot_by_horizon, plot_calibration, plot_ic_by_month, plot_pit
from kronos_cli.runtime.precision import precision_table

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
]
CROSS_SECTION = [  # skill across symbols, where the split has a cross-section
    ("IC", lambda s: s.ic["IC"], "high"),
    ("Rank IC", lambda s: s.ic["Rank IC"], "high"),
    ("IC t", lambda s: s.ic["IC_t"], "high"),
]
OVER_TIME = [  # skill over time, where it has not (one or two symbols)
    ("TS corr", lambda s: s.time_series.get("corr", float("nan")), "high"),
    ("TS t", lambda s: s.time_series.get("t", float("nan")), "high"),
]
PERCENT = {"MAE %", "CRPS %", "cov50", "cov80", "cov90", "direction"}


@dataclass
class EvaluationResult:
    run_name: str
    split: str
    windows: int  # (signal time, symbol) windows of the split
    labelled: int  # of which the future is known
    symbols: int  # symbols with a labelled window
    times: int  # signal times with a labelled window (what the tests run over)
    ic_times: int  # signal times with a cross-section (at least MIN_NAMES labelled symbols)
    time_unit: str  # what a signal time is: day, or 1h bar, 5min bar
    sampling: dict[str, Any]
    models: list[ModelScores]
    comparisons: list[Comparison]
    conventions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # forecasting; scoring (baselines included)
    outputs: dict[str, str] = field(default_factory=dict)
    precision: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> bf16/fp16 deviation from fp32
    calibrated: dict[str, str] = field(default_factory=dict)  # a row through the run's bands -> the model's own row
    examples: list[dict[str, Any]] = field(default_factory=list)  # windows the report draws as fans (`fans.py`)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("models", "comparisons")}
        d["models"] = [m.to_json() for m in self.models]
        d["comparisons"] = [{**dataclasses.asdict(c), "verdict": c.verdict} for c in self.comparisons]
        d["headline"] = self.headline()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvaluationResult:
        """The result as `to_json` saved it in evaluation.json (the losses behind the tests are not kept)."""
        fields = {k: v for k, v in d.items() if k not in ("models", "comparisons", "precision", "headline")}
        return cls(
            **fields,
            models=[ModelScores(**_nan(m)) for m in d["models"]],
            comparisons=[Comparison(**{k: v for k, v in _nan(c).items() if k != "verdict"}) for c in d["comparisons"]],
            precision=_nan(d.get("precision", {})),
        )

    @property
    def cross_section(self) -> bool:
        return self.ic_times >= MIN_TIMES

    def beaten(self, label: str, metric: str) -> list[str]:
        """The baselines `label` beats on `metric` (a Diebold-Mariano test, p < 0.05)."""
        return [c.b for c in self._against_baselines(label, metric) if c.a_better]

    def _against_baselines(self, label: str, metric: str) -> list[Comparison]:
        baselines = {m.label for m in self.models if m.kind == "baseline"}
        return [c for c in self.comparisons if c.a == label and c.metric == metric and c.b in baselines]

    def _beats_cell(self, label: str, metric: str) -> str:
        beaten, tested = self.beaten(label, metric), [c.b for c in self._against_baselines(label, metric)]
        if len(beaten) > 1 and len(beaten) == len(tested):
            return "all"
        if len(beaten) > 1 and len(beaten) == len(tested) - 1:
            return "all but " + next(b for b in tested if b not in beaten)
        return ", ".join(beaten) or "-"

    def headline(self) -> dict[str, dict[str, dict[str, Any]]]:
        """model -> score -> its test against that score's strongest baseline: baseline, verdict, p-value."""
        strongest, out = strongest_baselines(self.models), {}
        for m in (m for m in self.models if m.kind == "model"):
            tests = {(c.b, c.metric): c for c in self.comparisons if c.a == m.label}
            out[m.label] = {
                metric: {"baseline": b, "verdict": _verdict(c), "p_value": c.p_value}
                for metric, b in strongest.items()
                if (c := tests.get((b, metric))) is not None
            }
        return out

    def tables(self) -> list[Table]:
        extra = [precision_table(p) for p in self.precision.values()]
        for label, t in zip(self.precision, extra):
            t.title = f"{label}: {t.title}"
        bands = [self._coverage()] if self.calibrated else []
        return [self._board(), *bands, self._verdicts(), self._significance(), *extra]

    def _coverage(self) -> Table:
        """Each calibrated model's coverage on this split before (its paths) and after its bands."""
        by_label = {m.label: m for m in self.models}
        rows = []
        for after, before in self.calibrated.items():
            rows += [
                (f"{before}: paths (before)", by_label[before].coverage, by_label[before].coverage_se),
                (after, by_label[after].coverage, by_label[after].coverage_se),
            ]
        where = (
            "fitted on windows of this same split: not an out-of-sample measure"
            if self.split == "val"
            else "fitted on the validation split only, which ends before this split begins"
        )
        return coverage_table(
            f"Coverage on the {self.split} split before and after calibration ({self.labelled:,} windows)",
            rows,
            f"Bands {where}.",
        )

    def _board(self) -> Table:
        columns = COLUMNS + (CROSS_SECTION if self.cross_section else OVER_TIME)
        board = Table(
            f"kronos evaluate: {self.split} split, {counted(self.symbols, 'symbol')}: {self.labelled:,} of "
            f"{self.windows:,} windows with a known future over {counted(self.times, self.time_unit)}",
            ["model", *[c[0] for c in columns], *[f"beats on {m}" for m in LOSSES]],
            caption=self.conventions["units"] + " Best of each column marked; 'beats on' lists the baselines "
            "a Diebold-Mariano test says the model beats on that score (p < 0.05).",
        )
        for m in self.models:
            beats = [self._beats_cell(m.label, metric) if m.kind == "model" else "" for metric in LOSSES]
            board.add(m.label, *[_cell(title, get(m)) for title, get, _ in columns], *beats)
        for col, (_, get, better) in enumerate(columns, start=1):
            values = np.array([get(m) for m in self.models], dtype=float)
            if np.isfinite(values).any():
                key = -values if better == "high" else values if better == "low" else np.abs(values - better)
                best = np.nanmin(np.where(np.isfinite(key), key, np.nan))
                board.bold |= {(r, col) for r in range(len(values)) if key[r] == best}
        return board

    def _verdicts(self) -> Table:
        strongest = strongest_baselines(self.models)
        t = Table(
            "Verdict: each model against the strongest baseline of each score (the lowest on the leaderboard)",
            ["model", *[f"{metric} vs {b}" for metric, b in strongest.items()]],
            caption="Diebold-Mariano tests as below; better or worse where p < 0.05.",
        )
        for label, verdicts in self.headline().items():
            t.add(label, *[_headline_cell(verdicts.get(metric)) for metric in strongest])
        return t

    def _significance(self) -> Table:
        unit = self.time_unit
        t = Table(
            f"Significance: Diebold-Mariano tests on losses per {unit} (negative statistic: the first is better)",
            ["first", "second", "score", "first's loss", "second's loss", "statistic", "p-value", "verdict"],
            caption=f"Each loss averaged over the windows of a {unit} (one series: each window's own), tested "
            f"over the {unit}s in order: Newey-West variance with predict - 1 lags (neighbouring windows' horizons "
            f"overlap), Harvey-Leybourne-Newbold correction, Student's t with n - 1 degrees of freedom (n {unit}s). "
            "MAE and CRPS in percent of the last close; WQL's losses are quantile losses over the mean |return|, so "
            "they average to the WQL.",
        )
        for c in self.comparisons:
            loss = (lambda x: num(x, 3)) if c.metric == "WQL" else (lambda x: pct(x, 3))
            t.add(c.a, c.b, c.metric, loss(c.loss_a), loss(c.loss_b), num(c.statistic, 2), num(c.p_value, 4), c.verdict)
        return t

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
        }
        monthly = {m.label: m.ic_by_month for m in self.models if m.ic_by_month}
        if monthly:  # no cross-section, no IC to plot
            files["ic_by_month"] = plot_ic_by_month(monthly, out / "ic_by_month.png", f"{title}: mean IC by month")
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
    return pct(value) if title in PERCENT else num(value, 2 if title in ("IC t", "TS t") else 3)


def _verdict(c: Comparison) -> str:
    if not c.p_value < LEVEL:
        return "no significant difference"
    return "better" if c.statistic < 0 else "worse"


def _headline_cell(v: dict[str, Any] | None) -> str:
    return "-" if v is None else f"{v['verdict']} (p {num(v['p_value'], 4)})"
