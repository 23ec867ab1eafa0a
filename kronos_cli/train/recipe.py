"""The fine-tuning recipe shared by both stages and by 1..N processes; the stage supplies the step function.

Read top to bottom: `train` sets up the data, the model and the optimiser, resumes, then runs `train_epoch` and
`end_epoch` until the schedule or early stopping ends it, and writes the summary.

Reproducibility: the sampler's order is fixed by (seed, epoch) and every batch reseeds the RNG from
(seed, rank, epoch, batch), so dropout and sampling depend only on the position in training. A run resumed
from `checkpoints/last` therefore ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from kronos_cli import __version__
from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import write_json
from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate, to_tensors
from kronos_cli.records.runs import best_or_configured, data_conventions, run_dir
from kronos_cli.report.plots import plot_loss_curve
from kronos_cli.runtime.distributed import Context, barrier, mean_across, weight_spread
from kronos_cli.train import checkpoints
from kronos_cli.train.augment import augment
from kronos_cli.train.forgetting import AnchorPenalty, improvement
from kronos_cli.train.loggers import MetricSink, attach_file_log
from kronos_cli.train.methods import is_lora, releasable, save_adapter, trainable
from kronos_cli.train.optim import autocast, setup_optimizer
from kronos_cli.train.resume import restore, resume_path
from kronos_cli.train.stages import PredictorStage, TokenizerStage
from kronos_cli.train.state import EpochEvent, Observer, StepEvent, TrainOptions, TrainState, TrainSummary
from kronos_cli.train.steps import ends_step, epoch_plan, seed_for
from kronos_cli.train.validation import ValidationSkill, better, epoch_scores, skill_for, validate

log = logging.getLogger(__name__)


@dataclass
class Data:
    train: WindowDataset
    val: WindowDataset
    train_sampler: EpochSampler
    val_sampler: EpochSampler
    batch_size: int
    workers: int
    pin_memory: bool

    def loader(self, split: str) -> DataLoader:
        ds, sampler = (self.train, self.train_sampler) if split == "train" else (self.val, self.val_sampler)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            collate_fn=collate,
            persistent_workers=False,
            pin_memory=self.pin_memory,
            drop_last=split == "train",  # every training batch full: the epoch's steps are exactly the scheduled ones
        )


@dataclass(kw_only=True)
class Run:
    """Everything a run works with once set up (built by keyword: twenty fields are too many to count)."""

    cfg: Config
    opts: TrainOptions
    ctx: Context
    stage: TokenizerStage | PredictorStage
    net: nn.Module  # the model, wrapped in DDP when distributed
    params: list[nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    data: Data
    batches_per_epoch: int
    epochs: int
    total_steps: int
    out: Path
    anchor: AnchorPenalty  # the pull toward the starting weights (training.l2_to_init; inactive at 0)
    skill: ValidationSkill | None  # validation days scored for training.select_by (None: by validation loss)

    @property
    def model(self) -> nn.Module:
        return self.stage.model

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"


def train(cfg: Config, opts: TrainOptions, ctx: Context, observer: Observer | None = None) -> TrainSummary:
    """Train one stage; returns the run summary (also written to summary.json). Rank 0 logs to logs/train.log."""
    handler = attach_file_log(run_dir(cfg, opts.stage) / "logs" / "train.log") if ctx.is_main else None
    try:
        return _train(cfg, opts, ctx, observer or Observer())
    finally:
        if handler is not None:
            logging.getLogger("kronos_cli").removeHandler(handler)
            handler.close()


def _train(cfg: Config, opts: TrainOptions, ctx: Context, obs: Observer) -> TrainSummary:
    t0 = time.perf_counter()
    run = setup(cfg, opts, ctx)
    state = TrainState()
    resumed_from = resume(run, state)
    sink = MetricSink(cfg, run.out, run.stage.name, active=ctx.is_main)
    if ctx.is_main:
        write_json(run.out / "config.json", cfg.to_dict())
    obs.on_start(
        {
            "stage": run.stage.name,
            "run_dir": str(run.out),
            "epochs": run.epochs,
            "total_steps": run.total_steps,
            "world_size": ctx.world_size,
            "device": str(ctx.device),
            "train_windows": len(run.data.train),
            "val_windows": len(run.data.val),
            "params": trainable(run.model)[0],
            "total_params": trainable(run.model)[1],
            "method": cfg.training.method,
            "resumed_from": resumed_from,
        }
    )
    samples_seen, stopped_early = 0, False
    if resumed_from is None:
        state.val_loss_start = validate(run)  # the unchanged starting model: did fine-tuning beat it?
    try:
        for epoch in range(state.epoch, run.epochs):
            if state.step >= run.total_steps:
                break
            epoch_t0 = time.perf_counter()
            train_loss, samples = train_epoch(run, state, epoch, sink, obs)
            samples_seen += samples
            stopped_early = end_epoch(run, state, epoch, train_loss, epoch_t0, sink, obs)
            if stopped_early:
                break
    finally:
        sink.close()
    summary = _summary(run, state, stopped_early, time.perf_counter() - t0, samples_seen)
    if ctx.is_main:
        write_json(run.out / "summary.json", summary.to_json())
        if state.history:
            plot_loss_curve(
                state.history,
                run.out / "loss_curve.png",
                title=f"{cfg.run_name}: {run.stage.name}",
                train_label=f"train: {run.stage.train_loss_name}",
                val_label=f"validation: {run.stage.val_loss_name}",
                ylabel="loss",
            )
    obs.on_end(summary)
    return summary


# ------------------------------------------------------------------------------------------------ set-up


def setup(cfg: Config, opts: TrainOptions, ctx: Context) -> Run:
    torch.manual_seed(cfg.seed)  # scratch initialisation is reproducible, and the same on every rank
    stage = setup_model(cfg, opts, ctx)
    data = setup_data(cfg, ctx)
    net = stage.model
    if ctx.distributed:
        net = DistributedDataParallel(stage.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    params = [p for p in stage.model.parameters() if p.requires_grad]
    t = cfg.training
    batches_per_epoch, steps_per_epoch = epoch_plan(len(data.train_sampler), t.batch_size, t.accumulation_steps)
    epochs = (t.tokenizer_epochs or t.epochs) if stage.name == "tokenizer" else t.epochs
    total_steps = epochs * steps_per_epoch
    if opts.max_steps is not None:
        total_steps = min(total_steps, opts.max_steps)
    opt, sched, scaler = setup_optimizer(cfg, stage, params, total_steps, ctx.device)
    return Run(
        cfg=cfg,
        opts=opts,
        ctx=ctx,
        stage=stage,
        net=net,
        params=params,
        opt=opt,
        sched=sched,
        scaler=scaler,
        data=data,
        batches_per_epoch=batches_per_epoch,
        epochs=epochs,
        total_steps=total_steps,
        out=run_dir(cfg, stage.name),
        anchor=AnchorPenalty(params, t.l2_to_init),
        skill=skill_for(cfg, stage.name),
    )


def setup_model(cfg: Config, opts: TrainOptions, ctx: Context) -> TokenizerStage | PredictorStage:
    if opts.stage == "tokenizer":
        stage = TokenizerStage.build(cfg, opts.init)
    else:
        stage = PredictorStage.build(cfg, opts.init, opts.tokenizer or best_or_configured(cfg, "tokenizer"))
    for m in stage.modules():
        m.to(ctx.device)
    return stage


def setup_data(cfg: Config, ctx: Context) -> Data:
    d, t = cfg.data, cfg.training
    train_ds = WindowDataset(d.dataset_path, "train", d.lookback_window, d.predict_window)
    val_ds = WindowDataset(d.dataset_path, "val", d.lookback_window, d.predict_window)
    for name, ds in (("train", train_ds), ("val", val_ds)):
        if t.batch_size * ctx.world_size > len(ds):
            raise KronosError(
                f"training.batch_size {t.batch_size} x {ctx.world_size} process(es) exceeds the "
                f"{len(ds)} windows of the {name} split; lower the batch size"
            )
    train_sampler = EpochSampler(len(train_ds), t.n_train_iter * t.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    val_sampler = EpochSampler(
        len(val_ds), min(t.n_val_iter * t.batch_size, len(val_ds)), cfg.seed + 1, ctx.rank, ctx.world_size
    )
    val_sampler.set_epoch(0)  # the same validation windows every epoch
    workers = t.num_workers if t.num_workers >= 0 else (2 if ctx.device.type == "cuda" else 0)
    return Data(train_ds, val_ds, train_sampler, val_sampler, t.batch_size, workers, ctx.device.type == "cuda")


def resume(run: Run, state: TrainState) -> str | None:
    """Continue from checkpoints/last when asked (or after an elastic restart); returns where from."""
    state.run_id = run.opts.run_id
    path = resume_path(run.opts, run.out)
    if path is None:
        if run.ctx.is_main and run.ckpt_dir.exists() and run.opts.resume is None:
            log.warning("%s holds an earlier run's checkpoints; they are replaced as this run saves", run.out)
        return None
    restore(path, run.model, run.opt, run.sched, run.scaler, state, run.cfg.to_dict(), run.out, run.opts.run_id)
    return str(path)


# ------------------------------------------------------------------------------------------------ epochs


def train_epoch(run: Run, state: TrainState, epoch: int, sink: MetricSink, obs: Observer) -> tuple[float, int]:
    """One epoch's optimiser steps from `state.batches_done`; returns (mean train loss across ranks, samples)."""
    cfg, ctx, t = run.cfg, run.ctx, run.cfg.training
    run.model.train()
    skip = state.batches_done
    run.data.train_sampler.set_epoch(epoch, skip=skip * t.batch_size)
    loss_sum, loss_n, samples = 0.0, 0, 0
    window_t0, window_samples = time.perf_counter(), 0
    for b, batch in enumerate(run.data.loader("train"), start=skip):
        loss, parts, n = _forward_backward(run, batch, epoch, b)
        loss_sum, loss_n = loss_sum + loss, loss_n + 1
        window_samples, samples = window_samples + n * ctx.world_size, samples + n * ctx.world_size
        if not _is_boundary(run, b):
            continue
        lr = _optimiser_step(run, state, b)
        rate = window_samples / max(time.perf_counter() - window_t0, 1e-9)
        obs.on_step(StepEvent(epoch + 1, run.epochs, state.step, run.total_steps, loss, lr, rate))
        if state.step % cfg.logging.log_interval == 0 or state.step == run.total_steps:
            sink.step(
                {"epoch": epoch + 1, "step": state.step, "loss": loss, "lr": lr, "samples_per_s": rate, **parts},
                state.step,
                epoch + 1,
            )
            window_t0, window_samples = time.perf_counter(), 0
        if run.opts.checkpoint_every and state.step % run.opts.checkpoint_every == 0 and ctx.is_main:
            _save_last(run, state, epoch)
        if state.step >= run.total_steps:
            break
    return mean_across(loss_sum, loss_n, ctx), samples


