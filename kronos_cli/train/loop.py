"""The training loop shared by both stages and by 1..N processes; the stage supplies the step function.

Reproducibility: the sampler's order is fixed by (seed, epoch) and every batch reseeds the RNG from
(seed, rank, epoch, batch), so dropout and sampling depend only on the position in training. A run resumed
from `checkpoints/last` therefore ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from kronos_cli import __version__
from kronos_cli.config import Config
from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate, to_tensors
from kronos_cli.errors import KronosError
from kronos_cli.io import write_json
from kronos_cli.runs import best_or_configured, run_dir
from kronos_cli.train import checkpoints
from kronos_cli.train.augment import augment
from kronos_cli.train.distributed import Context, all_reduce_sum, barrier
from kronos_cli.train.loggers import CometLogger, JsonlLogger

log = logging.getLogger(__name__)


@dataclass
class StepEvent:
    epoch: int
    epochs: int
    step: int  # optimiser steps so far
    total_steps: int
    loss: float
    lr: float
    samples_per_s: float


@dataclass
class EpochEvent:
    epoch: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    improved: bool
    lr: float
    seconds: float


class Observer:
    """Receives progress from rank 0; the CLI renders it, tests can record it."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, event: StepEvent) -> None: ...
    def on_epoch(self, event: EpochEvent) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...


@dataclass
class TrainOptions:
    stage: str  # "tokenizer" or "predictor"
    max_steps: int | None = None
    resume: str | None = None  # None, "auto" or a checkpoints/last directory
    init: str | None = None  # start from this checkpoint instead of the config's model
    tokenizer: str | None = None  # the predictor stage's tokenizer
    checkpoint_every: int = 0  # also write checkpoints/last every N optimiser steps (0: at epoch ends)


def _seed_for(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2 ** 63 - 1)
    return h


