"""Both stages train on the CPU through the CLI and leave a complete run directory."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.model import Kronos, KronosTokenizer

runner = CliRunner()


def test_tokenizer_then_predictor_run_directories(train_overrides, tmp_path):
    ov = train_overrides()
    res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    run = tmp_path / "out" / "models" / "t" / "tokenizer"
    assert summary["epochs_completed"] == 2 and summary["world_size"] == 1
    for rel in (
        "checkpoints/best_model/config.json",
        "checkpoints/best_model/model.safetensors",
        "checkpoints/epoch_1/model.safetensors",
        "checkpoints/last/trainer_state.pt",
        "logs/metrics.jsonl",
        "logs/train.log",
        "config.json",
        "summary.json",
        "loss_curve.png",
    ):
        assert (run / rel).is_file(), rel
    KronosTokenizer.from_pretrained(run / "checkpoints" / "best_model")
    records = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert {r["type"] for r in records} == {"step", "epoch"}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if r["type"] == "step")

    # the predictor picks up this run's fine-tuned tokenizer by default
    res = runner.invoke(app, ["train-predictor", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    pred = tmp_path / "out" / "models" / "t" / "predictor"
    model = Kronos.from_pretrained(pred / "checkpoints" / "best_model")
    assert model.config.d_model == 32
    log = (pred / "logs" / "train.log").read_text()
    assert "training the predictor" in log
    cfg = json.loads((pred / "config.json").read_text())
    assert cfg["training"]["epochs"] == 2 and "api_key" not in json.dumps(cfg)


def test_max_steps_and_early_stopping(train_overrides):
    ov = train_overrides(**{"training.epochs": 6, "training.patience": 1, "training.tokenizer_learning_rate": 0.0})
    res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["stopped_early"] and summary["epochs_completed"] == 2  # no improvement after epoch 1
    again = runner.invoke(app, ["train-tokenizer", *train_overrides(), "--device", "cpu"])
    assert again.exit_code == 2 and "holds the checkpoints of an earlier run; pass --resume auto" in again.output
    res = runner.invoke(
        app, ["train-tokenizer", *train_overrides(), "--device", "cpu", "--json", "--max-steps", "4", "--overwrite"]
    )
    assert json.loads(res.stdout)["steps"] == 4


def test_bad_training_input(train_overrides, tmp_path):
    cases = [
        (train_overrides(**{"data.dataset_path": str(tmp_path / "none")}), "run `kronos prep"),
        (train_overrides(**{"data.lookback_window": 40}), "built with lookback_window=30"),
        (train_overrides(**{"training.batch_size": 100000}), "exceeds the"),
        (train_overrides(**{"model.tokenizer": str(tmp_path / "missing")}), "no checkpoint directory"),
    ]
    for ov, message in cases:
        res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu"])
        assert res.exit_code == 2 and message in res.output, (message, res.output)
    if not torch.cuda.is_available():
        res = runner.invoke(app, ["train-predictor", *train_overrides(), "--gpus", "2"])
        assert res.exit_code == 2 and "needs CUDA" in res.output
    res = runner.invoke(app, ["train-tokenizer", *train_overrides(), "--resume", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no checkpoint there" in res.output


def test_no_space_left_keeps_previous_best_model(train_overrides, tmp_path, monkeypatch):
    import errno

    from kronos_cli.model import checkpoint

    ov = train_overrides(**{"training.epochs": 1})
    assert runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu"]).exit_code == 0
    best = tmp_path / "out" / "models" / "t" / "tokenizer" / "checkpoints" / "best_model"
    before = (best / "model.safetensors").read_bytes()

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu", "--overwrite"])
    assert res.exit_code == 1 and "No space left on device" in res.output and "is intact" in res.output
    assert (best / "model.safetensors").read_bytes() == before
    assert not [p for p in best.parent.iterdir() if p.name.startswith(".")]
    del checkpoint


def test_comet_offline_archive_holds_the_metrics(train_overrides, tmp_path, monkeypatch):
    import zipfile

    monkeypatch.delenv("COMET_API_KEY", raising=False)
    comet_dir = tmp_path / "comet"
    ov = train_overrides(
        **{
            "logging.comet.enabled": "true",
            "logging.comet.offline": "true",
            "logging.comet.offline_directory": str(comet_dir),
            "training.epochs": 1,
        }
    )
    res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    archives = list(comet_dir.glob("*.zip"))
    assert len(archives) == 1
    messages = zipfile.ZipFile(archives[0]).read("messages.json").decode()
    assert "train_tokenizer_loss_batch" in messages and "val_tokenizer_loss_epoch" in messages


def test_comet_online_without_key_is_a_user_error(train_overrides, monkeypatch):
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    ov = train_overrides(**{"logging.comet.enabled": "true"})
    res = runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu"])
    assert res.exit_code == 2 and "COMET_API_KEY" in res.output


def test_every_run_says_whether_it_beat_its_starting_model(train_overrides, tmp_path):
    res = runner.invoke(app, ["train-tokenizer", *train_overrides(**{"training.epochs": 2}), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "validation loss" in res.output and "its start" in res.output
    summary = json.loads((tmp_path / "out" / "models" / "t" / "tokenizer" / "summary.json").read_text())
    start, best = summary["val_loss_start"], summary["best_val_loss"]
    assert start is not None and summary["improvement"] == (start - best) / abs(start)


def test_l2_to_init_pulls_toward_the_starting_weights():
    from kronos_cli.train.forgetting import AnchorPenalty

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    penalty = AnchorPenalty([p], 0.5)
    with torch.no_grad():
        p += torch.tensor([0.3, 0.1])  # a step away from the start
    penalty([p]).backward()
    assert torch.allclose(p.grad, 2 * 0.5 * torch.tensor([0.3, 0.1]))  # descending it goes back
    assert AnchorPenalty([p], 0.0)([p]) is None  # off: no term, no copy of the weights
