"""Where training metrics go: always a local `metrics.jsonl`; Comet ML when enabled (key from the environment);
MLflow when enabled (a local file store by default, `tracking/mlflow.py`).

Only rank 0 writes: `MetricSink` is the one object the training loop talks to.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from kronos_cli.config import CometConfig, Config
from kronos_cli.core.errors import KronosError
from kronos_cli.tracking.mlflow import MlflowLogger

log = logging.getLogger(__name__)


class JsonlLogger:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", buffering=1)

    def log(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, default=float) + "\n")

    def close(self) -> None:
        self._f.close()


class CometLogger:
    """A Comet experiment, online (COMET_API_KEY) or offline (an archive in offline_directory)."""

    def __init__(self, cfg: CometConfig, run_name: str, params: dict[str, Any]):
        try:
            import comet_ml  # lazy: optional (the comet extra), and slow to import
        except ImportError as exc:
            raise KronosError("logging.comet.enabled needs comet_ml: pip install comet_ml") from exc
        # Only what we log explicitly: no captured console, environment, code or git details.
        quiet = dict(
            display_summary_level=0,
            log_code=False,
            log_graph=False,
            auto_param_logging=False,
            auto_metric_logging=False,
            auto_output_logging=False,
            log_env_details=False,
            log_git_metadata=False,
            log_git_patch=False,
            log_env_gpu=False,
            log_env_host=False,
            log_env_cpu=False,
            log_env_network=False,
            log_env_disk=False,
        )
        if cfg.offline:
            Path(cfg.offline_directory).mkdir(parents=True, exist_ok=True)
            self.exp = comet_ml.OfflineExperiment(
                project_name=cfg.project_name, workspace=cfg.workspace, offline_directory=cfg.offline_directory, **quiet
            )
        else:
            key = os.environ.get("COMET_API_KEY")
            if not key:
                raise KronosError(
                    "Comet logging is enabled but COMET_API_KEY is not set; export it, or set "
                    "logging.comet.offline=true to write an offline archive"
                )
            self.exp = comet_ml.Experiment(api_key=key, project_name=cfg.project_name, workspace=cfg.workspace, **quiet)
        self.exp.set_name(run_name)
        if cfg.tags:
            self.exp.add_tags(cfg.tags)
        self.exp.log_parameters(_flatten(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, epoch: int | None = None) -> None:
        self.exp.log_metrics(metrics, step=step, epoch=epoch)

    def close(self) -> None:
        self.exp.end()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class MetricSink:
    """Rank 0's metrics: `logs/metrics.jsonl` and, when enabled, Comet and MLflow (names as in the reference's
    scripts), each behind the same `log_metrics` and `close`."""

    def __init__(self, cfg: Config, out: Path, stage: str, active: bool):
        self.stage, self.active = stage, active
        self.jsonl = JsonlLogger(out / "logs" / "metrics.jsonl") if active else None
        self.trackers: list[CometLogger | MlflowLogger] = []
        if active and cfg.logging.comet.enabled:
            self.trackers.append(CometLogger(cfg.logging.comet, f"{cfg.run_name}-{stage}", cfg.to_dict()))
        if active and cfg.logging.mlflow.enabled:
            tags = {"kronos.command": f"train-{stage}", "kronos.run_name": cfg.run_name}
            self.trackers.append(MlflowLogger(cfg.logging.mlflow, f"{cfg.run_name}-{stage}", cfg.to_dict(), tags))

    def step(self, record: dict[str, Any], step: int, epoch: int) -> None:
        if not self.active:
            return
        self.jsonl.log({"type": "step", "stage": self.stage, **record})
        for tracker in self.trackers:
            tracker.log_metrics(
                {f"train_{self.stage}_loss_batch": record["loss"], f"{self.stage}_lr": record["lr"]},
                step=step,
                epoch=epoch,
            )

    def epoch(self, record: dict[str, Any], step: int) -> None:
        if not self.active:
            return
        self.jsonl.log({"type": "epoch", "stage": self.stage, **record})
        for tracker in self.trackers:
            tracker.log_metrics(
                {
                    f"val_{self.stage}_loss_epoch": record["val_loss"],
                    f"train_{self.stage}_loss_epoch": record["train_loss"],
                },
                step=step,
                epoch=record["epoch"],
            )

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()
        for tracker in self.trackers:
            tracker.close()


def attach_file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("kronos_cli")
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
