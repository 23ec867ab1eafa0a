"""`kronos export`: write the requested artifacts, then prove each one by reloading it in a fresh process."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from kronos_cli.bars import normalise_lookback
from kronos_cli.config import Config
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.errors import KronosError
from kronos_cli.export import artifacts, verify
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.io import write_json
from kronos_cli.model.bundle import BUNDLE_NAME, write_bundle
from kronos_cli.runs import data_conventions, load_pair, run_dir

log = logging.getLogger(__name__)

FORMATS = ("bundle", "hf", "int8", "compiled")
# Greedy forecasts against the eager fp32 model, normalised units. The lossless formats must match to float
# precision (max |diff|); int8 changes the arithmetic, so a token can flip: it is held to its mean |diff|.
TOLERANCE = {"bundle": ("max", 1e-5), "hf": ("max", 1e-5), "compiled": ("max", 1e-4), "int8": ("mean", 0.1)}
VERIFY_WINDOWS = 16


def _sample_windows(cfg: Config, lookback: int, pred_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out test windows of the configured dataset when there is one, else seeded random walks."""
    try:
        ds = WindowDataset(cfg.data.dataset_path, "test")
        if ds.lookback == lookback and ds.window >= lookback + pred_len:
            idx = np.linspace(0, len(ds) - 1, VERIFY_WINDOWS).astype(int)
            x, stamps = ds.__getitems__(idx)
            return np.ascontiguousarray(x[:, :lookback]), np.ascontiguousarray(stamps[:, : lookback + pred_len])
    except KronosError:
        pass
    rng = np.random.default_rng(0)
    bars = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (VERIFY_WINDOWS, lookback, 6)), axis=1))
    days = np.arange(lookback + pred_len)
    stamps = np.stack([np.zeros_like(days), np.zeros_like(days), days % 5, days % 28 + 1, days // 28 % 12 + 1], -1)
    return normalise_lookback(bars.astype(np.float32), cfg.data.clip)[0], np.repeat(
        stamps[None], VERIFY_WINDOWS, 0
    ).astype(np.int8)


def run_export(
    cfg: Config,
    out: Path,
    formats: list[str] | None = None,
    tokenizer: str | None = None,
    model: str | None = None,
    force: bool = False,
    push_to_hub: str | None = None,
) -> dict[str, Any]:
    formats = list(formats or FORMATS)
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise KronosError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        if not force:
            raise KronosError(f"{out} exists and is not empty; pass --force to replace it")
        shutil.rmtree(out)
    pair = load_pair(cfg, tokenizer, model)
    tok, mdl = pair.tokenizer, pair.model
    out.mkdir(parents=True)
    d = cfg.data
    look, pred, ctx = d.lookback_window, d.predict_window, d.max_context
    summary_path = run_dir(cfg, "predictor") / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}

    written: dict[str, Path] = {}
    for fmt in formats:
        t = time.perf_counter()
        if fmt == "bundle":
            written[fmt] = write_bundle(tok, mdl, out / BUNDLE_NAME, data_conventions(cfg))
        elif fmt == "hf":
            artifacts.write_hub(tok, mdl, out / "hf", summary, data_conventions(cfg))
            written[fmt] = out / "hf"
        elif fmt == "int8":
            written[fmt] = artifacts.write_int8(tok, mdl, out / artifacts.INT8_NAME, data_conventions(cfg))
        else:
            written[fmt] = artifacts.write_compiled(tok, mdl, out / artifacts.COMPILED_NAME, look, pred, ctx)
        log.info("wrote %s (%s) in %.1f s", written[fmt], fmt, time.perf_counter() - t)

    x, stamps = _sample_windows(cfg, look, pred)
    np.savez(out / "verify_inputs.npz", x=x, stamps=stamps)
    eager = KronosPredictor(mdl, tok, device="cpu", max_context=ctx, clip=d.clip)
    reference = eager.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred, top_k=1)[:, 0]
    rows = []
    for fmt, path in written.items():
        got = _reload(fmt, path, out, pred, ctx)
        diff = np.abs(got - reference)
        stat, limit = TOLERANCE[fmt]
        value = diff.max() if stat == "max" else diff.mean()
        rows.append(
            {
                "format": fmt,
                "path": str(path),
                "bytes": _size(path),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "tolerance": f"{stat} |diff| <= {limit:g}",
                "ok": bool(value <= limit),
            }
        )
    report: dict[str, Any] = {
        "out": str(out),
        "tokenizer": pair.sources["tokenizer"],
        "predictor": pair.sources["model"],
        "verify_windows": int(len(x)),
        "lookback": look,
        "pred_len": pred,
        "tolerance_units": "normalised (z-score of the lookback)",
        "artifacts": rows,
    }
    if "int8" in written:
        report["int8"] = _int8_figures(written["int8"], eager, x, stamps, look, pred, pair.weights)
    if push_to_hub and "hf" in written:
        report["pushed"] = artifacts.push_to_hub(written["hf"], push_to_hub)
    write_json(out / "export_report.json", report)
    (out / "verify_inputs.npz").unlink()
    failed = [r["format"] for r in rows if not r["ok"]]
    if failed:
        raise RuntimeError(f"verification failed for {', '.join(failed)}; see {out / 'export_report.json'}")
    return report


def _reload(fmt: str, path: Path, out: Path, pred: int, ctx: int) -> np.ndarray:
    result = out / f".verify_{fmt}.npy"
    # The compiled program is checked with kronos_cli unimportable, so verify.py runs as a plain script there.
    entry = [verify.__file__] if fmt == "compiled" else ["-m", "kronos_cli.export.verify"]
    proc = subprocess.run(
        [sys.executable, *entry, fmt, str(path), str(out / "verify_inputs.npz"), str(result), str(pred), str(ctx)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"reloading the {fmt} artifact in a fresh process failed: "
            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
    got = np.load(result, allow_pickle=False)
    result.unlink()
    return got


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _int8_figures(path: Path, eager, x, stamps, look: int, pred: int, weights: tuple[Path, ...]) -> dict:
    """Size against the fp32 weights, and CPU speed against the fp32 model on the same windows."""
    tok, model, norm = artifacts.load_int8(path)
    quant = KronosPredictor(model, tok, device="cpu", max_context=norm["max_context"], clip=norm["clip"])

    def timed(p) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            p.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred, top_k=1)
            best = min(best, time.perf_counter() - t)
        return best

    fp32_bytes = sum(w.stat().st_size for w in weights)
    t32, t8 = timed(eager), timed(quant)
    return {
        "bytes": path.stat().st_size,
        "fp32_bytes": fp32_bytes,
        "size_ratio": path.stat().st_size / fp32_bytes,
        "fp32_seconds": t32,
        "int8_seconds": t8,
        "cpu_speedup": t32 / t8,
    }
