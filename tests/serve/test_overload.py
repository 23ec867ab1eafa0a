"""Overload on a real server: 429 with Retry-After when the queue is full, 504 past --request-timeout with the
work dropped (a light request after it is not kept waiting), and a caller that hangs up is dropped."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.serve.conftest import bars_json, series, start_server, stop_server

FLAGS = ["--max-batch", "4", "--max-queue", "4", "--request-timeout", "1.0", "--max-wait-ms", "0"]
FLAGS += ["--max-context", "64", "--max-pred-len", "600", "--max-samples", "16", "--no-access-log"]


@pytest.fixture(scope="module")
def busy(tiny_checkpoints, tmp_path_factory):
    tok, model = tiny_checkpoints
    srv = start_server(["--tokenizer", tok, "--model", model, *FLAGS], tmp_path_factory.mktemp("busy") / "s.log")
    yield srv
    stop_server(srv)


def _req(pred_len: int, samples: int, seed: int = 1) -> dict:
    return {"bars": bars_json(series(40, seed=seed)), "pred_len": pred_len, "samples": samples, "seed": seed}


HEAVY = _req(600, 16)  # several seconds on the tiny model


def _light(srv) -> float:
    t = time.perf_counter()
    status, got = srv.post("/v1/forecast", _req(3, 1))
    assert status == 200, got
    return time.perf_counter() - t


def test_past_the_deadline_the_answer_is_504_and_the_work_stops(busy):
    _light(busy)
    before = busy.get("/healthz")[1]["batching"]
    t = time.perf_counter()
    status, got = busy.post("/v1/forecast", HEAVY)
    assert status == 504 and "request timeout" in got["error"], got
    assert time.perf_counter() - t < 3.0
    assert _light(busy) < 2.0  # the dropped forecast stopped; it did not run on for seconds
    after = busy.get("/healthz")[1]["batching"]
    assert after["timed_out"] == before["timed_out"] + 1
    assert after["stopped_runs"] == before["stopped_runs"] + 1


def test_a_full_queue_answers_429_with_retry_after(busy):
    results: dict[str, tuple] = {}

    def send(name: str, body: dict) -> None:
        results[name] = busy.call("POST", "/v1/forecast", body)

    running = threading.Thread(target=send, args=("running", HEAVY))
    running.start()
    time.sleep(0.3)  # it runs: the queue is empty again
    queued = threading.Thread(target=send, args=("queued", _req(5, 4, seed=2)))
    queued.start()
    time.sleep(0.2)  # 4 sample paths wait: the limit
    status, got, headers = busy.call("POST", "/v1/forecast", _req(5, 1, seed=3))
    assert status == 429, got
    assert "the server queues at most 4" in got["error"]
    assert int(headers.get("retry-after", headers.get("Retry-After"))) >= 1
    running.join()
    queued.join()
    assert busy.get("/healthz")[1]["batching"]["rejected_queue_full"] >= 1


def test_a_caller_that_hangs_up_is_dropped(busy):
    _light(busy)
    before = busy.get("/healthz")[1]
    import json

    body = json.dumps(HEAVY).encode()
    with socket.create_connection(("127.0.0.1", busy.port)) as s:
        s.sendall(
            b"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.3)  # its forecast has started
    assert _light(busy) < 2.0  # the hung-up forecast stopped
    after = busy.get("/healthz")[1]
    assert after["disconnected"] == before["disconnected"] + 1
    assert after["batching"]["stopped_runs"] == before["batching"]["stopped_runs"] + 1
