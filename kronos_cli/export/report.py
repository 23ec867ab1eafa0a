"""The result of an export, typed: what each artifact is, how it was checked, and its table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kronos_cli.core.tables import Table, num

REQUIRED = ("bundle", "hf")  # a failure of these fails the export; int8, int4 and compiled only warn


@dataclass
class ArtifactCheck:
    format: str
    path: str
    bytes: int = 0
    verified: bool = False  # reloaded in a fresh process and within its tolerance
    tolerance: str = ""
    max_abs_diff: float = float("nan")  # greedy forecasts against the eager fp32 model, normalised units
    mean_abs_diff: float = float("nan")
    token_agreement: float | None = None  # int8, int4: share of tokens and next-token predictions kept the same
    rank_correlation: float | None = None  # int8, int4: Spearman correlation of the forecast signal across windows
    opset: int | None = None  # onnx: the ONNX opset of its graphs
    error: str | None = None

    @property
    def required(self) -> bool:
        return self.format in REQUIRED


@dataclass
class ExportReport:
    out: str
    tokenizer: str
    predictor: str
    verify_windows: int
    lookback: int
    pred_len: int
    artifacts: list[ArtifactCheck]
    int8: dict[str, float] | None = None  # size and CPU speed against fp32
    int4: dict[str, float] | None = None
    pushed: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_required(self) -> list[str]:
        return [a.format for a in self.artifacts if a.required and not a.verified]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def tables(self) -> list[Table]:
        t = Table(
            f"kronos export -> {self.out}",
            ["format", "size", "max |diff|", "mean |diff|", "tokens kept", "signal rank corr", "tolerance", "verified"],
            caption=f"greedy forecasts of {self.verify_windows} held-out windows, reloaded in a fresh process, "
            f"against the eager fp32 model (normalised units)",
        )
        for a in self.artifacts:
            t.add(
                a.format,
                f"{a.bytes / 1e6:.2f} MB",
                num(a.max_abs_diff, 6),
                num(a.mean_abs_diff, 6),
                "-" if a.token_agreement is None else f"{a.token_agreement:.1%}",
                "-" if a.rank_correlation is None else num(a.rank_correlation, 3),
                a.tolerance,
                "yes" if a.verified else f"NO{': ' + a.error if a.error else ''}",
            )
        for name, figures in (("int8", self.int8), ("int4", self.int4)):
            if figures:
                t.caption += (
                    f"; {name} is {figures['size_ratio']:.0%} of the fp32 size and runs at "
                    f"{figures['cpu_speedup']:.2f}x the fp32 speed on this CPU"
                )
        return [t]
