"""`kronos export`: every format round-trips on the tiny preset and is verified by reloading."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.export.run import VERIFY_WINDOWS

runner = CliRunner()


@pytest.mark.slow
def test_all_formats_round_trip_and_verify(export_args, tmp_path):
    out = tmp_path / "exp"
    res = runner.invoke(app, [*export_args, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {r["format"] for r in report["artifacts"]} == {"bundle", "hf", "int8", "compiled"}
    assert all(r["verified"] for r in report["artifacts"]) and not report["warnings"]
    assert json.loads((out / "export_report.json").read_text())["verify_windows"] == VERIFY_WINDOWS
    int8 = next(r for r in report["artifacts"] if r["format"] == "int8")
    assert int8["token_agreement"] >= 0.85 and int8["rank_correlation"] >= 0.8
    assert {"size_ratio", "cpu_speedup"} <= set(report["int8"]) and report["int8"]["size_ratio"] < 1

    # the bundle is plain tensors and containers
    payload = torch.load(out / "kronos_finetuned.pth", weights_only=True)
    assert payload["normalisation"]["features"] == ["open", "high", "low", "close", "volume", "amount"]
    from kronos_cli.forecast import KronosPredictor
    from kronos_cli.model import Kronos

    assert KronosPredictor.from_bundle(str(out / "kronos_finetuned.pth"), device="cpu").max_context == 512
    # the Hub layout loads as a checkpoint and carries a model card
    Kronos.from_pretrained(out / "hf" / "model")
    assert "Fine-tuned Kronos model" in (out / "hf" / "model" / "README.md").read_text()

    # the compiled program runs where kronos_cli cannot be imported
    script = (
        "import sys; sys.modules['kronos_cli'] = None\n"
        "import torch\n"
        f"prog = torch.export.load({str(out / 'kronos_forecast.pt2')!r}).module()\n"
        "y = prog(torch.zeros(3, 30, 6), torch.zeros(3, 35, 5, dtype=torch.long))\n"
        "print(tuple(y.shape))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 5, 6)"


def test_int4_on_request_is_verified_like_int8(export_args, tmp_path):
    res = runner.invoke(app, [*export_args, "--out", str(tmp_path / "e"), "--format", "bundle,int4", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    int4 = next(r for r in report["artifacts"] if r["format"] == "int4")
    assert int4["tolerance"].startswith("tokens kept >=") and int4["rank_correlation"] is not None
    assert report["int4"]["size_ratio"] < 1 and report["int8"] is None
    # torchao's weights load with weights_only=True, with plain Linear keys and shapes
    import torchao  # noqa: F401  (registers its tensor types with weights_only loading)

    state = torch.load(tmp_path / "e" / "kronos_int4.pth", weights_only=True)["model"]["state_dict"]
    assert tuple(state["transformer.0.ffn.w1.weight"].shape) == tuple(state["transformer.0.ffn.w2.weight"].shape[::-1])


def test_push_to_hub_uses_the_token_from_the_environment(export_args, tmp_path, monkeypatch):
    from kronos_cli.export import hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, exist_ok=False):
            calls["repo"] = repo_id

        def upload_folder(self, repo_id, folder_path, commit_message=""):
            calls["folder"] = folder_path
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(hub, "HfApi", FakeApi)  # the network is the one thing faked
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no_stored_token"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    res = runner.invoke(
        app, [*export_args, "--out", str(tmp_path / "e"), "--format", "hf", "--push-to-hub", "me/kronos-ft", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert calls == {"token": "hf_secret", "repo": "me/kronos-ft", "folder": str(tmp_path / "e" / "hf")}
    assert "hf_secret" not in (tmp_path / "e" / "export_report.json").read_text()
    monkeypatch.delenv("HF_TOKEN")
    res = runner.invoke(app, [*export_args, "--out", str(tmp_path / "f"), "--format", "hf", "--push-to-hub", "me/x"])
    assert res.exit_code == 2 and "HF_TOKEN" in res.output


def test_a_failed_optional_format_warns_and_the_others_stand(export_args, tmp_path, monkeypatch):
    from kronos_cli.export import artifacts, run

    def broken(*a, **k):
        raise RuntimeError("torch.export could not trace the model")

    monkeypatch.setattr(artifacts, "write_compiled", broken)  # a fault injected into one format's writer
    monkeypatch.setattr(run, "INT8_RANK", 1.01)  # and a tolerance int8 cannot meet
    res = runner.invoke(app, [*export_args, "--out", str(tmp_path / "e"), "--format", "bundle,int8,compiled"])
    assert res.exit_code == 0, res.output
    assert "warning: the optional compiled artifact is not usable: writing failed" in res.output
    assert "warning: the optional int8 artifact is not usable" in res.output
    report = json.loads((tmp_path / "e" / "export_report.json").read_text())
    assert {a["format"]: a["verified"] for a in report["artifacts"]} == {
        "bundle": True,
        "int8": False,
        "compiled": False,
    }


def test_bad_export_input(export_args, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = runner.invoke(app, [*export_args, "--out", str(out), "--format", "bundle"])
    assert res.exit_code == 2 and "--force" in res.output
    res = runner.invoke(app, [*export_args, "--out", str(tmp_path / "g"), "--format", "bundle,tflite"])
    assert res.exit_code == 2 and "unknown format(s) tflite" in res.output
    res = runner.invoke(app, [*export_args, "--out", str(tmp_path / "h"), "--model", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no checkpoint directory" in res.output
    res = runner.invoke(app, [*export_args, "--out", str(out), "--format", "bundle", "--force"])
    assert res.exit_code == 0 and not (out / "keep.txt").exists()
    np.testing.assert_equal(sorted(p.name for p in out.iterdir()), ["export_report.json", "kronos_finetuned.pth"])
