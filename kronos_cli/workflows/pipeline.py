"""`kronos pipeline`: prep, train-tokenizer, train-predictor, backtest, export and evaluate in order.

A stage is skipped when its outputs exist and were made from the same inputs: each stage's hash covers its
own config sections and the hash of the stage before it, and is stamped in
`<output_dir>/pipeline/<run_name>.json` when the stage completes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos_cli.backtest.report import BacktestResult
from kronos_cli.backtest.run import run_backtest
from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import whole_result_set, write_json
from kronos_cli.data.prep import dataset_hash, prepare
from kronos_cli.evaluate.run import run_evaluate
from kronos_cli.export.run import DEFAULT_FORMATS, run_export
from kronos_cli.records.runs import backtest_dir, evaluation_dir, export_dir, pipeline_stamps, run_dir, sampling_file
from kronos_cli.runtime.distributed import Context, Launch
from kronos_cli.train.launch import run_stage
from kronos_cli.train.state import Observer, TrainOptions

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]

STAGES = ("prep", "train-tokenizer", "train-predictor", "backtest", "export", "evaluate")
DEPENDS_ON = {
    "train-tokenizer": "prep",
    "train-predictor": "train-tokenizer",
    "backtest": "train-predictor",
    "export": "train-predictor",
    "evaluate": "train-predictor",
}


def downstream(stage: str) -> list[str]:
    """The stages whose inputs include `stage`'s outputs, directly or not."""
    out = []
    for s in STAGES:
        parent = DEPENDS_ON.get(s)
        while parent is not None:
            if parent == stage:
                out.append(s)
                break
            parent = DEPENDS_ON.get(parent)
    return out


def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_hashes(cfg: Config, export_formats: list[str]) -> dict[str, str]:
    h = {"prep": dataset_hash(cfg)}
    training = dataclasses.asdict(cfg.training)
    h["train-tokenizer"] = _sha(h["prep"], cfg.model.tokenizer, training, cfg.seed, cfg.run_name)
    h["train-predictor"] = _sha(h["train-tokenizer"], cfg.model.predictor)
    calibrated = sampling_file(cfg)
    sampling = calibrated.read_text() if cfg.backtest.sampling == "calibrated" and calibrated.is_file() else None
    h["backtest"] = _sha(h["train-predictor"], dataclasses.asdict(cfg.backtest), sampling)
    h["export"] = _sha(h["train-predictor"], sorted(export_formats))
    h["evaluate"] = _sha(
        h["train-predictor"], dataclasses.asdict(cfg.backtest), sampling, dataclasses.asdict(cfg.evaluate)
    )
    return h


def _outputs_exist(cfg: Config, stage: str) -> bool:
    if stage == "prep":
        return (Path(cfg.data.dataset_path) / "manifest.json").is_file()
    if stage.startswith("train-"):
        d = run_dir(cfg, stage.split("-", 1)[1])
        return (d / "summary.json").is_file() and (d / "checkpoints" / "best_model" / "model.safetensors").is_file()
    again = f"the {stage} stage runs again"  # a result set that is not whole is said, and made again
    if stage == "backtest":
        return whole_result_set(backtest_dir(cfg), "backtest_results.json", otherwise=again)
    if stage == "evaluate":
        return whole_result_set(evaluation_dir(cfg, cfg.evaluate.split), "evaluation.json", otherwise=again)
    return (export_dir(cfg) / "export_report.json").is_file()


def select(start: str | None, until: str | None) -> list[str]:
    for name, value in (("start", start), ("until", until)):
        if value is not None and value not in STAGES:
            raise KronosError(f"{name} {value}: unknown stage; choose from {', '.join(STAGES)}", setting=name)
    lo = STAGES.index(start) if start else 0
    hi = STAGES.index(until) if until else len(STAGES) - 1
    if lo > hi:
        raise KronosError(f"start {start} comes after until {until}", ("start", "until"))
    return list(STAGES[lo : hi + 1])


