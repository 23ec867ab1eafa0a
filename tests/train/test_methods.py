"""What a run trains (`training.method`): LoRA adapters through peft (merged into the released layout, saved
alone in peft's format, checkpointed small and resumable), the head only, or all but the first blocks."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.model import Kronos
from kronos_cli.train.methods import apply_method, is_lora, releasable, trainable

runner = CliRunner()


def _training(method: str, *extra):
    return config.load(None, [f"training.method={method}", *extra]).training


def test_lora_merges_into_the_released_layout_with_the_same_outputs():
    torch.manual_seed(0)
    plain = Kronos.from_preset("tiny")
    model = apply_method(Kronos.from_preset("tiny"), _training("lora", "training.lora.rank=4"))
    model.load_state_dict(plain.state_dict(), strict=False)  # same base weights
    assert is_lora(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # trained adapters are not zero
    got, total = trainable(model)
    assert 0 < got < 0.25 * total and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    merged = releasable(model)
    assert set(merged.state_dict()) == set(plain.state_dict())  # loadable by the reference, key for key
    model.eval(), merged.eval()
    s1, s2 = torch.randint(0, 16, (2, 12)), torch.randint(0, 16, (2, 12))
    stamp = torch.zeros(2, 12, 5)
    kw = {"use_teacher_forcing": True, "s1_targets": s1}
    with torch.no_grad():
        a, b, c = model(s1, s2, stamp, **kw), merged(s1, s2, stamp, **kw), plain.eval()(s1, s2, stamp, **kw)
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)
    assert not torch.allclose(a[0], c[0], atol=1e-4)  # the adapters changed something


def test_head_and_freeze_methods():
    head = apply_method(Kronos.from_preset("tiny"), _training("head"))
    assert {n.split(".")[0] for n, p in head.named_parameters() if p.requires_grad} == {"head"}
    frozen = apply_method(Kronos.from_preset("tiny"), _training("freeze"))
    blocks = len(frozen.transformer)
    assert not any(p.requires_grad for p in frozen.transformer[0].parameters())
    assert all(p.requires_grad for p in frozen.transformer[blocks - 1].parameters())


def test_unknown_lora_target_is_a_user_error():
    from kronos_cli.core.errors import KronosError

    with pytest.raises(KronosError, match="training.lora.targets names nope, which the model does not have"):
        apply_method(Kronos.from_preset("tiny"), _training("lora", "training.lora.targets=[nope]"))


def test_lora_run_checkpoints_adapters_resumes_and_exports(train_overrides, tmp_path):
    ov = train_overrides(**{"training.method": "lora", "training.lora.rank": 4})
    assert runner.invoke(app, ["train-tokenizer", *train_overrides(), "--device", "cpu"]).exit_code == 0
    res = runner.invoke(app, ["train-predictor", *ov, "--device", "cpu", "--json", "--max-steps", "6"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # the method and what of the model it trained
    assert summary["method"] == "lora" and 0 < summary["trainable_params"] < summary["total_params"]
    assert summary["trainable_share"] == pytest.approx(summary["trainable_params"] / summary["total_params"], abs=1e-6)
    run = tmp_path / "out" / "models" / "t" / "predictor" / "checkpoints"
    assert (run / "last" / "adapter" / "adapter_model.safetensors").is_file() and not (run / "last" / "model").exists()
    Kronos.from_pretrained(run / "best_model")  # merged, released layout
    adapter_cfg = json.loads((run / "best_adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and "q_proj" in adapter_cfg["target_modules"]
    resumed = runner.invoke(
        app, ["train-predictor", *ov, "--device", "cpu", "--json", "--resume", "auto", "--max-steps", "6"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and json.loads(resumed.stdout)["steps"] == 6
    exported = runner.invoke(app, ["export", *ov, "--adapter", "--out", str(tmp_path / "exp"), "--json"])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "exp" / "adapters" / "predictor" / "adapter_model.safetensors").is_file()
    none = runner.invoke(app, ["export", *train_overrides(run_name="other"), "--adapter", "--out", str(tmp_path / "x")])
    assert none.exit_code == 2 and "has no adapters" in none.output


def test_best_model_chosen_by_validation_ic(train_overrides, tmp_path):
    ov = train_overrides(**{"training.select_by": "val_ic", "training.select_days": 4, "training.select_samples": 2})
    assert runner.invoke(app, ["train-tokenizer", *ov, "--device", "cpu"]).exit_code == 0  # falls back to the loss
    res = runner.invoke(app, ["train-predictor", *ov, "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["selected_by"] == "val_ic" and summary["best_score"] is not None
    assert summary["method"] == "full" and summary["trainable_share"] == 1.0
    run = tmp_path / "out" / "models" / "t" / "predictor"
    epochs = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["type"] == "epoch"]
    assert all("val_ic" in r and "val_crps" in r and r["days"] == 4 for r in epochs)
    best = max(epochs, key=lambda r: r["val_ic"])
    assert summary["best_epoch"] == best["epoch"] and summary["best_score"] == best["val_ic"]
