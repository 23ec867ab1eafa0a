"""MLflow beside Comet, against a real local file store: a training stage's parameters and per-step metrics, and
a recorded run's scores and files, read back with MLflow's own client."""

from __future__ import annotations

import json

import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import write_json
from kronos_cli.records.record import recorded_set
from kronos_cli.tracking.mlflow import metric_name, tracking_uri
from kronos_cli.train.loggers import MetricSink

mlflow = pytest.importorskip("mlflow")


def _cfg(tmp_path, *more):
    store = tmp_path / "mlruns"
    return config.load(
        None,
        [
            f"output_dir={tmp_path / 'out'}",
            "run_name=r",
            "logging.mlflow.enabled=true",
            f"logging.mlflow.tracking_uri={store}",
            *more,
        ],
    )


def _runs(cfg):
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri(cfg.logging.mlflow.tracking_uri))
    experiment = client.get_experiment_by_name(cfg.logging.mlflow.experiment)
    return client, client.search_runs([experiment.experiment_id])


def test_a_training_stage_logs_its_parameters_and_metrics_per_step(tmp_path):
    cfg = _cfg(tmp_path)
    sink = MetricSink(cfg, tmp_path / "run", "predictor", active=True)
    for step in (1, 2, 3):
        sink.step({"loss": 1.0 / step, "lr": 1e-3}, step=step, epoch=0)
    sink.epoch({"epoch": 0, "val_loss": 0.5, "train_loss": 0.6}, step=3)
    sink.close()
    client, (run,) = _runs(cfg)
    assert run.info.run_name == "r-predictor" and run.info.status == "FINISHED"
    assert run.data.params["training.batch_size"] == str(cfg.training.batch_size)
    history = client.get_metric_history(run.info.run_id, "train_predictor_loss_batch")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert run.data.metrics["val_predictor_loss_epoch"] == 0.5
    assert (tmp_path / "run" / "logs" / "metrics.jsonl").read_text().count("\n") == 4  # the local file as before


def test_a_recorded_run_logs_its_scores_and_files(tmp_path):
    cfg = _cfg(tmp_path)
    results = {
        "predictor": "m",
        "portfolio": {"mean": {"with_cost": {"annualized_return": 0.12, "information_ratio": 1.5, "bars": 100}}},
        "signal_quality": {"mean": {"IC": 0.05, "ICIR": None}},
    }
    with recorded_set(cfg, "backtest", [tmp_path / "out" / "backtest_results" / "r"]) as run:
        write_json(run.staging / "backtest_results.json", results)
        (run.staging / "report.html").write_text("<html></html>")
    client, (tracked,) = _runs(cfg)
    assert tracked.data.tags["kronos.run_id"] == run.path.name and tracked.data.tags["kronos.command"] == "backtest"
    assert tracked.data.metrics["mean.with_cost.annualized_return"] == 0.12 and tracked.data.metrics["mean.IC"] == 0.05
    assert "mean.ICIR" not in tracked.data.metrics  # null: not measured, not logged as 0
    files = {f.path for f in client.list_artifacts(tracked.info.run_id)}
    assert files == {"report.html", "backtest_results.json"}
    local = client.download_artifacts(tracked.info.run_id, "backtest_results.json", str(tmp_path / "dl"))
    assert json.loads(open(local).read()) == results


def test_names_and_uris_as_mlflow_takes_them(tmp_path):
    assert metric_name("hist. vol (normal).MAE") == "hist. vol _normal_.MAE"
    assert tracking_uri("http://host:5000") == "http://host:5000"
    assert tracking_uri(str(tmp_path / "m")) == (tmp_path / "m").resolve().as_uri()


def test_without_mlflow_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *a, **k):
        if name.startswith("mlflow"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(KronosError, match="pip install mlflow"):
        MetricSink(_cfg(tmp_path), tmp_path / "run", "predictor", active=True)
