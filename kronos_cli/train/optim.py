"""The optimiser, the learning-rate schedule and mixed precision of a training run."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError


def setup_optimizer(cfg: Config, stage, params: list[nn.Parameter], total_steps: int, device: torch.device):
    t = cfg.training
    opt = torch.optim.AdamW(params, lr=stage.lr, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.adam_weight_decay)
    sched = scheduler(cfg, opt, stage.lr, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=t.precision == "fp16")
    return opt, sched, scaler


def scheduler(cfg: Config, opt: torch.optim.Optimizer, lr: float, total: int):
    t = cfg.training
    if t.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(total, 1), pct_start=t.warmup_ratio, div_factor=10
        )
    warmup = max(1, int(t.warmup_ratio * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def autocast(cfg: Config, device: torch.device):
    p = cfg.training.precision
    if p == "fp32":
        return nullcontext()
    if p == "fp16" and device.type != "cuda":
        raise KronosError("training.precision=fp16 needs CUDA; use bf16 or fp32 on this device")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)