def _scheduler(cfg: Config, opt: torch.optim.Optimizer, lr: float, total: int):
    t = cfg.training
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=t.warmup_ratio,
                                                   div_factor=10)
    warmup = max(1, int(t.warmup_ratio * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _autocast(cfg: Config, device: torch.device):
    p = cfg.training.precision
    if p == "fp32":
        return nullcontext()
    if p == "fp16" and device.type != "cuda":
        raise KronosError("training.precision=fp16 needs CUDA; use bf16 or fp32 on this device")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)


def build_stage(cfg: Config, opts: TrainOptions):
    from kronos_cli.train.stages import PredictorStage, TokenizerStage

    if opts.stage == "tokenizer":
        return TokenizerStage.build(cfg, opts.init)
    return PredictorStage.build(cfg, opts.init, opts.tokenizer or best_or_configured(cfg, "tokenizer"))


def _resolve_resume(opts: TrainOptions, out: Path, restarted: bool) -> Path | None:
    last = out / "checkpoints" / "last"
    if restarted:  # an elastic restart after a worker failure
        return last if last.is_dir() else None
    if opts.resume is None:
        return None
    if opts.resume == "auto":
        return last if last.is_dir() else None
    path = Path(opts.resume).expanduser()
    if not path.is_dir():
        raise KronosError(f"--resume {opts.resume}: no checkpoint there; pass --resume auto or a checkpoints/last "
                          f"directory")
    return path


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def train(cfg: Config, opts: TrainOptions, ctx: Context, observer: Observer | None = None) -> dict[str, Any]:
    """Train one stage; returns the run summary (also written to summary.json). Rank 0 logs to logs/train.log."""
    handler = _attach_file_log(run_dir(cfg, opts.stage) / "logs" / "train.log") if ctx.is_main else None
    try:
        return _train(cfg, opts, ctx, observer)
    finally:
        if handler is not None:
            logging.getLogger("kronos_cli").removeHandler(handler)
            handler.close()


def _train(cfg: Config, opts: TrainOptions, ctx: Context, observer: Observer | None) -> dict[str, Any]:
    import os

    t0 = time.perf_counter()
    obs = observer if (observer is not None and ctx.is_main) else Observer()
    t = cfg.training
    torch.manual_seed(cfg.seed)  # scratch initialisation is reproducible, and the same on every rank
    stage = build_stage(cfg, opts)
    model: nn.Module = stage.model
    for m in stage.modules():
        m.to(ctx.device)
    out = run_dir(cfg, stage.name)
    ckpt_dir = out / "checkpoints"

    d = cfg.data
    train_ds = WindowDataset(d.dataset_path, "train", d.lookback_window, d.predict_window)
    val_ds = WindowDataset(d.dataset_path, "val", d.lookback_window, d.predict_window)
    for name, ds in (("train", train_ds), ("val", val_ds)):
        if t.batch_size * ctx.world_size > len(ds):
            raise KronosError(f"training.batch_size {t.batch_size} x {ctx.world_size} process(es) exceeds the "
                              f"{len(ds)} windows of the {name} split; lower the batch size")
    train_sampler = EpochSampler(len(train_ds), t.n_train_iter * t.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    val_sampler = EpochSampler(len(val_ds), min(t.n_val_iter * t.batch_size, len(val_ds)), cfg.seed + 1, ctx.rank,
                               ctx.world_size)
    val_sampler.set_epoch(0)  # the same validation windows every epoch
    workers = t.num_workers if t.num_workers >= 0 else (2 if ctx.device.type == "cuda" else 0)

    def loader(ds, sampler):
        return DataLoader(ds, batch_size=t.batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                          persistent_workers=False, pin_memory=ctx.device.type == "cuda")

    net = model
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=stage.lr, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.adam_weight_decay)
    batches_per_epoch = len(train_sampler) // t.batch_size
    if batches_per_epoch == 0:
        raise KronosError("an epoch has no full batch; raise training.n_train_iter or lower training.batch_size")
    steps_per_epoch = math.ceil(batches_per_epoch / t.accumulation_steps)
    epochs = (t.tokenizer_epochs or t.epochs) if stage.name == "tokenizer" else t.epochs
    total_steps = epochs * steps_per_epoch
    if opts.max_steps is not None:
        total_steps = min(total_steps, opts.max_steps)
    sched = _scheduler(cfg, opt, stage.lr, total_steps)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=t.precision == "fp16")

    state: dict[str, Any] = {"epoch": 0, "step": 0, "batches_done": 0, "best_val_loss": float("inf"),
                             "best_epoch": -1, "bad_epochs": 0, "history": [], "train_seconds": 0.0,
                             "rank_weight_spread": 0.0}
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    resume_from = _resolve_resume(opts, out, restarted)
    if resume_from is not None:
        saved = checkpoints.load_last(resume_from, model)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        checkpoints.restore_rng(saved["rng"])
        state.update({k: saved[k] for k in state})
        log.info("resumed from %s at epoch %d, step %d", resume_from, state["epoch"] + 1, state["step"])
        old_cfg = out / "config.json"
        if old_cfg.is_file():
            diff = _config_diff(json.loads(old_cfg.read_text()), cfg.to_dict())
            if diff:
                log.warning("resuming with a config that differs from the run's: %s", "; ".join(diff))
    elif ctx.is_main and ckpt_dir.exists() and opts.resume is None:
        log.warning("%s already has checkpoints; they will be replaced (use --resume auto to continue)", out)

    jsonl = comet = None
    if ctx.is_main:
        (out / "logs").mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        jsonl = JsonlLogger(out / "logs" / "metrics.jsonl")
        if cfg.logging.comet.enabled:
            comet = CometLogger(cfg.logging.comet, f"{cfg.run_name}-{stage.name}", cfg.to_dict())

    obs.on_start({"stage": stage.name, "run_dir": str(out), "epochs": epochs, "total_steps": total_steps,
                  "world_size": ctx.world_size, "device": str(ctx.device), "train_windows": len(train_ds),
                  "val_windows": len(val_ds), "params": sum(p.numel() for p in params),
                  "resumed_from": str(resume_from) if resume_from else None})
    metric_prefix = f"train_{stage.name}"
    samples_seen = 0
    stopped_early = False
    try:
        for epoch in range(state["epoch"], epochs):
            if state["step"] >= total_steps:
                break
            model.train()
            epoch_t0 = time.perf_counter()
            skip = state["batches_done"]
            train_sampler.set_epoch(epoch, skip=skip * t.batch_size)
            loss_sum, loss_n = 0.0, 0
            window_t0, window_samples = time.perf_counter(), 0
            for b, batch in enumerate(loader(train_ds, train_sampler), start=skip):
                torch.manual_seed(_seed_for(cfg.seed, ctx.rank, epoch, b))
                x, stamp = to_tensors(batch, ctx.device)
                if t.augment:
                    g = torch.Generator().manual_seed(_seed_for(cfg.seed + 7, ctx.rank, epoch, b))
                    x = augment(x, t.augment, g)
                boundary = (b + 1) % t.accumulation_steps == 0 or b + 1 == batches_per_epoch
                sync = net.no_sync() if (ctx.distributed and not boundary) else nullcontext()
                with sync:
                    with _autocast(cfg, ctx.device):
                        loss, parts = stage.train_loss(net, x, stamp)
                    scaler.scale(loss / t.accumulation_steps).backward()
                loss_sum += loss.item()
                loss_n += 1
                window_samples += x.shape[0] * ctx.world_size
                samples_seen += x.shape[0] * ctx.world_size
                if not boundary:
                    continue
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                sched.step()
                state["step"] += 1
                state["batches_done"] = b + 1
                lr = opt.param_groups[0]["lr"]
                rate = window_samples / max(time.perf_counter() - window_t0, 1e-9)
                obs.on_step(StepEvent(epoch + 1, epochs, state["step"], total_steps, loss.item(), lr, rate))
                if ctx.is_main and (state["step"] % cfg.logging.log_interval == 0 or state["step"] == total_steps):
                    record = {"type": "step", "stage": stage.name, "epoch": epoch + 1, "step": state["step"],
                              "loss": loss.item(), "lr": lr, "samples_per_s": rate, **parts}
                    jsonl.log(record)
                    if comet:
                        comet.log_metrics({f"{metric_prefix}_loss_batch": loss.item(), f"{stage.name}_lr": lr},
                                          step=state["step"], epoch=epoch + 1)
                    window_t0, window_samples = time.perf_counter(), 0
                if opts.checkpoint_every and state["step"] % opts.checkpoint_every == 0 and ctx.is_main:
                    _save_last(ckpt_dir, model, opt, sched, scaler, state, epoch)
                _maybe_inject_fault(state["step"], ctx)
                if state["step"] >= total_steps:
                    break
            train_loss = _mean_across(loss_sum, loss_n, ctx)
            state["rank_weight_spread"] = _weight_spread(model, ctx)
            if state["rank_weight_spread"] > 0:
                log.warning("weights differ across ranks (spread %.3g): gradients were not synchronised",
                            state["rank_weight_spread"])
            val_loss = _validate(stage, model, loader(val_ds, val_sampler), cfg, ctx)
            improved = val_loss < state["best_val_loss"]
            if improved:
                state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = val_loss, epoch + 1, 0
            else:
                state["bad_epochs"] += 1
            seconds = time.perf_counter() - epoch_t0
            state["train_seconds"] += seconds
            state["history"].append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                                     "lr": opt.param_groups[0]["lr"], "seconds": seconds})
            state["epoch"], state["batches_done"] = epoch + 1, 0
            if ctx.is_main:
                if improved:
                    checkpoints.save_model_dir(model, ckpt_dir / "best_model")
                if t.save_every and (epoch + 1) % t.save_every == 0:
                    checkpoints.save_model_dir(model, ckpt_dir / f"epoch_{epoch + 1}")
                _save_last(ckpt_dir, model, opt, sched, scaler, state, epoch + 1)
                jsonl.log({"type": "epoch", "stage": stage.name, **state["history"][-1],
                           "best_val_loss": state["best_val_loss"]})
                if comet:
                    comet.log_metrics({f"val_{stage.name}_loss_epoch": val_loss,
                                       f"train_{stage.name}_loss_epoch": train_loss}, step=state["step"],
                                      epoch=epoch + 1)
            barrier(ctx)
            obs.on_epoch(EpochEvent(epoch + 1, train_loss, val_loss, state["best_val_loss"], improved,
                                    opt.param_groups[0]["lr"], seconds))
            if t.patience is not None and state["bad_epochs"] >= t.patience:
                log.info("early stopping: no validation improvement for %d epoch(s)", t.patience)
                stopped_early = True
                break
    finally:
        if jsonl:
            jsonl.close()
        if comet:
            comet.close()

    wall = time.perf_counter() - t0
    summary = {"stage": stage.name, "run_dir": str(out), "best_model": str(ckpt_dir / "best_model"),
               "best_val_loss": state["best_val_loss"], "best_epoch": state["best_epoch"],
               "epochs_completed": state["epoch"], "steps": state["step"], "stopped_early": stopped_early,
               "wall_time_s": round(wall, 2), "world_size": ctx.world_size,
               "rank_weight_spread": state["rank_weight_spread"],
               "samples_per_s": round(samples_seen / max(state["train_seconds"], 1e-9), 2) if samples_seen else None,
               "device": str(ctx.device), "kronos_cli": __version__}
    if ctx.is_main:
        write_json(out / "summary.json", summary)
        if state["history"]:
            from kronos_cli.plots import plot_loss_curve

            plot_loss_curve(state["history"], out / "loss_curve.png", title=f"{cfg.run_name}: {stage.name}")
    obs.on_end(summary)
    return summary


