"""`kronos mcp` driven by the MCP SDK's own client against a real subprocess: stdio and streamable HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from kronos_cli.model.bundle import write_bundle
from tests.conftest import make_bars
from tests.serve.conftest import bars_json

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

httpx = pytest.importorskip("httpx2")  # the SDK's HTTP client

ROOT = Path(__file__).resolve().parents[2]
LIMITS = ["--max-context", "64", "--max-pred-len", "16", "--max-samples", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def bundle(tiny_pair, tmp_path_factory) -> Path:
    tok, model = tiny_pair
    return write_bundle(tok, model, tmp_path_factory.mktemp("mcp") / "kronos.pth", {"max_context": 64, "clip": 5.0})


def stdio(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "kronos_cli", "mcp", *args], cwd=str(ROOT))


def library_answer(bundle: Path, request: dict) -> dict:
    """What `kronos serve` computes for the request: its checks, the model's paths, its answer."""
    from kronos_cli.serve.schema import ForecastRequest
    from kronos_cli.serve.server import ModelSource, open_service
    from kronos_cli.serve.service import Batching, Limits, respond

    service, _ = open_service(
        ModelSource(bundle=str(bundle), max_context=64), Limits(max_pred_len=16, max_samples=4), Batching(), "cpu"
    )
    prepared = service.check([ForecastRequest.model_validate(request)])
    paths = service.forecaster.forecast_jobs([p.job for p in prepared])
    assert service.calibration is None  # no sampling.json: the reference's sampling, the paths' own quantiles
    return json.loads(json.dumps(respond(prepared[0], paths[0], service.forecaster.clip)))


def test_stdio_tools_forecast_and_errors(bundle):
    request = {"bars": bars_json(make_bars(48)), "pred_len": 5, "samples": 3, "seed": 11, "quantiles": [0.1, 0.9]}

    async def session() -> dict:
        async with Client(stdio("--bundle", str(bundle), *LIMITS)) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"forecast", "signals", "model_info"}
            schema = tools["forecast"].input_schema
            assert schema["properties"]["pred_len"]["maximum"] == 16 and schema["properties"]["bars"]["minItems"] == 16
            got = await client.call_tool("forecast", request)
            assert not got.is_error, got.content
            bad = {
                "pred_len": await client.call_tool("forecast", {**request, "pred_len": 0}),
                "limit": await client.call_tool("forecast", {**request, "pred_len": 17}),
                "bar": await client.call_tool("forecast", {**request, "bars": [{**request["bars"][0], "close": -1}]}),
                "few": await client.call_tool("forecast", {**request, "bars": request["bars"][:3]}),
                "extra": await client.call_tool("model_info", {"x": 1}),
                "signals": await client.call_tool("signals", {}),
                "unknown": await client.call_tool("nope", {}),
            }
            info = await client.call_tool("model_info", {})  # the server is still up after all of the above
            assert not info.is_error and info.structured_content["max_context"] == 64
            assert (await client.list_resources()).resources == []
            return {"got": got.structured_content, **{k: (v.is_error, v.content[0].text) for k, v in bad.items()}}

    out = anyio.run(session)
    assert out["got"] == library_answer(bundle, request)  # same seed, same numbers as the library
    assert out["pred_len"][0] and out["pred_len"][1].startswith("pred_len:")
    assert out["limit"][0] and "above this server's limit of 16" in out["limit"][1]
    assert out["bar"][0] and out["bar"][1].startswith("bars[0].close:")
    assert out["few"][0] and "at least 16" in out["few"][1]
    assert out["extra"][0] and out["signals"][0] and "-c CONFIG" in out["signals"][1]
    assert out["unknown"][0]


def _start_http(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "kronos_cli", "mcp", "--transport", "http", "--port", "0", *args]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env={**os.environ, **env}
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        ready = [ln for ln in lines if "ready on " in ln]
        if ready:
            return proc, ready[0].split("ready on ", 1)[1].split()[0]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"kronos mcp did not start:\n{log.read_text()}")


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    conn.request("POST", "/mcp", json.dumps(body), {"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def test_http_needs_the_bearer_token(bundle, tmp_path):
    proc, url = _start_http(
        ["--bundle", str(bundle), "--token-env", "MCP_TOKEN", *LIMITS], {"MCP_TOKEN": "s3cret"}, tmp_path / "log"
    )
    try:
        status, body = _post(url, {})
        assert status == 401 and "bearer token" in body["error"]
        assert _post(url, {"Authorization": "Bearer wrong"})[0] == 401

        async def session() -> list[str]:
            async with httpx.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=60) as http_client:
                async with Client(streamable_http_client(url, http_client=http_client)) as client:
                    info = await client.call_tool("model_info", {})
                    assert not info.is_error
                    return [t.name for t in (await client.list_tools()).tools]

        assert sorted(anyio.run(session)) == ["forecast", "model_info", "signals"]
        assert "s3cret" not in (tmp_path / "log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_http_token_variable_must_be_set(bundle):
    env = {k: v for k, v in os.environ.items() if k != "MCP_TOKEN"}
    cmd = [sys.executable, "-m", "kronos_cli", "mcp", "--transport", "http", "--bundle", str(bundle)]
    res = subprocess.run([*cmd, "--token-env", "MCP_TOKEN"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "MCP_TOKEN is not set" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_signals_and_the_evaluation_summary(prepared, bundle, tmp_path):
    from kronos_cli import config
    from kronos_cli.backtest.ranking import day_signals
    from kronos_cli.records.runs import evaluation_dir, load_pair
    from tests.conftest import DEMO_SPLITS

    cfg, _ = prepared
    overrides = [
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        "backtest.sample_count=2",
        f"output_dir={tmp_path / 'out'}",
        "run_name=agent",
    ]
    run = config.load(None, overrides)
    (tmp_path / "run.yaml").write_text(config.dump(run))
    summary = evaluation_dir(run, "test") / "evaluation.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"split": "test", "models": []}))

    async def session() -> tuple:
        async with Client(stdio("--bundle", str(bundle), "-c", str(tmp_path / "run.yaml"), "--device", "cpu")) as c:
            listed = [str(r.uri) for r in (await c.list_resources()).resources]
            read = await c.read_resource("kronos://evaluation/test")
            day = await c.call_tool("signals", {"date": "latest"})
            saturday = await c.call_tool("signals", {"date": "2024-12-28"})
            return listed, read.contents[0].text, day, saturday

    listed, text, day, saturday = anyio.run(session)
    assert listed == ["kronos://evaluation/test"] and json.loads(text) == {"split": "test", "models": []}
    assert not day.is_error, day.content
    pair = load_pair(None, bundle=str(bundle))
    want = day_signals(run, pair, pair.forecaster(pair.resolve(run, device="cpu")), "latest")
    assert day.structured_content == json.loads(json.dumps(want.to_json()))
    assert saturday.is_error and "not a trading day" in saturday.content[0].text
