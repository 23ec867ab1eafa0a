"""Real `kronos serve` processes on free loopback ports, and a small JSON-over-HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import make_bars

START_TIMEOUT = 120


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON body, headers) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, json.loads(payload) if payload else None, dict(resp.getheaders())
        finally:
            conn.close()

    def post(self, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        status, payload, _ = self.call("POST", path, body, **kw)
        return status, payload

    def get(self, path: str, **kw) -> tuple[int, Any]:
        status, payload, _ = self.call("GET", path, **kw)
        return status, payload

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(args: list[str], log: Path, env: dict[str, str] | None = None) -> Server:
    """`kronos serve ARGS --port 0` as a subprocess; returns once it prints its ready line."""
    cmd = [
        sys.executable,
        "-m",
        "kronos_cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--device",
        "cpu",
        *map(str, args),
    ]
    err = log.open("w")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})}
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready = [ln for ln in lines if "ready on " in ln]
        if ready:
            url = ready[0].split("ready on ", 1)[1].split()[0]
            return Server(url, proc, log)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"kronos serve did not start (exit {proc.poll()}):\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()


def bars_json(bars: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in bars.itertuples(index=False):
        bar = {
            "timestamp": row.timestamps.isoformat(),
            "open": row.open,
            "high": row.high,
            "low": row.low,
            "close": row.close,
        }
        if hasattr(row, "volume"):
            bar["volume"] = row.volume
        if hasattr(row, "amount"):
            bar["amount"] = row.amount
        out.append(bar)
    return out


def series(n: int, seed: int = 0, freq: str = "B") -> pd.DataFrame:
    return make_bars(n, freq=freq, seed=seed)


SERVER_ARGS = [
    "--max-batch",
    "64",
    "--max-wait-ms",
    "100",
    "--max-body-bytes",
    "200000",
    "--min-bars",
    "16",
    "--max-pred-len",
    "64",
    "--max-samples",
    "8",
    "--max-series",
    "4",
    "--max-context",
    "64",
]


@pytest.fixture(scope="package")
def server(tiny_checkpoints, tmp_path_factory):
    tok, model = tiny_checkpoints
    srv = start_server(
        ["--tokenizer", tok, "--model", model, *SERVER_ARGS], tmp_path_factory.mktemp("serve") / "server.log"
    )
    yield srv
    stop_server(srv)


@pytest.fixture(scope="package")
def library_predictor(tiny_checkpoints):
    from kronos_cli.forecast import KronosPredictor

    tok, model = tiny_checkpoints
    return KronosPredictor.from_pretrained(str(tok), str(model), device="cpu", max_context=64)
