"""`kronos serve` under load and faults, on loopback: a real server process and an asyncio client in this one.

2,000 requests from 64 concurrent clients (each on a fresh connection): 10% malformed (eight kinds: a missing
field, text for a number, unsorted timestamps, out-of-range values, an unknown field, broken JSON), 5% that
disconnect right after sending, and, half way, a burst of twice the queue limit (`--max-queue`, in sample
paths) sent at once. Checks, printed and in `--json`:

- zero 5xx;
- every malformed request a 4xx whose body names the offending field;
- every good answer identical to the library's forecast for its seed (the same weights loaded in this process),
  also with `--hog N` busy processes beside the server;
- the burst meets 429s with a Retry-After header, and nothing else fails;
- the server's resident memory (VmRSS) at the end within 10% of its value after warm-up.

Figures: requests/s, p50/p99 latency of the answered requests, 429s, 504s, disconnects, RSS.

Then the connection cases, on a second server limited to 1,024 open files (`ulimit -n`) with 2 s header and
body deadlines, each with /healthz probed on fresh connections meanwhile (status and latency):

- **largest bodies**: 8 concurrent requests of ~90,000 bars (95% of the default 8 MiB --max-body-bytes), then 16:
  /healthz latency while they are parsed against idle (the same run), resident memory warm, at its peak and 2 s
  after the burst; checks: all 200, /healthz always 200 (and, without --hog, its median within 100 ms);
- **slow connections**: 50 sending a header line and 50 sending a body byte every 0.5 s: each answered 408 and
  closed, how long it stayed open against the deadline;
- **idle connections**: 1,100 that send nothing, more than the server's open files allow: /healthz stays 200
  (the connection idle longest makes room), every one closed by the header deadline;
- **shutdown**: SIGTERM with 3 long forecasts in flight: they get 200, a new request 503 with Retry-After, the
  server exits 0.

Exit 1 when a check fails.

    python benchmarks/bench_serve_faults.py               # random weights of the tiny preset
    python benchmarks/bench_serve_faults.py --requests 500 --json
    python benchmarks/bench_serve_faults.py --cases bodies,slow,idle,shutdown
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from bench_serve import health, save_models, start  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli.forecast import KronosPredictor
from kronos_cli.forecast.series import forecast_series
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.market.bars import FEATURES
from kronos_cli.model.sampling import Sampling

CONTEXT = 64
SERVER = ["--max-batch", "32", "--max-wait-ms", "5", "--max-samples", "4", "--max-pred-len", "8"]
SERVER += ["--max-series", "4", "--max-context", str(CONTEXT), "--request-timeout", "60", "--no-access-log"]


def series(i: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + i)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "timestamps": pd.bdate_range("2024-01-01", periods=n),
            "open": close * 1.001,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1e5, 2e5, n),
        }
    )


def good_request(i: int) -> dict:
    cols = ("open", "high", "low", "close", "volume")
    bars = [
        {"timestamp": r.timestamps.isoformat(), **{c: getattr(r, c) for c in cols}}
        for r in series(i).itertuples(index=False)
    ]
    return {"bars": bars, "pred_len": 2 + i % 5, "samples": 1 + i % 2, "seed": 7000 + i}


def _drop(key):
    return lambda r: r["bars"][0].pop(key)


def _swap(r):
    r["bars"][3], r["bars"][4] = r["bars"][4], r["bars"][3]


# name -> (mutation of a good request, or raw bytes, the field the 4xx must name)
MALFORMED = {
    "missing close": (_drop("close"), "bars[0].close"),
    "text price": (lambda r: r["bars"][2].update(open="abc"), "bars[2].open"),
    "unsorted": (_swap, "bars[4].timestamp"),
    "pred_len above limit": (lambda r: r.update(pred_len=9), "pred_len"),
    "negative volume": (lambda r: r["bars"][5].update(volume=-1.0), "bars[5].volume"),
    "unknown field": (lambda r: r.update(horizon=3), "horizon"),
    "too few bars": (lambda r: r.update(bars=r["bars"][:5]), "bars"),
    "broken JSON": (b'{"bars": [', "body"),
}


@dataclass
class Outcome:
    kind: str  # good | malformed | disconnect | burst
    index: int
    status: int | None = None
    body: dict | None = None
    retry_after: str | None = None
    latency: float = 0.0


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)


async def http_post(port: int, path: str, payload: bytes, hang_up: bool) -> tuple[int | None, dict, dict]:
    """One POST on a fresh connection; with `hang_up`, close right after sending (status None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    if hang_up:
        writer.close()
        return None, {}, {}
    raw = await reader.read()
    writer.close()
    if not raw:  # closed without an answer
        return None, {}, {}
    header, _, body = raw.partition(b"\r\n\r\n")
    lines = header.decode().split("\r\n")
    headers = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
    headers = {k.lower(): v for k, v in headers.items()}
    return int(lines[0].split()[1]), (json.loads(body) if body else {}), headers


def plan(requests: int, malformed: float, disconnect: float, burst: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    steady = requests - burst
    kinds = ["malformed"] * round(requests * malformed) + ["disconnect"] * round(requests * disconnect)
    kinds += ["good"] * (steady - len(kinds))
    rng.shuffle(kinds)
    return [(k, rng.randrange(len(MALFORMED)) if k == "malformed" else rng.randrange(16)) for k in kinds]


def payload(kind: str, index: int) -> bytes:
    if kind != "malformed":
        return json.dumps(good_request(index)).encode()
    mutate, _ = list(MALFORMED.values())[index]
    if isinstance(mutate, bytes):
        return mutate
    req = good_request(index)
    mutate(req)
    return json.dumps(req).encode()


async def drive(port: int, jobs: list[tuple[str, int]], clients: int, burst: int, on_warm, tally: Tally) -> float:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    done, warm_at, burst_at = 0, len(jobs) // 10, len(jobs) // 2
    bursts: list[asyncio.Task] = []

    async def one(kind: str, index: int) -> None:
        t = time.perf_counter()
        status, body, headers = await http_post(port, "/v1/forecast", payload(kind, index), kind == "disconnect")
        out = Outcome(kind, index, status, body, headers.get("retry-after"), time.perf_counter() - t)
        tally.outcomes.append(out)

    async def client() -> None:
        nonlocal done
        while not queue.empty():
            kind, index = queue.get_nowait()
            await one(kind, index)
            done += 1
            if done == warm_at:
                on_warm()
            if done == burst_at:  # twice the queue limit at once, on top of the steady clients
                bursts.extend(asyncio.ensure_future(one("burst", i % 16)) for i in range(burst))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    await asyncio.gather(*bursts)
    return time.perf_counter() - t0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def expected_answers(tok: Path, model: Path) -> dict[int, np.ndarray]:
    predictor = KronosPredictor.from_pretrained(str(tok), str(model), device="cpu", max_context=CONTEXT)
    out = {}
    for i in range(16):
        req = good_request(i)
        sampling = Sampling(paths=req["samples"], seed=req["seed"])
        fc = forecast_series(predictor, series(i), ForecastSpec(req["pred_len"], CONTEXT, sampling=sampling))
        out[i] = fc.table[list(FEATURES)].to_numpy()
    return out


def _values(bars: list[dict]) -> np.ndarray:
    """The served numbers as the float32 values they spell (the server writes each one's shortest decimal)."""
    return np.array([[b[c] for c in FEATURES] for b in bars]).astype(np.float32)


def verdicts(tally: Tally, want: dict[int, np.ndarray]) -> dict:
    outs = tally.outcomes
    answered = [o for o in outs if o.status is not None]
    server_errors = [o for o in answered if o.status >= 500]
    bad_malformed = [
        o
        for o in outs
        if o.kind == "malformed"
        and not (400 <= o.status < 500 and o.body.get("field") == list(MALFORMED.values())[o.index][1])
    ]
    goods = [o for o in answered if o.kind in ("good", "burst") and o.status == 200]
    wrong = [o for o in goods if not np.array_equal(_values(o.body["bars"]), want[o.index].astype(np.float32))]
    rejected = [o for o in answered if o.status == 429]
    other = [o for o in answered if o.kind in ("good", "burst") and o.status not in (200, 429)]
    lat = np.array([o.latency for o in answered]) * 1e3
    return {
        "server_errors": len(server_errors),
        "malformed": sum(o.kind == "malformed" for o in outs),
        "malformed_misanswered": len(bad_malformed),
        "good_answers": len(goods),
        "good_answers_differing": len(wrong),
        "good_other_status": len(other),
        "http_429": len(rejected),
        "http_429_with_retry_after": sum(o.retry_after is not None and int(o.retry_after) >= 1 for o in rejected),
        "http_504": sum(o.status == 504 for o in answered),
        "disconnected": sum(o.kind == "disconnect" for o in outs),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


@contextlib.contextmanager
def busy_processes(n: int):
    """n processes that each keep a core busy until the block ends (at most 15 minutes)."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 900\nwhile time.time() < end: pass"])
        for _ in range(n)
    ]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


# The connection cases: one more server, limited to 1,024 open files (`ulimit -n`), with short deadlines.
CONN_SERVER = ["--max-context", str(CONTEXT), "--max-pred-len", "600", "--max-samples", "16", "--no-access-log"]
CONN_SERVER += ["--header-timeout", "2", "--body-timeout", "2", "--request-timeout", "60"]
OPEN_FILES = 1024
HEAVY = {"pred_len": 600, "samples": 16}  # several seconds on the tiny model


class Watcher:
    """From a thread, until the block ends: GET /healthz on a fresh connection every `every_s` ((status, ms) each)
    and the server's resident memory (its peak)."""

    def __init__(self, port: int, pid: int, every_s: float = 0.02):
        self.port, self.pid, self.every_s = port, pid, every_s
        self.samples: list[tuple[int | None, float]] = []
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            t, status = time.perf_counter(), None
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                conn.close()
            except OSError:
                pass
            self.samples.append((status, (time.perf_counter() - t) * 1e3))
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            self._stop.wait(self.every_s)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict:
        ms = np.array([m for _, m in self.samples])
        return {
            "probes": len(ms),
            "not_200": sum(st != 200 for st, _ in self.samples),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p90_ms": round(float(np.percentile(ms, 90)), 1),
            "max_ms": round(float(ms.max()), 1),
        }


def largest_body(limit: int) -> tuple[bytes, int]:
    """A forecast request of minute bars whose body fills 95% of `limit` bytes: the largest the server allows."""
    n = limit // 85
    rng = np.random.default_rng(0)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    stamps = pd.date_range("2000-01-03", periods=n, freq="min").strftime("%Y-%m-%dT%H:%M")
    bars = [
        {"timestamp": t, "open": c, "high": round(c * 1.01, 2), "low": round(c * 0.99, 2), "close": c}
        for t, c in zip(stamps, close.tolist())
    ]
    while True:
        body = json.dumps({"bars": bars, "pred_len": 2, "seed": 1}, separators=(",", ":")).encode()
        if len(body) <= 0.95 * limit:
            return body, len(bars)
        bars = bars[: int(len(bars) * 0.95 * limit / len(body))]


async def post_many(port: int, body: bytes, n: int) -> list[int | None]:
    return [r[0] for r in await asyncio.gather(*(http_post(port, "/v1/forecast", body, False) for _ in range(n)))]


async def large_bodies(port: int, pid: int, body: bytes, concurrent: int, burst: int) -> dict:
    """/healthz and resident memory idle, while `concurrent` of the largest bodies are parsed, through a burst of
    `burst` of them, and 2 s after it."""
    warm_kib = rss_kib(pid)
    with Watcher(port, pid) as idle:
        await asyncio.sleep(1.0)
    statuses = []
    with Watcher(port, pid) as loaded:
        statuses += await post_many(port, body, concurrent)
    with Watcher(port, pid) as bursting:
        statuses += await post_many(port, body, burst)
    await asyncio.sleep(2.0)
    return {
        "statuses": {str(k): statuses.count(k) for k in sorted(set(statuses), key=str)},
        "healthz_idle": idle.figures(),
        "healthz_loaded": loaded.figures(),
        "rss_warm_mib": round(warm_kib / 1024, 1),
        "rss_peak_loaded_mib": round(loaded.peak_kib / 1024, 1),
        "rss_peak_burst_mib": round(bursting.peak_kib / 1024, 1),
        "rss_after_burst_mib": round(rss_kib(pid) / 1024, 1),
    }


async def trickle(port: int, head: bytes, drip: bytes, every_s: float, give_up_s: float) -> tuple[float, bytes]:
    """Send `head`, then `drip` every `every_s` until the server closes the connection: (seconds it stayed open,
    what the server sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0, got = time.perf_counter(), b""
    writer.write(head)
    try:
        while time.perf_counter() - t0 < give_up_s:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every_s)
            except asyncio.TimeoutError:
                writer.write(drip)
                continue
            if not chunk:
                break
            got += chunk
    except OSError:
        pass  # reset after the answer
    writer.close()
    return time.perf_counter() - t0, got


async def slow_connections(port: int, pid: int, n: int, timeout_s: float) -> dict:
    """`n` connections sending a header line every 0.5 s and `n` sending one body byte every 0.5 s: how long each
    stayed open and what it was answered, with /healthz meanwhile."""
    give_up = 20 * timeout_s
    header = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")
    body = (
        b"POST /v1/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{",
        b" ",
    )
    with Watcher(port, pid, every_s=0.1) as health_meanwhile:
        got = await asyncio.gather(*(trickle(port, *kind, 0.5, give_up) for kind in (header, body) for _ in range(n)))
    out = {}
    for name, part in (("slow_headers", got[:n]), ("slow_bodies", got[n:])):
        out[name] = {
            "closed": sum(sec < give_up for sec, _ in part),
            "answered_408": sum(answer.startswith(b"HTTP/1.1 408") for _, answer in part),
            "max_open_s": round(max(sec for sec, _ in part), 2),
        }
    return {"connections": n, "timeout_s": timeout_s, **out, "healthz_meanwhile": health_meanwhile.figures()}


async def idle_connections(port: int, pid: int, n: int, timeout_s: float) -> dict:
    """`n` connections that send nothing (more than the server's open-file limit allows): /healthz meanwhile on
    fresh connections, and when the server closed each of them."""
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(n)), return_exceptions=True
    )
    conns = [c for c in opened if not isinstance(c, BaseException)]
    t0 = time.perf_counter()
    with Watcher(port, pid, every_s=0.05) as health_meanwhile:
        await asyncio.sleep(min(1.0, timeout_s / 2))

    async def closed_after(reader: asyncio.StreamReader) -> float:
        try:
            await asyncio.wait_for(reader.read(), 20 * timeout_s)
        except (asyncio.TimeoutError, OSError):
            pass
        return time.perf_counter() - t0

    closed = await asyncio.gather(*(closed_after(r) for r, _ in conns))
    for _, w in conns:
        w.close()
    seen = health(port)["connections"]
    return {
        "connections": n,
        "connected": len(conns),
        "timeout_s": timeout_s,
        "closed": sum(sec < 20 * timeout_s for sec in closed),
        "max_open_s": round(max(closed), 2),
        "healthz_meanwhile": health_meanwhile.figures(),
        "server_cut": {k: v for k, v in seen["cut"].items() if v},
        "server_max_connections": seen["max"],
    }


async def shutdown(port: int, proc: subprocess.Popen, in_flight: int) -> dict:
    """SIGTERM with `in_flight` long forecasts running: their answers, a new request's during the drain, the exit."""
    before = health(port)["requests"]
    body = json.dumps({**good_request(0), **HEAVY}).encode()
    running = [asyncio.ensure_future(http_post(port, "/v1/forecast", body, False)) for _ in range(in_flight)]
    while health(port)["requests"] < before + in_flight:
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    t0 = time.perf_counter()
    await asyncio.sleep(0.2)
    new = await http_post(port, "/v1/forecast", json.dumps(good_request(1)).encode(), False)
    answers = [r[0] for r in await asyncio.gather(*running)]
    code = await asyncio.to_thread(proc.wait, 120)
    return {
        "in_flight": in_flight,
        "in_flight_statuses": answers,
        "new_request_status": new[0],
        "new_request_retry_after": new[2].get("retry-after"),
        "exit_code": code,
        "drain_s": round(time.perf_counter() - t0, 2),
    }


def load_run(args, tok: Path, model: Path, root: Path) -> tuple[dict, dict]:
    """The 2,000 requests with faults on one server: figures and checks."""
    want = expected_answers(tok, model)
    proc, port = start(tok, model, ["--max-queue", str(args.max_queue), *SERVER], root / "server.log")
    try:
        burst = 2 * args.max_queue  # requests of 1 or 2 paths each: at least twice the limit in paths
        jobs = plan(args.requests, args.malformed, args.disconnect, burst, args.seed)
        rss: dict[str, int] = {}
        tally = Tally()
        wall = asyncio.run(
            drive(port, jobs, args.clients, burst, lambda: rss.setdefault("warm", rss_kib(proc.pid)), tally)
        )
        time.sleep(0.5)
        rss["end"] = rss_kib(proc.pid)
        seen = health(port)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = verdicts(tally, want)
    result.update(
        requests=len(tally.outcomes),
        seconds=round(wall, 2),
        requests_per_s=round(len(tally.outcomes) / wall, 1),
        rss_warm_mib=round(rss["warm"] / 1024, 1),
        rss_end_mib=round(rss["end"] / 1024, 1),
        rss_growth=round(rss["end"] / rss["warm"] - 1, 4),
        server_alive=alive,
        server_saw={
            "disconnected": seen["disconnected"],
            "rejected_queue_full": seen["batching"]["rejected_queue_full"],
            "timed_out": seen["batching"]["timed_out"],
            "abandoned_items": seen["batching"]["abandoned_items"],
            "stopped_runs": seen["batching"]["stopped_runs"],
            "queued_paths_at_end": seen["queued_paths"],
        },
    )
    checks = {
        "zero 5xx": result["server_errors"] == 0,
        "malformed -> 4xx naming the field": result["malformed_misanswered"] == 0,
        "good answers equal the library's": result["good_answers_differing"] == 0 and result["good_answers"] > 0,
        "good requests only 200 or 429": result["good_other_status"] == 0,
        "burst met 429 + Retry-After": result["http_429"] > 0
        and result["http_429_with_retry_after"] == result["http_429"],
        "RSS within 10% of warm-up": result["rss_growth"] <= 0.10,
        "server alive": alive,
        "queue empty at the end": result["server_saw"]["queued_paths_at_end"] == 0,
    }
    return result, checks


@contextlib.contextmanager
def open_files(limit: int):
    """This process's soft open-file limit set to `limit` (a server started inside inherits it), then restored."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def connection_cases(args, proc: subprocess.Popen, port: int, cases: set[str]) -> dict:
    out: dict = {}
    if "bodies" in cases:
        body, bars = largest_body(8 * 2**20)  # the server's default --max-body-bytes
        out["bodies"] = {"bars": bars, "body_mb": round(len(body) / 1e6, 2)}
        out["bodies"].update(await large_bodies(port, proc.pid, body, args.large_concurrent, 2 * args.large_concurrent))
        out["bodies"]["heap_trims"] = health(port)["heap_trims"]
    if "slow" in cases:
        out["slow"] = await slow_connections(port, proc.pid, args.slow, 2.0)
    if "idle" in cases:
        out["idle"] = await idle_connections(port, proc.pid, args.idle, 2.0)
    if "shutdown" in cases:
        out["shutdown"] = await shutdown(port, proc, 3)
    return out


def connection_run(args, tok: Path, model: Path, root: Path, cases: set[str]) -> tuple[dict, dict]:
    """The large-body, slow-connection, idle-connection and shutdown cases on one server (open-file limit 1,024,
    header and body deadlines 2 s): figures and checks."""
    with open_files(OPEN_FILES):
        proc, port = start(tok, model, CONN_SERVER, root / "connections.log")
    with open_files(max(4 * args.idle, 4096)):  # this side holds every idle connection too
        try:
            got = asyncio.run(connection_cases(args, proc, port, cases))
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    return got, connection_checks(got, args.hog)


def connection_checks(got: dict, hog: int) -> dict:
    checks = {}
    if "bodies" in got:
        b = got["bodies"]
        checks["largest bodies: all 200"] = set(b["statuses"]) == {"200"}
        checks["largest bodies: /healthz always 200"] = b["healthz_loaded"]["not_200"] == 0
        if hog == 0:  # a figure of this machine's speed: only without busy processes beside the server
            checks["largest bodies: /healthz p50 within 100 ms"] = b["healthz_loaded"]["p50_ms"] <= 100
    if "slow" in got:
        s = got["slow"]
        for kind in ("slow_headers", "slow_bodies"):
            ok = s[kind]["closed"] == s[kind]["answered_408"] == s["connections"]
            checks[f"{kind}: every one answered 408 and closed"] = ok
        checks["slow connections: /healthz always 200"] = s["healthz_meanwhile"]["not_200"] == 0
    if "idle" in got:
        i = got["idle"]
        checks["idle connections: every one closed"] = i["closed"] == i["connected"] == i["connections"]
        checks["idle connections: /healthz always 200"] = i["healthz_meanwhile"]["not_200"] == 0
    if "shutdown" in got:
        d = got["shutdown"]
        checks["shutdown: requests in flight answered 200"] = d["in_flight_statuses"] == [200] * d["in_flight"]
        checks["shutdown: a new request gets 503"] = d["new_request_status"] == 503
        checks["shutdown: exit code 0"] = d["exit_code"] == 0
    return checks


def report(result: dict, checks: dict, clients: int) -> None:
    if "requests" in result:
        print(
            f"{result['requests']} requests, {clients} clients: {result['requests_per_s']} req/s, "
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms; 429s {result['http_429']}, "
            f"504s {result['http_504']}, 5xx {result['server_errors']}, disconnects {result['disconnected']}, "
            f"malformed {result['malformed']}; RSS {result['rss_warm_mib']} MiB after warm-up -> "
            f"{result['rss_end_mib']} MiB at the end ({result['rss_growth']:+.1%}); the server saw "
            + ", ".join(f"{k} {v}" for k, v in result["server_saw"].items())
        )
    for line in connection_lines(result.get("connection_cases", {})):
        print(line)
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


def connection_lines(got: dict) -> list[str]:
    lines = []
    if "bodies" in got:
        b = got["bodies"]
        idle, loaded = b["healthz_idle"], b["healthz_loaded"]
        lines.append(
            f"largest bodies ({b['bars']} bars, {b['body_mb']} MB): answers {b['statuses']}; /healthz p50 "
            f"{loaded['p50_ms']} ms (p90 {loaded['p90_ms']}, max {loaded['max_ms']}) while parsed vs {idle['p50_ms']} "
            f"ms idle ({loaded['p50_ms'] / max(idle['p50_ms'], 1e-3):.1f}x); RSS {b['rss_warm_mib']} MiB warm, peak "
            f"{b['rss_peak_loaded_mib']} / {b['rss_peak_burst_mib']} MiB, {b['rss_after_burst_mib']} MiB 2 s after "
            f"the burst ({b['rss_after_burst_mib'] / b['rss_warm_mib']:.2f}x warm); heap trims {b['heap_trims']}"
        )
    if "slow" in got:
        s = got["slow"]
        for kind in ("slow_headers", "slow_bodies"):
            k = s[kind]
            lines.append(
                f"{s['connections']} {kind.replace('_', ' ')} (a line/byte every 0.5 s, deadline {s['timeout_s']:g} "
                f"s): {k['closed']} closed, {k['answered_408']} answered 408, open at most {k['max_open_s']} s "
                f"({k['max_open_s'] / s['timeout_s']:.2f}x the deadline)"
            )
        lines.append(f"  /healthz meanwhile: {s['healthz_meanwhile']}")
    if "idle" in got:
        i = got["idle"]
        lines.append(
            f"{i['connections']} idle connections (server: ulimit -n {OPEN_FILES}, --max-connections "
            f"{i['server_max_connections']} after fitting): {i['connected']} connected, {i['closed']} closed, the "
            f"last after {i['max_open_s']} s (deadline {i['timeout_s']:g} s); /healthz meanwhile "
            f"{i['healthz_meanwhile']}; the server cut {i['server_cut']}"
        )
    if "shutdown" in got:
        d = got["shutdown"]
        lines.append(
            f"SIGTERM with {d['in_flight']} long requests in flight: they got {d['in_flight_statuses']}, a new one "
            f"{d['new_request_status']} (Retry-After {d['new_request_retry_after']}); exit code {d['exit_code']} "
            f"after {d['drain_s']} s"
        )
    return lines


CASES = ("load", "bodies", "slow", "idle", "shutdown")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--malformed", type=float, default=0.10)
    ap.add_argument("--disconnect", type=float, default=0.05)
    ap.add_argument("--max-queue", type=int, default=96, help="The server's --max-queue (sample paths).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="Print the figures and checks as one JSON object.")
    ap.add_argument(
        "--hog", type=int, default=0, help="Busy processes beside the server for the whole run (a loaded machine)."
    )
    ap.add_argument("--cases", default=",".join(CASES), help=f"Which cases to run, of {', '.join(CASES)}.")
    ap.add_argument("--large-concurrent", type=int, default=8, help="Largest bodies sent at once (then twice that).")
    ap.add_argument("--slow", type=int, default=50, help="Slow-header connections, and as many slow-body ones.")
    ap.add_argument("--idle", type=int, default=1100, help="Idle connections (the server may open 1,024 files).")
    args = ap.parse_args()
    cases = set(args.cases.split(","))
    if cases - set(CASES):
        ap.error(f"unknown case(s) {', '.join(sorted(cases - set(CASES)))}; pick from {', '.join(CASES)}")
    result: dict = {}
    checks: dict = {}
    with tempfile.TemporaryDirectory() as tmp, busy_processes(args.hog):
        root = Path(tmp)
        tok, model = save_models("tiny", root)
        if "load" in cases:
            got, ok = load_run(args, tok, model, root)
            result.update(got)
            checks.update(ok)
        if cases - {"load"}:
            got, ok = connection_run(args, tok, model, root, cases)
            result["connection_cases"] = got
            checks.update(ok)
    result["checks"] = checks
    if args.json:
        print(json.dumps(result))
    else:
        report(result, checks, args.clients)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
