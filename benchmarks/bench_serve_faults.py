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

Figures: requests/s, p50/p99 latency of the answered requests, 429s, 504s, disconnects, RSS. Exit 1 when a
check fails.

    python benchmarks/bench_serve_faults.py               # random weights of the tiny preset
    python benchmarks/bench_serve_faults.py --requests 500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from bench_serve import health, save_models, start  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli.bars import FEATURES
from kronos_cli.forecast import KronosPredictor
from kronos_cli.forecast.series import forecast_series

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
        fc = forecast_series(predictor, series(i), req["pred_len"], samples=req["samples"], seed=req["seed"])
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, busy_processes(args.hog):
        root = Path(tmp)
        tok, model = save_models("tiny", root)
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
    result["checks"] = checks
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['requests']} requests, {args.clients} clients: {result['requests_per_s']} req/s, "
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms; 429s {result['http_429']}, "
            f"504s {result['http_504']}, 5xx {result['server_errors']}, disconnects {result['disconnected']}, "
            f"malformed {result['malformed']}; RSS {result['rss_warm_mib']} MiB after warm-up -> "
            f"{result['rss_end_mib']} MiB at the end ({result['rss_growth']:+.1%}); the server saw "
            + ", ".join(f"{k} {v}" for k, v in result["server_saw"].items())
        )
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
