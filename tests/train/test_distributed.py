"""Real processes: SIGKILL-and-resume equality, 2-process gloo DDP through the CLI's launcher, elastic restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _kronos(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "kronos_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=300,
        **kw,
    )


def _final_weights(out: Path, stage: str = "tokenizer") -> dict:
    return load_file(str(out / "models" / "t" / stage / "checkpoints" / "last" / "model" / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_and_resume_ends_with_the_same_weights(train_overrides, tmp_path):
    common = {"training.epochs": 3, "training.n_train_iter": 16, "training.batch_size": 8}
    a_out, b_out = tmp_path / "a", tmp_path / "b"
    ref = _kronos("train-tokenizer", *train_overrides(**common, output_dir=a_out), "--device", "cpu")
    assert ref.returncode == 0, ref.stderr

    args = [
        sys.executable,
        "-m",
        "kronos_cli",
        "train-tokenizer",
        *train_overrides(**common, output_dir=b_out),
        "--device",
        "cpu",
        "--checkpoint-every",
        "1",
    ]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = b_out / "models" / "t" / "tokenizer" / "checkpoints" / "last" / "trainer_state.json"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state.is_file():
            try:
                s = json.loads(state.read_text())
            except (json.JSONDecodeError, FileNotFoundError):
                s = {}
            if s.get("epoch") == 1 and s.get("batches_done", 0) >= 3:  # in the middle of epoch 2
                proc.send_signal(signal.SIGKILL)
                killed_at = s
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    resumed = _kronos(
        "train-tokenizer", *train_overrides(**common, output_dir=b_out), "--device", "cpu", "--resume", "auto", "--json"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a, b = _final_weights(a_out), _final_weights(b_out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("batch,accumulation,iters", [(8, 1, 8), (4, 2, 16)])
def test_two_gloo_processes_match_one_process_with_twice_the_batch(
    train_overrides, tmp_path, batch, accumulation, iters
):
    """The predictor's loss is a mean over samples, so 2 x b must match 1 x 2b, and so must 2 processes x 2
    accumulated batches of b/2 (DDP's no_sync until the group's last batch). The tokenizer's codebook entropy is a
    batch statistic and is not decomposable across ranks, in the reference too."""
    one, two = tmp_path / "one", tmp_path / "two"
    single = _kronos(
        "train-predictor",
        *train_overrides(
            **{"training.epochs": 1, "training.batch_size": 16, "training.n_train_iter": 4}, output_dir=one
        ),
        "--device",
        "cpu",
        "--json",
    )
    assert single.returncode == 0, single.stderr
    ddp = _kronos(
        "train-predictor",
        *train_overrides(
            **{
                "training.epochs": 1,
                "training.batch_size": batch,
                "training.accumulation_steps": accumulation,
                "training.n_train_iter": iters,
            },
            output_dir=two,
        ),
        "--nproc",
        "2",
        "--json",
    )
    assert ddp.returncode == 0, ddp.stderr
    summary = json.loads(ddp.stdout)
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert summary["rank_weight_spread"] == 0.0  # every rank holds the same weights
    a, b = _final_weights(one, "predictor"), _final_weights(two, "predictor")
    moved = max(
        (a[k] - load_file(str(one / "models" / "t" / "predictor" / "checkpoints" / "epoch_1" / "model.safetensors"))[k])
        .abs()
        .max()
        for k in a
    )
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    del moved


@pytest.mark.slow
def test_elastic_restart_resumes_from_last_checkpoint(train_overrides, tmp_path):
    env = {**ENV, "KRONOS_FAIL_ONCE_AT_STEP": "3"}
    res = _kronos(
        "train-tokenizer",
        *train_overrides(**{"training.epochs": 2, "training.batch_size": 8, "training.n_train_iter": 8}),
        "--nproc",
        "2",
        "--max-restarts",
        "1",
        "--checkpoint-every",
        "1",
        "--json",
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["steps"] == 8 and summary["epochs_completed"] == 2
    log = (tmp_path / "out" / "models" / "t" / "tokenizer" / "logs" / "train.log").read_text()
    assert "resumed from" in log


@pytest.mark.slow
def test_without_restarts_a_dead_worker_fails_the_job(train_overrides):
    env = {**ENV, "KRONOS_FAIL_ONCE_AT_STEP": "2"}
    res = _kronos(
        "train-tokenizer",
        *train_overrides(**{"training.batch_size": 8, "training.n_train_iter": 8}),
        "--nproc",
        "2",
        env=env,
    )
    assert res.returncode == 1
    assert "error:" in res.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpus_without_cuda(train_overrides):
    res = _kronos("train-predictor", *train_overrides(), "--gpus", "1")
    assert res.returncode == 2 and "needs CUDA" in res.stderr


@pytest.mark.slow
def test_predictor_killed_mid_epoch_with_ddp_accumulation_and_sampling_resumes_exactly(train_overrides, tmp_path):
    """Dropout, s1 sampled for s2 (teacher_forcing=false), accumulation 2 and two gloo workers: the whole job is
    SIGKILLed in the middle of an epoch and resumed; its final weights equal an uninterrupted run's, bit for bit."""
    import dataclasses

    from kronos_cli.model import Kronos
    from kronos_cli.model.config import PREDICTOR_PRESETS

    tok = _kronos("train-tokenizer", *train_overrides(output_dir=tmp_path / "tok"), "--device", "cpu")
    assert tok.returncode == 0, tok.stderr
    cfg = dataclasses.replace(
        PREDICTOR_PRESETS["tiny"].config, ffn_dropout_p=0.1, attn_dropout_p=0.1, resid_dropout_p=0.1
    )
    torch.manual_seed(0)
    Kronos(cfg).save_pretrained(tmp_path / "start")
    common = {
        "model.tokenizer": tmp_path / "tok" / "models" / "t" / "tokenizer" / "checkpoints" / "best_model",
        "model.predictor": tmp_path / "start",
        "training.epochs": 3,
        "training.batch_size": 4,
        "training.accumulation_steps": 2,
        "training.n_train_iter": 16,
        "training.teacher_forcing": "false",
    }
    flags = ["--nproc", "2", "--checkpoint-every", "1"]
    a_out, b_out = tmp_path / "a", tmp_path / "b"
    ref = _kronos("train-predictor", *train_overrides(**common, output_dir=a_out), *flags)
    assert ref.returncode == 0, ref.stderr[-3000:]
    args = [sys.executable, "-m", "kronos_cli", "train-predictor", *train_overrides(**common, output_dir=b_out), *flags]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = b_out / "models" / "t" / "predictor" / "checkpoints" / "last" / "trainer_state.json"
    killed_at, deadline = None, time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            s = json.loads(state.read_text()) if state.is_file() else {}
        except (json.JSONDecodeError, FileNotFoundError):
            s = {}
        if s.get("epoch") == 1 and s.get("batches_done", 0) >= 4:  # in the middle of epoch 2
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers, as a node dies
            killed_at = s
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    resumed = _kronos("train-predictor", *train_overrides(**common, output_dir=b_out), *flags, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    a, b = _final_weights(a_out, "predictor"), _final_weights(b_out, "predictor")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
