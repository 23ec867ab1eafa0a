"""The serving contract, checked by schemathesis (property-based API testing from /openapi.json) against real
server processes, with and without a bearer token, with schemathesis's default checks: no 5xx, documented
status codes and bodies, schema-valid requests accepted, schema-violating ones rejected, auth declared only
where it is enforced. Bounded in examples; the one rule JSON Schema cannot state (increasing timestamps) is
taught to the generator by `schemathesis_hooks`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import start_server, stop_server

pytest.importorskip("schemathesis")
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "contract-test-token"
LIMITS = ["--min-bars", "16", "--max-pred-len", "6", "--max-samples", "3", "--max-series", "3"]
LIMITS += ["--max-context", "32", "--max-wait-ms", "1", "--no-access-log"]


def _schemathesis(url: str, examples: int, *extra: str) -> subprocess.CompletedProcess:
    st = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()"]  # the `st` command
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.serve.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    cmd = [*st, "run", f"{url}/openapi.json", "--max-examples", str(examples), "--seed", "7", "--no-color", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def _passes(res: subprocess.CompletedProcess) -> None:
    tail = res.stdout[-6000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail
    assert "No issues found" in res.stdout, tail


@pytest.mark.slow
def test_schemathesis_finds_no_issue_without_a_token(tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    srv = start_server(["--tokenizer", tok, "--model", model, *LIMITS], tmp_path / "server.log")
    try:
        _passes(_schemathesis(srv.url, 40))
        assert srv.alive()
    finally:
        stop_server(srv)


@pytest.mark.slow
def test_schemathesis_finds_no_issue_with_a_token(tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    srv = start_server(
        ["--tokenizer", tok, "--model", model, "--token-env", "KRONOS_CONTRACT_TOKEN", *LIMITS],
        tmp_path / "server.log",
        env={"KRONOS_CONTRACT_TOKEN": TOKEN},
    )
    try:
        _, schema, _ = srv.call("GET", "/openapi.json")
        assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        _passes(_schemathesis(srv.url, 25, "--header", f"Authorization: Bearer {TOKEN}"))
        assert TOKEN not in srv.log.read_text()
    finally:
        stop_server(srv)
