"""Training-time augmentations of normalised windows (off by default), deterministic given a generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(x: Tensor, kinds: list[str], g: torch.Generator) -> Tensor:
    """x (B, W, 6) -> augmented x. noise: Gaussian noise; scale: magnitude scaling; time_warp: resampled time
    axis; slice: a random sub-window stretched back to W bars."""
    if not kinds:
        return x
    b, w, _ = x.shape
    dev = x.device
    if "noise" in kinds:
        x = x + 0.02 * torch.randn(x.shape, generator=g).to(dev)
    if "scale" in kinds:
        x = x * (1 + 0.1 * (2 * torch.rand((b, 1, 1), generator=g) - 1)).to(dev)
    if "time_warp" in kinds:
        x = _warp(x, 0.1 * (2 * torch.rand(1, generator=g).item() - 1))
    if "slice" in kinds:
        keep = int(w * (0.8 + 0.2 * torch.rand(1, generator=g).item()))
        start = int(torch.randint(0, w - keep + 1, (1,), generator=g))
        x = _resample(x[:, start : start + keep], w, 1.0)
    return x


def _warp(x: Tensor, strength: float) -> Tensor:
    """Smooth monotone warp of the time axis (ends fixed): bar i is read at i + a*sin(pi*i/(W-1)).

    |strength| <= 0.1 moves a bar by up to 10% of the window / pi and keeps the warp monotone.
    """
    w = x.shape[1]
    i = torch.arange(w, dtype=torch.float64)
    pos = (i + strength * (w - 1) / math.pi * torch.sin(math.pi * i / (w - 1))).clamp(0, w - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=w - 1)
    frac = (pos - lo).to(x.dtype).to(x.device)[None, :, None]
    return x[:, lo] * (1 - frac) + x[:, hi] * frac


def _resample(x: Tensor, out_len: int, factor: float) -> Tensor:
    """Linear interpolation of (B, T, C) onto out_len points, the time axis stretched by factor."""
    t = x.shape[1]
    src = min(t, max(2, int(round(t / factor))))
    y = F.interpolate(x[:, :src].transpose(1, 2), size=out_len, mode="linear", align_corners=True)
    return y.transpose(1, 2).contiguous()
