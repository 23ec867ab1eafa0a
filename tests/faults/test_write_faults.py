"""Faults while writing, in real processes: SIGKILL in the middle of a checkpoint write, and the file-size limit
(RLIMIT_FSIZE, `ulimit -f`: writes fail as on a full disk) for training, prep and backtest. The run stops with
exit 1 and one line, what was written before stays whole, and a resumed or repeated run ends where an
uninterrupted one does."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import DEMO_SPLITS, backtest_args

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
COMMON = {"training.epochs": 3, "training.n_train_iter": 16, "training.batch_size": 8}


def _limited(max_bytes: int | None):
    if max_bytes is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def _kronos(*args, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kronos_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        preexec_fn=_limited(max_file_bytes),
    )


def _one_error_line(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 1, res.stderr[-3000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    for n in needles:
        assert n in errors[0], errors[0]


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _kill_during_a_checkpoint_write(args: list[str], ckpt: Path) -> bool:
    """Start training; once one `last` checkpoint exists, SIGKILL it while the next one is being written.
    True when the kill landed mid-write (the write's temporary directory is left over)."""
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if (ckpt / "last" / "trainer_state.json").is_file() and any(ckpt.glob(".last.tmp-*")):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL and any(ckpt.glob(".last.tmp-*"))


@pytest.mark.slow
def test_training_killed_mid_write_then_out_of_file_space_resumes_to_the_same_weights(train_overrides, tmp_path):
    ref = _kronos("train-tokenizer", *train_overrides(**COMMON, output_dir=tmp_path / "ref"), "--device", "cpu")
    assert ref.returncode == 0, ref.stderr
    flags = ["--device", "cpu", "--checkpoint-every", "1"]
    for attempt in range(5):
        out = tmp_path / f"run{attempt}"
        ckpt = out / "models" / "t" / "tokenizer" / "checkpoints"
        args = [sys.executable, "-m", "kronos_cli", "train-tokenizer", *train_overrides(**COMMON, output_dir=out)]
        if _kill_during_a_checkpoint_write([*args, *flags], ckpt):
            break
    else:
        pytest.fail("no kill landed in the middle of a checkpoint write in 5 attempts")
    resume = [*train_overrides(**COMMON, output_dir=out), *flags, "--resume", "auto"]
    kept = {name: _digest(ckpt / name) for name in ("last", "best_model") if (ckpt / name).is_dir()}
    assert "last" in kept

    # Resumed with a 48 KiB file-size limit: the next checkpoint cannot be written.
    full = _kronos("train-tokenizer", *resume, max_file_bytes=48 * 1024)
    _one_error_line(full, "is intact", "--resume auto")
    assert {name: _digest(ckpt / name) for name in kept} == kept

    done = _kronos("train-tokenizer", *resume)
    assert done.returncode == 0, done.stderr[-3000:]
    want = load_file(str(tmp_path / "ref" / "models/t/tokenizer/checkpoints/last/model/model.safetensors"))
    got = load_file(str(ckpt / "last" / "model" / "model.safetensors"))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.slow
def test_prep_out_of_file_space_leaves_no_dataset(market, tmp_path):
    dataset = tmp_path / "dataset"
    res = _kronos(
        "prep",
        f"data.provider_uri={market}",
        f"data.dataset_path={dataset}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        max_file_bytes=64 * 1024,
    )
    _one_error_line(res, "could not write", "File too large", "ulimit -f")
    assert not dataset.exists()
    assert not list(tmp_path.glob(".dataset*"))  # no half-written temporary directory either


@pytest.mark.slow
def test_backtest_out_of_file_space_keeps_its_forecast_cache_valid(prepared, tiny_checkpoints, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints

    def backtest(out: Path, max_file_bytes: int | None = None):
        args = backtest_args(cfg, tok, model, out)
        return _kronos(*args, "backtest.batch_size=256", "--json", max_file_bytes=max_file_bytes)

    clean = backtest(tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr[-3000:]
    want = json.loads(clean.stdout)

    out = tmp_path / "faulty"
    failed = backtest(out, max_file_bytes=40 * 1024)  # forecast chunks fit; a report does not
    _one_error_line(failed)
    chunks = list(out.glob("forecast_cache/bt/*/chunk_*.npz"))
    assert chunks, failed.stderr[-2000:]
    again = backtest(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ignoring unreadable forecast cache chunk" not in again.stderr
    got = json.loads(again.stdout)
    assert got["reused_forecasts"] > 0
    assert got["signal_quality"] == want["signal_quality"]
    assert _close(got["portfolio"], want["portfolio"])  # Qlib's own sums differ in the last bits between runs


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b