def _is_boundary(run: Run, b: int) -> bool:
    return ends_step(b, run.batches_per_epoch, run.cfg.training.accumulation_steps)


def _forward_backward(run: Run, batch, epoch: int, b: int) -> tuple[float, dict[str, float], int]:
    cfg, ctx, t = run.cfg, run.ctx, run.cfg.training
    torch.manual_seed(seed_for(cfg.seed, ctx.rank, epoch, b))
    x, stamp = to_tensors(batch, ctx.device)
    if t.augment:
        x = augment(x, t.augment, torch.Generator().manual_seed(seed_for(cfg.seed + 7, ctx.rank, epoch, b)))
    sync = run.net.no_sync() if (ctx.distributed and not _is_boundary(run, b)) else nullcontext()
    with sync:
        with autocast(cfg, ctx.device):
            loss, parts = run.stage.train_loss(run.net, x, stamp)
        pull = run.anchor(run.params)
        if pull is not None:
            parts = {**parts, "l2_to_init": pull.item()}
        run.scaler.scale((loss if pull is None else loss + pull) / t.accumulation_steps).backward()
    return loss.item(), parts, x.shape[0]


def _optimiser_step(run: Run, state: TrainState, b: int) -> float:
    run.scaler.unscale_(run.opt)
    torch.nn.utils.clip_grad_norm_(run.params, run.stage.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.opt.zero_grad(set_to_none=True)
    run.sched.step()
    state.step += 1
    state.batches_done = b + 1
    return run.opt.param_groups[0]["lr"]


def end_epoch(
    run: Run, state: TrainState, epoch: int, train_loss: float, epoch_t0: float, sink: MetricSink, obs: Observer
) -> bool:
    """Validate, keep the best model, checkpoint, log; returns whether early stopping ends the run."""
    ctx, t = run.ctx, run.cfg.training
    state.rank_weight_spread = weight_spread(run.model, ctx)
    if state.rank_weight_spread > 0:
        log.warning(
            "weights differ across ranks (spread %.3g): gradients were not synchronised", state.rank_weight_spread
        )
    val_loss = validate(run)
    scores = epoch_scores(run)
    value = scores.get(t.select_by, val_loss)  # the skill that picks best_model (val_loss without one)
    improved = better(t.select_by if scores else "val_loss", value, state.best_score)
    if improved:
        state.best_score, state.best_val_loss, state.best_epoch, state.bad_epochs = value, val_loss, epoch + 1, 0
    else:
        state.bad_epochs += 1
    seconds = time.perf_counter() - epoch_t0
    state.train_seconds += seconds
    lr = run.opt.param_groups[0]["lr"]
    row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "seconds": seconds}
    state.history.append({**row, **scores})
    state.epoch, state.batches_done = epoch + 1, 0
    if ctx.is_main:
        if improved:
            checkpoints.save_model_dir(releasable(run.model), run.ckpt_dir / "best_model", data_conventions(run.cfg))
            if is_lora(run.model):
                save_adapter(run.model, run.ckpt_dir / "best_adapter", run.cfg.training)
        if t.save_every and (epoch + 1) % t.save_every == 0:
            checkpoints.save_model_dir(
                releasable(run.model), run.ckpt_dir / f"epoch_{epoch + 1}", data_conventions(run.cfg)
            )
        _save_last(run, state, epoch + 1)
        sink.epoch({**state.history[-1], "best_val_loss": state.best_val_loss}, state.step)
    barrier(ctx)
    obs.on_epoch(EpochEvent(epoch + 1, train_loss, val_loss, state.best_val_loss, improved, lr, seconds))
    if t.patience is not None and state.bad_epochs >= t.patience:
        log.info("early stopping: no validation improvement for %d epoch(s)", t.patience)
        return True
    return False