@dataclass
class PipelineResult:
    """What each selected stage did (done, skipped or failed), the results of those that ran, and where the
    outputs are; `failed` and `error` name the stage that stopped the run."""

    stages: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # stage -> its typed result (manifest for prep)
    paths: dict[str, str] = field(default_factory=dict)
    failed: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        def plain(r: Any) -> Any:
            if hasattr(r, "to_json"):
                return r.to_json(full=False) if isinstance(r, BacktestResult) else r.to_json()
            return r

        return {
            "stages": self.stages,
            "paths": self.paths,
            "failed": self.failed,
            "error": self.error,
            **{k.replace("-", "_"): plain(v) for k, v in self.results.items()},
        }


class PipelineFailed(Exception):
    """A stage failed: the partial result, and the stage's own exception (whose exit code the CLI keeps)."""

    def __init__(self, result: PipelineResult, cause: BaseException):
        super().__init__(str(cause))
        self.result, self.cause = result, cause


def existing_paths(cfg: Config) -> dict[str, str]:
    """The pipeline's summary outputs that exist now (those of a result set only while the set is whole)."""
    candidates = {
        "dataset": Path(cfg.data.dataset_path) / "manifest.json",
        "tokenizer": run_dir(cfg, "tokenizer") / "checkpoints" / "best_model",
        "predictor": run_dir(cfg, "predictor") / "checkpoints" / "best_model",
        "backtest_results": backtest_dir(cfg) / "backtest_results.json",
        "report": backtest_dir(cfg) / "analysis_report.txt",
        "plot": backtest_dir(cfg) / "performance_plot.png",
        "exported": export_dir(cfg) / "export_report.json",
        "evaluation": evaluation_dir(cfg, cfg.evaluate.split) / "evaluation_report.txt",
    }
    in_sets = {"backtest_results", "report", "plot", "evaluation"}
    return {
        k: str(p.parent if k == "exported" else p)
        for k, p in candidates.items()
        if p.exists() and (k not in in_sets or whole_result_set(p.parent))
    }


def _run_stage(
    stage: str,
    cfg: Config,
    device: str,
    formats: list[str],
    launch_opts: Launch,
    make_observer: Callable[[Context], Observer] | None,
    progress: Progress | None,
) -> Any:
    if stage == "prep":
        return prepare(cfg, progress)
    if stage.startswith("train-"):
        # The pipeline redoes a stage whose inputs changed: it starts that stage's run afresh.
        options = TrainOptions(stage.split("-", 1)[1], overwrite=True)
        return run_stage(cfg, options, device, launch_opts, make_observer)
    if stage == "backtest":
        return run_backtest(cfg, device=device, progress=progress)
    if stage == "evaluate":
        return run_evaluate(cfg, device=device, progress=progress)
    return run_export(cfg, export_dir(cfg), formats, force=True, progress=progress)


def run_pipeline(
    cfg: Config,
    start: str | None = None,
    until: str | None = None,
    force: bool = False,
    device: str = "auto",
    export_formats: list[str] | None = None,
    launch_opts: Launch = Launch(),
    make_observer: Callable[[Context], Observer] | None = None,
    on_stage: Callable[[str, str], None] | None = None,
    progress: Progress | None = None,
) -> PipelineResult:
    """Run the selected stages; the training stages go through the launcher like `kronos train-*`. A failing stage
    raises `PipelineFailed` with what was done before it."""
    formats = list(export_formats or DEFAULT_FORMATS)
    hashes = stage_hashes(cfg, formats)
    stamp_file = pipeline_stamps(cfg)
    stamps = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
    result = PipelineResult()
    for stage in select(start, until):
        skip = not force and stamps.get(stage) == hashes[stage] and _outputs_exist(cfg, stage)
        result.stages[stage] = "skipped" if skip else "running"
        if on_stage:
            on_stage(stage, "skipped (up to date)" if skip else "running")
        if skip:
            continue
        try:
            result.results[stage] = _run_stage(stage, cfg, device, formats, launch_opts, make_observer, progress)
        except BaseException as exc:
            result.stages[stage], result.failed = "failed", stage
            result.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.paths = existing_paths(cfg)
            raise PipelineFailed(result, exc) from exc
        stamps[stage] = hashes[stage]
        for later in downstream(stage):  # a stage that ran makes the outputs built on it stale
            stamps.pop(later, None)
        write_json(stamp_file, stamps)
        result.stages[stage] = "done"
    result.paths = existing_paths(cfg)
    return result
