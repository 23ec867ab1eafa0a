"""`kronos pipeline`: prep, train-tokenizer, train-predictor, backtest and export in order.

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
from pathlib import Path
from typing import Any

from kronos_cli.backtest.run import run_backtest
from kronos_cli.config import Config
from kronos_cli.data.prep import dataset_hash, prepare
from kronos_cli.errors import KronosError
from kronos_cli.export.run import FORMATS, run_export
from kronos_cli.io import write_json
from kronos_cli.runs import backtest_dir, export_dir, pipeline_stamps, run_dir
from kronos_cli.train.distributed import Context, Launch
from kronos_cli.train.launch import run_stage
from kronos_cli.train.state import Observer, TrainOptions

log = logging.getLogger(__name__)

STAGES = ("prep", "train-tokenizer", "train-predictor", "backtest", "export")
DEPENDS_ON = {
    "train-tokenizer": "prep",
    "train-predictor": "train-tokenizer",
    "backtest": "train-predictor",
    "export": "train-predictor",
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
    h["backtest"] = _sha(h["train-predictor"], dataclasses.asdict(cfg.backtest))
    h["export"] = _sha(h["train-predictor"], sorted(export_formats))
    return h


def _outputs_exist(cfg: Config, stage: str) -> bool:
    if stage == "prep":
        return (Path(cfg.data.dataset_path) / "manifest.json").is_file()
    if stage.startswith("train-"):
        d = run_dir(cfg, stage.split("-", 1)[1])
        return (d / "summary.json").is_file() and (d / "checkpoints" / "best_model" / "model.safetensors").is_file()
    if stage == "backtest":
        return (backtest_dir(cfg) / "backtest_results.json").is_file()
    return (export_dir(cfg) / "export_report.json").is_file()


def select(start: str | None, until: str | None) -> list[str]:
    for name, value in (("--from", start), ("--until", until)):
        if value is not None and value not in STAGES:
            raise KronosError(f"{name} {value}: unknown stage; choose from {', '.join(STAGES)}")
    lo = STAGES.index(start) if start else 0
    hi = STAGES.index(until) if until else len(STAGES) - 1
    if lo > hi:
        raise KronosError(f"--from {start} comes after --until {until}")
    return list(STAGES[lo : hi + 1])


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
) -> dict[str, Any]:
    """Run the selected stages; the training stages go through the launcher like `kronos train-*`."""
    formats = list(export_formats or FORMATS)
    hashes = stage_hashes(cfg, formats)
    stamp_file = pipeline_stamps(cfg)
    stamps = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
    results: dict[str, Any] = {"stages": {}}
    for stage in select(start, until):
        if not force and stamps.get(stage) == hashes[stage] and _outputs_exist(cfg, stage):
            log.info("%s: up to date, skipped", stage)
            results["stages"][stage] = "skipped"
            if on_stage:
                on_stage(stage, "skipped")
            continue
        if on_stage:
            on_stage(stage, "running")
        if stage == "prep":
            results["prep"] = prepare(cfg)
        elif stage.startswith("train-"):
            options = TrainOptions(stage.split("-", 1)[1])
            results[stage] = run_stage(cfg, options, device, launch_opts, make_observer).to_json()
        elif stage == "backtest":
            results["backtest"] = run_backtest(cfg, device=device)
        else:
            results["export"] = run_export(cfg, export_dir(cfg), formats, force=True)
        stamps[stage] = hashes[stage]
        for later in downstream(stage):  # a stage that ran makes the outputs built on it stale
            stamps.pop(later, None)
        write_json(stamp_file, stamps)
        results["stages"][stage] = "done"
    results["paths"] = {
        "backtest_results": str(backtest_dir(cfg) / "backtest_results.json"),
        "report": str(backtest_dir(cfg) / "analysis_report.txt"),
        "plot": str(backtest_dir(cfg) / "performance_plot.png"),
        "exported": str(export_dir(cfg)),
    }
    return results
