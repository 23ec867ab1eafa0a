"""Bearer auth and bundle serving on a real server; the command's start-up errors as one line and exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from kronos_cli.forecast import KronosPredictor
from kronos_cli.forecast.series import forecast_series
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.market.bars import FEATURES
from kronos_cli.model.bundle import write_bundle
from kronos_cli.model.sampling import Sampling
from tests.serve.conftest import Server, bars_json, series, start_server, stop_server

TOKEN = "s3cret-test-token"


@pytest.fixture(scope="module")
def bundle(tiny_pair, tmp_path_factory):
    tok, model = tiny_pair
    return write_bundle(
        tok, model, tmp_path_factory.mktemp("bundle") / "kronos_finetuned.pth", {"max_context": 64, "clip": 5.0}
    )


@pytest.fixture(scope="module")
def secured(bundle, tmp_path_factory):
    log = tmp_path_factory.mktemp("auth") / "server.log"
    srv = start_server(
        ["--bundle", bundle, "--token-env", "KRONOS_TEST_TOKEN", "--max-batch", "1"],
        log,
        env={"KRONOS_TEST_TOKEN": TOKEN},
    )
    yield srv
    stop_server(srv)


def _req():
    return {"bars": bars_json(series(40, seed=3)), "pred_len": 4, "seed": 5, "samples": 2}


def test_v1_needs_the_bearer_token(secured):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, body, hdrs = secured.call("POST", "/v1/forecast", _req(), headers=headers)
        assert status == 401, headers
        assert "bearer token" in body["error"]
        assert hdrs.get("www-authenticate", hdrs.get("WWW-Authenticate")) == "Bearer"
    assert secured.call("GET", "/v1/model")[0] == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.call("GET", "/v1/model", headers=auth)[0] == 200
    assert secured.call("GET", "/healthz")[0] == 200  # liveness probes need no token


def test_a_caller_without_the_token_gets_401_before_the_body_is_parsed(secured):
    """Seen in an attack: `{not json` without a token got 422 (parsed first) and counted as a rejected request;
    a 6.7 MB body was parsed before the 401."""
    before = secured.get("/healthz")[1]["rejected"]
    for raw in (b"{not json", b"[" + b"1," * 3_000_000 + b"1]"):
        status, body, hdrs = secured.call("POST", "/v1/forecast", raw=raw)
        assert status == 401 and "bearer token" in body["error"], (status, body)
    assert secured.get("/healthz")[1]["rejected"] == before
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.call("POST", "/v1/forecast", raw=b"{not json", headers=auth)[0] == 422  # with it: parsed


def test_the_token_never_reaches_the_log_or_the_model_info(secured):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    _, info, _ = secured.call("GET", "/v1/model", headers=auth)
    assert TOKEN not in str(info)
    assert TOKEN not in secured.log.read_text()


def test_bundle_server_forecasts_equal_the_library(secured, bundle):
    status, got, _ = secured.call("POST", "/v1/forecast", _req(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, got
    predictor = KronosPredictor.from_bundle(str(bundle), device="cpu")
    want = forecast_series(
        predictor, series(40, seed=3), ForecastSpec(4, predictor.max_context, sampling=Sampling(paths=2, seed=5))
    )
    values = np.array([[b[c] for c in list(FEATURES)] for b in got["bars"]], dtype=np.float32)
    np.testing.assert_array_equal(values, want.table[list(FEATURES)].to_numpy())


def _serve(*args, env=None):
    """In-process: every case fails before the server would start (one real subprocess case is below)."""
    from typer.testing import CliRunner

    from kronos_cli.cli.app import app

    return CliRunner().invoke(app, ["serve", "--device", "cpu", *map(str, args)], env=env)


def _one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for n in needles:
        assert n in lines[0]


def test_startup_mistakes_are_one_line_and_exit_2(tiny_checkpoints, bundle, tmp_path):
    tok, model = tiny_checkpoints
    ck = ["--tokenizer", tok, "--model", model]
    _one_line_error(
        _serve(*ck, "--token-env", "KRONOS_UNSET_TOKEN", env={"KRONOS_UNSET_TOKEN": ""}),
        "KRONOS_UNSET_TOKEN",
        "not set",
    )
    _one_line_error(_serve(), "--tokenizer and --model")
    _one_line_error(_serve("--tokenizer", tmp_path / "nope", "--model", model, "--port", "0"), "nope")
    _one_line_error(_serve("--bundle", tmp_path / "missing.pth", "--port", "0"), "no bundle")
    _one_line_error(_serve("--bundle", bundle, *ck, "--port", "0"), "either --bundle")
    _one_line_error(_serve(*ck, "--max-batch", "0", "--port", "0"), "--max-batch")
    _one_line_error(_serve(*ck, "--min-bars", "1", "--port", "0"), "--min-bars")
    _one_line_error(_serve(*ck, "--max-queue", "0", "--port", "0"), "--max-queue")
    _one_line_error(_serve(*ck, "--request-timeout", "0", "--port", "0"), "--request-timeout")
    _one_line_error(_serve(*ck, "--long-horizon", "0", "--port", "0"), "--long-horizon")
    _one_line_error(_serve(*ck, "--header-timeout", "0", "--port", "0"), "--header-timeout")
    _one_line_error(_serve(*ck, "--body-timeout", "nan", "--port", "0"), "--body-timeout")
    _one_line_error(_serve(*ck, "--keep-alive-timeout", "-1", "--port", "0"), "--keep-alive-timeout")
    _one_line_error(_serve(*ck, "--max-connections", "0", "--port", "0"), "--max-connections")
    _one_line_error(_serve(*ck, "--shutdown-grace", "-1", "--port", "0"), "--shutdown-grace")
    _one_line_error(_serve(*ck, "--port", "70000"), "--port")


def test_a_taken_port_is_one_line_and_exit_2_from_the_real_command(tiny_checkpoints):
    tok, model = tiny_checkpoints
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "kronos_cli",
                "serve",
                "--tokenizer",
                str(tok),
                "--model",
                str(model),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: --port {port} on 127.0.0.1 is already in use; stop what uses it or pick another --port"
    ]


def test_a_config_serves_its_models_and_context(tiny_checkpoints, tmp_path):
    tok, model = tiny_checkpoints
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"model:\n  tokenizer: {tok}\n  predictor: {model}\n"
        f"data:\n  max_context: 48\n  lookback_window: 30\n  predict_window: 5\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    cmd = [sys.executable, "-m", "kronos_cli", "serve", "-c", str(cfg), "--port", "0", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready = json.loads(proc.stdout.readline())  # scripts can wait for this one line
    assert ready["event"] == "ready" and ready["pid"] == proc.pid
    srv = Server(ready["url"], proc, tmp_path / "unused.log")
    try:
        status, info = srv.get("/v1/model")
        assert status == 200
        assert info["tokenizer"]["source"] == str(tok) and info["model"]["source"] == str(model)
        assert info["max_context"] == 48
        req = {"bars": bars_json(series(60, seed=4)), "pred_len": 3, "top_k": 1}
        status, got = srv.post("/v1/forecast", req)
        assert status == 200 and got["lookback"] == 30  # the run's lookback window, as `kronos predict -c` uses
        req = {**req, "lookback": 59}
        status, got = srv.post("/v1/forecast", req)
        assert status == 200 and got["lookback"] == 48  # a longer lookback asked is cut to the model's context
    finally:
        stop_server(srv)
