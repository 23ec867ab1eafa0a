"""MLflow runs, behind the same interface as the Comet logger (`log_metrics(metrics, step, epoch)`, `close()`):
parameters, per-step training metrics, a backtest's or an evaluation's scores and files as artifacts.

`logging.mlflow.tracking_uri` is a directory (a local file store, offline: the default `./mlruns`) or a server's
URI (http://, databricks, sqlite:///mlflow.db: MLflow 3 keeps its file store in maintenance mode and suggests a
database for new features; the file store is what needs no set-up). The client is used directly
(`MlflowClient`), not `mlflow.start_run`, so no run is left active in the process for other code to log into.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from kronos_cli.config import MlflowConfig
from kronos_cli.core.errors import KronosError

BATCH = 100  # MLflow's limit of parameters in one log_batch call
VALUE = 500  # characters of a parameter's value kept (a list of symbols can be long)


def tracking_uri(uri: str) -> str:
    """A URI as MLflow takes it: a plain path becomes the file URI of that directory."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):  # a scheme, not C:\
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def metric_name(name: str) -> str:
    """A name MLflow accepts: letters, digits and _ - . / and spaces; anything else becomes _."""
    return re.sub(r"[^\w\-. /]", "_", name)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


class MlflowLogger:
    """One MLflow run in `cfg.experiment` (created when missing), named `run_name`, with `params` (a nested dict,
    flattened to dotted keys) and `tags`."""

    def __init__(self, cfg: MlflowConfig, run_name: str, params: dict[str, Any], tags: dict[str, str] | None = None):
        try:
            from mlflow.entities import Param  # lazy: optional (the mlflow extra), and slow to import
            from mlflow.tracking import MlflowClient  # lazy: as above
        except ImportError as exc:
            raise KronosError("logging.mlflow.enabled needs mlflow: pip install mlflow") from exc
        uri = tracking_uri(cfg.tracking_uri)
        if uri.startswith("file:"):  # MLflow 3 refuses its file store unless asked; a directory in the config asks
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(cfg.experiment)
        experiment = found.experiment_id if found else self.client.create_experiment(cfg.experiment)
        self.run_id = self.client.create_run(experiment, run_name=run_name, tags=tags or {}).info.run_id
        flat = [Param(k, str(v)[:VALUE]) for k, v in flatten(params).items()]
        for i in range(0, len(flat), BATCH):
            self.client.log_batch(self.run_id, params=flat[i : i + BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, epoch: int | None = None) -> None:
        from mlflow.entities import Metric  # lazy: imported with mlflow in __init__ already

        now = int(time.time() * 1000)
        known = {k: float(v) for k, v in metrics.items() if v is not None and v == v}  # null or NaN: not measured
        values = [Metric(metric_name(k), v, now, step or 0) for k, v in known.items()]
        if epoch is not None:
            values.append(Metric("epoch", float(epoch), now, step or 0))
        for i in range(0, len(values), BATCH * 10):
            self.client.log_batch(self.run_id, metrics=values[i : i + BATCH * 10])

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
