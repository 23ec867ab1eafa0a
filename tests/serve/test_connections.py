"""Connection limits on a real server over real sockets: header, body and keep-alive deadlines, the header size
bound and the connection cap (`kronos_cli/serve/connections.py`, `bodies.py`). Bounds on time are generous
multiples of the deadlines (a busy machine is slow, never fast); nothing here measures speed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tests.serve.conftest import bars_json, series, start_server, stop_server

WITHIN_S = 30  # the deadlines below are 1 s: a connection still open after this many seconds was not closed


@pytest.fixture(scope="module")
def strict(tiny_checkpoints, tmp_path_factory):
    """A server with 1 s deadlines."""
    tok, model = tiny_checkpoints
    flags = ["--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1", "--max-context", "64"]
    srv = start_server(["--tokenizer", tok, "--model", model, *flags], tmp_path_factory.mktemp("strict") / "s.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def capped(tiny_checkpoints, tmp_path_factory):
    """A server with long deadlines and room for 4 connections."""
    tok, model = tiny_checkpoints
    flags = [
        "--header-timeout",
        "120",
        "--body-timeout",
        "120",
        "--keep-alive-timeout",
        "120",
        "--max-connections",
        "4",
    ]
    srv = start_server(["--tokenizer", tok, "--model", model, *flags], tmp_path_factory.mktemp("capped") / "s.log")
    yield srv
    stop_server(srv)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _until_closed(s: socket.socket, drip: bytes = b"", every_s: float = 0.2) -> bytes:
    """What the server sends until it closes the connection (sending `drip` every `every_s` meanwhile); fails
    if it is still open after WITHIN_S."""
    got, deadline = b"", time.monotonic() + WITHIN_S
    s.settimeout(every_s)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            try:
                s.sendall(drip)
            except OSError:  # closed: what it sent was read above
                return got
            continue
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk
    raise AssertionError(f"the connection was still open after {WITHIN_S} s; got {got[:200]!r}")


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _error(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def _partial_post(port: int, body: bytes, sent: int) -> socket.socket:
    s = _connect(port)
    head = f"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    s.sendall(head.encode() + b"\r\n\r\n" + body[:sent])
    return s


def test_a_silent_connection_is_closed(strict):
    """Seen in an audit: 1,000 connections that sent nothing were all held for 30 s and more."""
    with _connect(strict.port) as s:
        assert _until_closed(s) == b""


def test_headers_trickled_a_line_at_a_time_get_408_and_a_close(strict):
    """Seen in an audit: a header line every 20 s kept a connection open past 120 s."""
    with _connect(strict.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = _until_closed(s, drip=b"X-Slow: 1\r\n")
    assert _status(answer) == 408, answer
    assert "headers did not arrive within 1 s" in _error(answer)["error"]


def test_a_body_trickled_a_byte_at_a_time_gets_408_and_a_close(strict):
    body = json.dumps({"bars": bars_json(series(40)), "pred_len": 2}).encode()
    with _partial_post(strict.port, body, 10) as s:
        answer = _until_closed(s, drip=b" ")
    assert _status(answer) == 408, answer
    got = _error(answer)
    assert got["field"] == "body" and "body_timeout_s" in got["error"]


def test_an_idle_keep_alive_connection_is_closed(strict):
    with _connect(strict.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _until_closed(s)
    assert _status(answer) == 200 and b'"status":"ok"' in answer


def test_headers_over_the_size_bound_get_431(strict):
    with _connect(strict.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):
                s.sendall(b"X-Big: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass  # closed while sending: the answer is already here
        answer = _until_closed(s)
    assert _status(answer) == 431, answer
    assert strict.alive()


def test_the_counts_of_what_was_cut_are_in_healthz(strict):
    with _connect(strict.port) as s:
        _until_closed(s)
    cut = strict.get("/healthz")[1]["connections"]["cut"]
    assert cut["silent"] >= 1


def _answer(s: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of one response on a kept-alive connection."""
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(ln.split(b":")[1] for ln in lines if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(65536)
    return _status(head), json.loads(body)


def _settled(port: int) -> socket.socket:
    """A kept-alive connection, once the server counts it as its only open one (every earlier one closed)."""
    s, deadline = _connect(port), time.monotonic() + WITHIN_S
    while True:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if _answer(s)[1]["connections"]["open"] == 1:
            return s
        assert time.monotonic() < deadline, "the server still counts connections that were closed"
        time.sleep(0.05)


def _in_the_app(port: int, body: bytes) -> socket.socket:
    """A connection whose request the app is reading (the server said `100 Continue`), its body not yet sent."""
    deadline = time.monotonic() + WITHIN_S
    while True:
        s = _connect(port)
        head = f"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        s.sendall(head.encode() + b"\r\nExpect: 100-continue\r\n\r\n")
        answer = s.recv(65536)
        if answer.startswith(b"HTTP/1.1 100"):
            return s
        s.close()  # a connection the server had not yet seen close took the last place: try again
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)


def test_over_the_cap_the_connection_waiting_longest_for_headers_makes_room(capped):
    """Seen in an audit: with `ulimit -n 1024`, 1,100 idle connections made /healthz fail."""
    idle = [_settled(capped.port)] + [_connect(capped.port) for _ in range(3)]
    try:
        assert capped.get("/healthz")[0] == 200  # a fifth connection
        assert _until_closed(idle[0]) == b""  # the one idle longest was closed to make room for it
    finally:
        for s in idle:
            s.close()
    assert capped.get("/healthz")[1]["connections"]["cut"]["evicted"] >= 1


def test_over_the_cap_with_every_connection_busy_a_new_one_gets_503(capped):
    _settled(capped.port).close()
    body = json.dumps({"bars": bars_json(series(40)), "pred_len": 2}).encode()
    busy = []
    try:
        for _ in range(4):
            busy.append(_in_the_app(capped.port, body))
        with _connect(capped.port) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _until_closed(s)
        assert _status(answer) == 503, answer
        assert b"retry-after: 1" in answer.lower() and "(max_connections)" in _error(answer)["error"]
        for s in busy[:2]:  # the requests in the app are not disturbed
            s.sendall(body)
            assert _answer(s)[0] == 200
    finally:
        for s in busy:
            s.close()
    assert capped.get("/healthz")[0] == 200


def test_max_connections_is_lowered_to_fit_the_open_file_limit():
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))\n"
        "from kronos_cli.serve.connections import RESERVED_FILES, fit_to_open_files\n"
        "print(fit_to_open_files(1000), fit_to_open_files(100), RESERVED_FILES)\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fitted, kept, reserved = map(int, got.stdout.split())
    assert (fitted, kept) == (200 - reserved, 100)
    assert "max_connections 1000 lowered to" in got.stderr