def _save_last(ckpt_dir: Path, model, opt, sched, scaler, state: dict, epoch: int) -> None:
    trainer_state = {**state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "scaler": scaler.state_dict(), "rng": checkpoints.rng_state(), "saved_epoch": epoch}
    checkpoints.save_last(ckpt_dir / "last", model, trainer_state)


def _weight_spread(model: nn.Module, ctx: Context) -> float:
    """Largest difference of a weight checksum between ranks: 0 when gradients really are all-reduced."""
    if not ctx.distributed:
        return 0.0
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        probe = torch.stack([flat.sum(), (flat * flat).sum(), (flat * torch.arange(flat.numel(), dtype=flat.dtype,
                                                                                     device=flat.device)).sum()])
    hi, lo = probe.clone(), -probe.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MAX)
    return float((hi + lo).abs().max())


def _maybe_inject_fault(step: int, ctx: Context) -> None:
    """Testing aid for elastic restarts: KRONOS_FAIL_ONCE_AT_STEP=N kills the last rank once at step N."""
    import os

    at = os.environ.get("KRONOS_FAIL_ONCE_AT_STEP")
    if (at and int(at) == step and ctx.rank == ctx.world_size - 1
            and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):
        log.warning("KRONOS_FAIL_ONCE_AT_STEP=%s: this worker exits now", at)
        os._exit(17)


def _mean_across(total: float, n: int, ctx: Context) -> float:
    v = all_reduce_sum(torch.tensor([total, float(n)], dtype=torch.float64, device=ctx.device), ctx)
    return float(v[0] / max(v[1], 1))


@torch.no_grad()
def _validate(stage, model: nn.Module, loader: DataLoader, cfg: Config, ctx: Context) -> float:
    """Sample-weighted mean validation loss over every rank's windows."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for batch in loader:
        x, stamp = to_tensors(batch, ctx.device)
        with _autocast(cfg, ctx.device):
            loss = stage.val_loss(model, x, stamp)
        total += torch.tensor([loss.item() * x.shape[0], x.shape[0]], dtype=torch.float64, device=ctx.device)
    total = all_reduce_sum(total, ctx)
    model.train()
    return float(total[0] / max(total[1], 1))


def _attach_file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("kronos_cli")
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
