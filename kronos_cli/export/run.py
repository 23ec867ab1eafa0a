"""`kronos export`: write the requested artifacts, then prove each one by reloading it in a fresh process.

bundle and hf are lossless and required: they must reproduce the eager model's greedy forecasts to float
precision, and a failure fails the export. compiled (lossless, float rounding of the exported graph), int8 and
int4 (lossy, weight-only through torchao) are optional: a failure to write or verify them is recorded and warned
about, and the others stand. Quantisation changes the arithmetic, so single tokens can flip and greedy paths then
part; a quantised copy is held to what it should preserve: the tokens and next-token predictions
(teacher-forced), and the ranking of the forecast signal across windows. The tolerances were measured on trained
models (README, Export).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import write_json
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.export import artifacts, hub, onnx_check, onnx_graphs, quantized, verify
from kronos_cli.export.report import ArtifactCheck, ExportReport
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.market.bars import normalise_lookback
from kronos_cli.model.bundle import BUNDLE_NAME, write_bundle
from kronos_cli.model.sampling import GREEDY
from kronos_cli.records.runs import ModelPair, data_conventions, evaluation_dir, load_pair, run_dir

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]

FORMATS = ("bundle", "hf", "int8", "int4", "compiled", "onnx")
DEFAULT_FORMATS = ("bundle", "hf", "int8", "compiled")  # int4, onnx: on request
MAX_DIFF = {"bundle": 1e-5, "hf": 1e-5, "compiled": 1e-4}  # max |diff| of greedy forecasts, normalised units
INT8_TOKENS, INT8_RANK = 0.85, 0.8  # int8 and int4: least share of tokens kept, least signal rank correlation
EVALUATION = "evaluation.json"  # evaluate.run.RESULTS: a package of the same layer, so not imported
VERIFY_WINDOWS = 256  # the int8 signal rank correlation over 64 windows had a standard error near 0.08
CLOSE = 3


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
    x = normalise_lookback(bars.astype(np.float32), cfg.data.clip)[0]
    return x, np.repeat(stamps[None], VERIFY_WINDOWS, 0).astype(np.int8)


def _prepare_out(out: Path, formats: list[str], force: bool) -> Path:
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise KronosError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    if "onnx" in formats:
        onnx_graphs.require_onnx()  # before anything is written or replaced
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        if not force:
            raise KronosError(f"{out} exists and is not empty; pass force to replace it", setting="force")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _write(fmt: str, pair: ModelPair, out: Path, cfg: Config) -> Path:
    tok, mdl, d = pair.tokenizer, pair.model, cfg.data
    if fmt == "bundle":
        return write_bundle(tok, mdl, out / BUNDLE_NAME, data_conventions(cfg))
    if fmt == "hf":
        hub.write_cards(artifacts.write_hub(tok, mdl, out / "hf", data_conventions(cfg)), _card_facts(cfg))
        return out / "hf"
    if fmt == "onnx":
        return onnx_graphs.write_onnx(tok, mdl, out / onnx_graphs.ONNX_DIR, d.max_context, d.clip)
    if fmt in quantized.LOSSY:
        return quantized.write_quantized(tok, mdl, out / quantized.FILE_NAMES[fmt], data_conventions(cfg), fmt)
    path = out / artifacts.COMPILED_NAME
    return artifacts.write_compiled(tok, mdl, path, d.lookback_window, d.predict_window, d.max_context)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _card_facts(cfg: Config) -> hub.CardFacts:
    """What the model cards say about the run: where it started, its data, its summary and leaderboard."""
    d = cfg.data
    data = {
        "instrument": d.instrument,
        "source": d.source,
        "freq": d.freq,
        "train": d.train_time_range,
        "val": d.val_time_range,
        "test": d.test_time_range,
        "lookback_window": d.lookback_window,
        "predict_window": d.predict_window,
    }
    return hub.CardFacts(
        {"tokenizer": cfg.model.tokenizer, "model": cfg.model.predictor},
        data,
        _read_json(run_dir(cfg, "predictor") / "summary.json") or {},
        _read_json(evaluation_dir(cfg, "test") / EVALUATION),
    )


def run_export(
    cfg: Config,
    out: Path,
    formats: list[str] | None = None,
    tokenizer: str | None = None,
    model: str | None = None,
    force: bool = False,
    push_to_hub: str | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    formats = list(formats or DEFAULT_FORMATS)
    if push_to_hub:
        hub.hub_token()  # no token: fail before the export's work
    out = _prepare_out(out, formats, force)
    pair = load_pair(cfg, tokenizer, model)
    d = cfg.data
    look, pred, ctx = d.lookback_window, d.predict_window, d.max_context
    steps, done = 2 * len(formats), 0
    checks: dict[str, ArtifactCheck] = {}
    for fmt in formats:
        t, check = time.perf_counter(), ArtifactCheck(fmt, "")
        try:
            path = _write(fmt, pair, out, cfg)
            check.path, check.bytes = str(path), _size(path)
            log.info("wrote %s (%s) in %.1f s", path, fmt, time.perf_counter() - t)
        except Exception as exc:  # recorded; a required format fails the export below
            check.error = f"writing failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        checks[fmt] = check
        done += 1
        if progress:
            progress(done, steps, f"wrote {fmt}")
    x, stamps = _sample_windows(cfg, look, pred)
    np.savez(out / "verify_inputs.npz", x=x, stamps=stamps)
    eager = KronosPredictor(pair.model, pair.tokenizer, device="cpu", max_context=ctx, clip=d.clip)
    reference = eager.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred, GREEDY)[:, 0]
    for fmt, check in checks.items():
        if check.error is None:
            _verify(check, out, reference, x, stamps, pred, ctx, eager)
        done += 1
        if progress:
            progress(done, steps, f"verified {fmt}")
    (out / "verify_inputs.npz").unlink()
    return _finish(cfg, out, pair, list(checks.values()), x, stamps, eager, push_to_hub)


def _finish(
    cfg: Config,
    out: Path,
    pair: ModelPair,
    checks: list[ArtifactCheck],
    x: np.ndarray,
    stamps: np.ndarray,
    eager: KronosPredictor,
    push_to_hub: str | None,
) -> ExportReport:
    d = cfg.data
    report = ExportReport(
        str(out),
        pair.sources["tokenizer"],
        pair.sources["model"],
        int(len(x)),
        d.lookback_window,
        d.predict_window,
        checks,
    )
    by_format = {c.format: c for c in checks}
    for fmt in quantized.LOSSY:
        if fmt in by_format and by_format[fmt].error is None:
            figures = _quantized_figures(
                fmt, Path(by_format[fmt].path), eager, x, stamps, d.lookback_window, d.predict_window, pair.weights
            )
            setattr(report, fmt, figures)
    for c in checks:
        if not c.verified and not c.required:
            report.warnings.append(f"the optional {c.format} artifact is not usable: {c.error or 'not verified'}")
            log.warning(report.warnings[-1])
    if push_to_hub and "hf" in by_format and by_format["hf"].verified:
        report.pushed = hub.push_to_hub(Path(by_format["hf"].path), push_to_hub)
    write_json(out / "export_report.json", report.to_json())
    if report.failed_required:
        raise RuntimeError(f"{', '.join(report.failed_required)} failed verification; see {out / 'export_report.json'}")
    return report


def _verify(
    check: ArtifactCheck,
    out: Path,
    reference: np.ndarray,
    x: np.ndarray,
    stamps: np.ndarray,
    pred: int,
    ctx: int,
    eager: KronosPredictor,
) -> None:
    if check.format == "onnx":  # run by its numpy driver, greedy and sampled: checked in onnx_check
        return onnx_check.verify(check, reference, x, stamps, eager)
    try:
        got = _reload(check.format, Path(check.path), out, pred, ctx)
    except RuntimeError as exc:
        check.error = str(exc)
        return
    diff = np.abs(got - reference)
    check.max_abs_diff, check.mean_abs_diff = float(diff.max()), float(diff.mean())
    if check.format in MAX_DIFF:
        check.tolerance = f"max |diff| <= {MAX_DIFF[check.format]:g}"
        check.verified = bool(check.max_abs_diff <= MAX_DIFF[check.format])
        return
    look = x.shape[1]
    signal_ref, signal_got = reference[:, -1, CLOSE] - x[:, -1, CLOSE], got[:, -1, CLOSE] - x[:, -1, CLOSE]
    check.rank_correlation = float(spearmanr(signal_ref, signal_got)[0])
    check.token_agreement = _token_agreement(check.format, Path(check.path), eager, x, stamps[:, :look])
    check.tolerance = f"tokens kept >= {INT8_TOKENS:.0%}, signal rank corr >= {INT8_RANK:g}"
    check.verified = bool(check.token_agreement >= INT8_TOKENS and check.rank_correlation >= INT8_RANK)


@torch.no_grad()
def _token_agreement(fmt: str, path: Path, eager: KronosPredictor, x: np.ndarray, x_stamp: np.ndarray) -> float:
    """The share of tokens the quantised tokenizer encodes the same and of next s1 tokens (teacher-forced on the
    fp32 tokens) the quantised predictor ranks first the same, averaged."""
    tok, model, _ = quantized.load_quantized(path, fmt)
    xt, st = torch.from_numpy(x), torch.from_numpy(x_stamp.astype(np.float32))
    s1, s2 = eager.tokenizer.encode(xt, half=True)
    q1, q2 = tok.encode(xt, half=True)
    encoded = ((s1 == q1) & (s2 == q2)).float().mean().item()
    ref_logits, _ = eager.model.decode_s1(s1, s2, st)
    int8_logits, _ = model.decode_s1(s1, s2, st)
    predicted = (ref_logits.argmax(-1) == int8_logits.argmax(-1)).float().mean().item()
    return (encoded + predicted) / 2


def _reload(fmt: str, path: Path, out: Path, pred: int, ctx: int) -> np.ndarray:
    result = out / f".verify_{fmt}.npy"
    # The compiled program is checked with kronos_cli unimportable, so verify.py runs as a plain script there.
    entry = [verify.__file__] if fmt == "compiled" else ["-m", "kronos_cli.export.verify"]
    args = [sys.executable, *entry, fmt, str(path), str(out / "verify_inputs.npz"), str(result), str(pred), str(ctx)]
    return verify.fresh_process(args, result, f"reloading the {fmt} artifact")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _quantized_figures(
    fmt: str,
    path: Path,
    eager: KronosPredictor,
    x: np.ndarray,
    stamps: np.ndarray,
    look: int,
    pred: int,
    weights: tuple[Path, ...],
) -> dict[str, float]:
    """Size against the fp32 weights, and CPU speed against the fp32 model on the same windows."""
    tok, model, conv = quantized.load_quantized(path, fmt)
    quant = KronosPredictor(model, tok, device="cpu", max_context=conv.max_context, clip=conv.clip)

    def timed(p: KronosPredictor) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            p.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred, GREEDY)
            best = min(best, time.perf_counter() - t)
        return best

    fp32_bytes = sum(w.stat().st_size for w in weights)
    t32, tq = timed(eager), timed(quant)
    return {
        "bytes": path.stat().st_size,
        "fp32_bytes": fp32_bytes,
        "size_ratio": path.stat().st_size / fp32_bytes,
        "fp32_seconds": t32,
        f"{fmt}_seconds": tq,
        "cpu_speedup": t32 / tq,
    }
