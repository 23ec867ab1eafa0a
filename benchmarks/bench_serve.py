"""`kronos serve` under load: throughput and latency with dynamic batching on and off.

Random weights of the tiny preset (with the tiny tokenizer) and of Kronos-small (with the Kronos-Tokenizer-base
architecture), on the CPU. For each, a real server process on a free loopback port is started twice, with
batching (`--max-batch 64 --max-wait-ms 10`, the defaults) and without (`--max-batch 1`), and driven by 32
concurrent clients (threads with keep-alive connections, in this process) sending 200 requests between them,
each a different series of `--lookback` daily bars with its own seed. The two modes alternate for `--rounds`
rounds (this machine is noisy), each on a fresh server. Prints the median requests/s of each mode, p50/p99
latency over all its requests, and the throughput ratio batched / unbatched measured in the same run; the
answers of every run are compared too (the same seeds must give the same forecasts).

    python benchmarks/bench_serve.py                 # tiny and small, 32 clients, 200 requests
    python benchmarks/bench_serve.py --presets tiny --requests 100
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kronos_cli.model import Kronos, KronosTokenizer

PAIRS = {"tiny": ("tokenizer-tiny", "tiny"), "small": ("tokenizer-base", "small")}


def save_models(preset: str, root: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    tok_preset, model_preset = PAIRS[preset]
    KronosTokenizer.from_preset(tok_preset).save_pretrained(root / f"{preset}-tokenizer")
    Kronos.from_preset(model_preset).save_pretrained(root / f"{preset}-model")
    return root / f"{preset}-tokenizer", root / f"{preset}-model"


def request_bodies(n: int, lookback: int, pred_len: int) -> list[bytes]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, lookback)))
        ts = pd.bdate_range("2024-01-01", periods=lookback)
        bars = [
            {
                "timestamp": t.isoformat(),
                "open": c * 1.001,
                "high": c * 1.01,
                "low": c * 0.99,
                "close": c,
                "volume": 1e5,
            }
            for t, c in zip(ts, close.tolist())
        ]
        out.append(json.dumps({"bars": bars, "pred_len": pred_len, "seed": i, "top_p": 0.9}).encode())
    return out


BATCHING = {True: ["--max-batch", "64", "--max-wait-ms", "10"], False: ["--max-batch", "1"]}


def start(tok: Path, model: Path, flags: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    """A `kronos serve` process with `flags` on a free port: (process, port), once it says it is ready."""
    cmd = [
        sys.executable,
        "-m",
        "kronos_cli",
        "serve",
        "--tokenizer",
        str(tok),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--port",
        "0",
        *flags,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    line = proc.stdout.readline()
    if "ready on " not in line:
        proc.kill()
        raise SystemExit(f"the server did not start:\n{log.read_text()}")
    return proc, int(line.split("ready on ", 1)[1].split()[0].rsplit(":", 1)[1])


def load(port: int, bodies: list[bytes], clients: int) -> tuple[float, list[float], dict[int, bytes]]:
    """Send every body once from `clients` threads; (wall seconds, latencies, answers by body index)."""
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    answers: dict[int, bytes] = {}
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                i = next(counter)
            if i >= len(bodies):
                break
            t = time.perf_counter()
            conn.request("POST", "/v1/forecast", body=bodies[i], headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                answers[i] = payload
                if resp.status != 200:
                    errors.append(payload.decode()[:200])
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return wall, latencies, answers


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/healthz")
    return json.loads(conn.getresponse().read())


def run(preset: str, root: Path, args) -> dict:
    """Rounds of (off, on), each on a fresh server: per mode the median throughput and pooled latencies."""
    tok, model = save_models(preset, root)
    bodies = request_bodies(args.requests, args.lookback, args.pred_len)
    warm = request_bodies(args.clients, args.lookback, args.pred_len)
    runs: dict[str, list] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for batching in (False, True):
            proc, port = start(tok, model, BATCHING[batching], root / f"{preset}-{batching}.log")
            try:
                load(port, warm, args.clients)  # warm-up: first-call allocations, connection set-up
                before = health(port)["batching"]
                wall, lat, answers = load(port, bodies, args.clients)
                after = health(port)["batching"]
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            runs["on" if batching else "off"].append(
                (len(bodies) / wall, lat, answers, len(bodies) / max(after["batches"] - before["batches"], 1))
            )
    result = {}
    for mode, rs in runs.items():
        lat = [x for r in rs for x in r[1]]
        result[mode] = {
            "throughput": float(np.median([r[0] for r in rs])),
            "all": [r[0] for r in rs],
            "p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "p99_ms": 1e3 * float(np.percentile(lat, 99)),
            "mean_batch": float(np.mean([r[3] for r in rs])),
        }
    answers = [r[2] for rs in runs.values() for r in rs]
    result["identical"] = all(a == answers[0] for a in answers)
    result["ratio"] = result["on"]["throughput"] / result["off"]["throughput"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--lookback", type=int, default=90)
    parser.add_argument("--pred-len", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="Alternating off/on runs per preset (medians).")
    args = parser.parse_args()
    print(
        f"kronos serve on the CPU ({os.cpu_count()} cores, torch {torch.__version__}): {args.clients} clients, "
        f"{args.requests} requests, lookback {args.lookback}, pred_len {args.pred_len}, 1 sample each, "
        f"{args.rounds} alternating rounds per mode (median req/s; latencies pooled)"
    )
    header = f"{'preset':<7}{'batching':<10}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'mean batch':>12}"
    rows, ratios = [header], []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            r = run(preset, Path(tmp), args)
            for mode in ("off", "on"):
                m = r[mode]
                rows.append(
                    f"{preset:<7}{mode:<10}{m['throughput']:>9.1f}{m['p50_ms']:>10.1f}{m['p99_ms']:>10.1f}"
                    f"{m['mean_batch']:>12.1f}   rounds: {', '.join(f'{x:.1f}' for x in m['all'])}"
                )
            ratios.append(
                f"{preset}: batching gives {r['ratio']:.1f}x the throughput (target >= 3x); answers "
                f"{'identical' if r['identical'] else 'DIFFER'} with and without batching"
            )
    print("\n".join(rows + ratios))


if __name__ == "__main__":
    main()
