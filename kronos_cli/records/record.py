"""Recording a run: its result set written into a new directory under `<output_dir>/runs/`, the links pointed at
it, and, with `logging.mlflow.enabled`, its config, key scores and files logged as an MLflow run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kronos_cli.config import Config, MlflowConfig
from kronos_cli.core.io import STAMP, result_set, sweep_staging, write_json
from kronos_cli.records.runs import result_about, runs_root
from kronos_cli.records.store import CONFIG, LATEST, free_path, point, run_id
from kronos_cli.records.summary import RESULTS, all_scores, command_of
from kronos_cli.tracking.mlflow import MlflowLogger

TRACKED = ("report.html", *RESULTS.values())  # the files an MLflow run gets as artifacts


@dataclass
class Recording:
    path: Path  # the run's own directory, once written
    staging: Path  # where its files are written until then


@contextlib.contextmanager
def recorded_set(cfg: Config, command: str, links: list[Path]) -> Iterator[Recording]:
    """A new run directory under `runs_root(cfg)` written as one result set (`io.result_set`, the resolved config
    beside its files), then `links` and `runs/latest` pointed at it, then tracked."""
    root, about = runs_root(cfg), result_about(cfg, command)
    root.mkdir(parents=True, exist_ok=True)
    sweep_staging(root)  # what a killed run left: its own id is not this run's, so its write would never sweep it
    path = free_path(root, run_id(about, datetime.now(timezone.utc).strftime(STAMP)))
    where = [os.path.relpath(link, root.parent) for link in links]  # which links the run may take over (`rm`)
    with result_set(path, {**about, "run_id": path.name, "links": where}) as tmp:
        write_json(tmp / CONFIG, cfg.to_dict())
        yield Recording(path, tmp)
    for link in [*links, root / LATEST]:
        point(link, path, root)
    if cfg.logging.mlflow.enabled:
        track(cfg.logging.mlflow, path, cfg)


def track(settings: MlflowConfig, run: Path, cfg: Config) -> str:
    """Log the run in `run` to MLflow: the config as parameters, its scores, its report and results files; returns
    the MLflow run's id."""
    command = command_of(run)
    tags = {"kronos.command": command, "kronos.run_name": cfg.run_name, "kronos.run_id": run.name}
    logger = MlflowLogger(settings, f"{cfg.run_name}-{command}-{run.name[:16]}", cfg.to_dict(), tags)
    logger.log_metrics(all_scores(run))
    logger.log_artifacts([run / name for name in TRACKED if (run / name).is_file()])
    logger.close()
    return logger.run_id
