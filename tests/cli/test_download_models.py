"""`kronos download` and `kronos models` against a pre-filled Hugging Face Hub cache, offline (HF_HUB_OFFLINE=1):
tiny random models saved in the released checkpoint layout under the released ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.checkpoint import save_checkpoint
from kronos_cli.model.config import PREDICTOR_PRESETS, TOKENIZER_PRESETS, TokenizerConfig

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put(cache, hub_id: str, model: torch.nn.Module) -> None:
    """A model in the Hub cache's layout: models--OWNER--NAME/refs/main naming a snapshot that holds the files."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    save_checkpoint(model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)


@pytest.fixture
def hub(tmp_path):
    cache = tmp_path / "hub"
    torch.manual_seed(0)
    put(cache, "NeoQuasar/Kronos-small", Kronos(PREDICTOR_PRESETS["tiny"].config))
    put(cache, "NeoQuasar/Kronos-Tokenizer-base", KronosTokenizer(TOKENIZER_PRESETS["tokenizer-tiny"].config))
    odd = TokenizerConfig(d_model=32, n_heads=2, ff_dim=64, n_enc_layers=1, n_dec_layers=1, s1_bits=6, s2_bits=6)
    put(cache, "NeoQuasar/Kronos-Tokenizer-2k", KronosTokenizer(odd))  # codes that do not fit the predictor
    return cache


SECRET = "hf_kronosTestTokenNeverPrinted"


def kronos(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": SECRET}  # huggingface_hub reads it; nobody prints it
    return subprocess.run(
        [sys.executable, "-m", "kronos_cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_download_finds_the_pair_in_the_cache_offline(tmp_path, hub):
    res = kronos("download", "small", "--cache-dir", str(hub), "--json", "--debug", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout + res.stderr
    got = {d["hub_id"]: d for d in json.loads(res.stdout)}
    assert list(got) == ["NeoQuasar/Kronos-small", "NeoQuasar/Kronos-Tokenizer-base"]
    assert got["NeoQuasar/Kronos-small"]["kind"] == "predictor" and got["NeoQuasar/Kronos-small"]["max_context"] == 512
    assert got["NeoQuasar/Kronos-small"]["path"].endswith(COMMIT)


def test_offline_without_the_model_cached_is_a_runtime_failure(tmp_path, hub):
    res = kronos("download", "NeoQuasar/Kronos-base", "--cache-dir", str(hub), cwd=tmp_path)
    assert res.returncode == 1
    assert "HF_HUB_OFFLINE" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_pair_that_does_not_fit_and_an_unknown_name_are_user_errors(tmp_path, hub):
    res = kronos("download", "small", "tokenizer-2k", "--no-tokenizer", "--cache-dir", str(hub), cwd=tmp_path)
    assert res.returncode == 2 and "do not fit" in res.stderr
    res = kronos("download", "huge", "--cache-dir", str(hub), cwd=tmp_path)
    assert res.returncode == 2 and "'huge' is not a released model" in res.stderr


def test_models_lists_released_cached_and_fine_tuned(tmp_path, hub):
    run = tmp_path / "outputs" / "models" / "us_daily" / "predictor"
    save_checkpoint(Kronos(PREDICTOR_PRESETS["tiny"].config), run / "checkpoints" / "best_model")
    (run / "config.json").write_text(json.dumps({"model": {"predictor": "NeoQuasar/Kronos-small"}}))
    res = CliRunner().invoke(
        app, ["models", "--output-dir", str(tmp_path / "outputs"), "--cache-dir", str(hub), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rel = {r["hub_id"]: r for r in out["released"]}
    assert rel["NeoQuasar/Kronos-small"]["cached"] and not rel["NeoQuasar/Kronos-base"]["cached"]
    assert 24.6e6 < rel["NeoQuasar/Kronos-small"]["parameters"] < 24.8e6  # the released model's 24.7M
    assert rel["NeoQuasar/Kronos-mini"]["max_context"] == 2048
    assert out["fine_tuned"] == [
        {
            "run": "us_daily",
            "stage": "predictor",
            "base": "NeoQuasar/Kronos-small",
            "path": str(run / "checkpoints" / "best_model"),
        }
    ]