# ------------------------------------------------------------------------------------------------ helpers


def _save_last(run: Run, state: TrainState, epoch: int) -> None:
    trainer_state = {
        **state.to_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": checkpoints.rng_state(),
        "saved_epoch": epoch,
    }
    checkpoints.save_last(run.ckpt_dir / "last", run.model, trainer_state, data_conventions(run.cfg))


def _summary(run: Run, state: TrainState, stopped_early: bool, wall: float, samples: int) -> TrainSummary:
    learned, total = trainable(run.model)
    return TrainSummary(
        stage=run.stage.name,
        run_dir=str(run.out),
        best_model=str(run.ckpt_dir / "best_model"),
        best_val_loss=state.best_val_loss,
        best_epoch=state.best_epoch,
        epochs_completed=state.epoch,
        steps=state.step,
        stopped_early=stopped_early,
        wall_time_s=round(wall, 2),
        world_size=run.ctx.world_size,
        rank_weight_spread=state.rank_weight_spread,
        samples_per_s=round(samples / max(state.train_seconds, 1e-9), 2) if samples else None,
        device=str(run.ctx.device),
        kronos_cli=__version__,
        val_loss_start=state.val_loss_start if math.isfinite(state.val_loss_start) else None,
        improvement=improvement(state.val_loss_start, state.best_val_loss),
        selected_by=run.cfg.training.select_by if run.skill else "val_loss",
        best_score=state.best_score if math.isfinite(state.best_score) else None,
        method=run.cfg.training.method,
        trainable_params=learned,
        total_params=total,
        trainable_share=round(learned / total, 6) if total else None,
    )
