"""Paths of the training loop that had no test: the cosine schedule, bf16 on the CPU and fp16's clean refusal,
frozen blocks staying bit-identical, and s2 conditioned on a sampled s1 (`teacher_forcing=false`)."""

from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.model import Kronos
from kronos_cli.train.optim import scheduler

runner = CliRunner()


def test_cosine_schedule_values():
    cfg = config.load(None, ["training.scheduler=cosine", "training.warmup_ratio=0.1"])
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = scheduler(cfg, opt, 1.0, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(math.isclose(lrs[i], (i + 1) / 10) for i in range(10))  # linear warm-up over 10 steps
    for step in (10, 40, 99):
        assert math.isclose(lrs[step], 0.5 * (1 + math.cos(math.pi * (step - 10) / 90)), rel_tol=1e-12)


def _run(stage, overrides, *flags):
    return runner.invoke(app, [f"train-{stage}", *overrides, "--device", "cpu", "--json", *flags])


def test_bf16_runs_on_the_cpu_and_fp16_is_a_clean_error(train_overrides):
    res = _run("tokenizer", train_overrides(**{"training.precision": "bf16"}), "--max-steps", "2")
    assert res.exit_code == 0, res.output
    assert math.isfinite(json.loads(res.stdout)["best_val_loss"])
    bad = _run("tokenizer", train_overrides(**{"training.precision": "fp16"}), "--overwrite")
    assert bad.exit_code == 2 and "fp16 needs CUDA; use bf16 or fp32" in bad.output
    assert "Traceback" not in bad.output


def test_frozen_blocks_stay_bit_identical_and_sampled_s1_trains(train_overrides, tmp_path):
    assert _run("tokenizer", train_overrides()).exit_code == 0
    start = tmp_path / "start"
    Kronos.from_preset("tiny").save_pretrained(start)
    ov = train_overrides(
        **{"model.predictor": str(start), "training.freeze_layers": 1, "training.teacher_forcing": "false"}
    )
    res = _run("predictor", ov)
    assert res.exit_code == 0, res.output
    before = load_file(str(start / "model.safetensors"))
    after = load_file(
        str(tmp_path / "out" / "models" / "t" / "predictor" / "checkpoints" / "best_model" / "model.safetensors")
    )
    frozen = [k for k in before if k.startswith("transformer.0.")]
    trained = [k for k in before if k.startswith("transformer.1.") and k.endswith("weight")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert math.isfinite(json.loads(res.stdout)["best_val_loss"])
