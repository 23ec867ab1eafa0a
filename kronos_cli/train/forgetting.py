"""Forgetting control: an L2 pull toward the starting weights (`training.l2_to_init`), and whether fine-tuning
beat its own starting point (the starting model is validated before the first epoch)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class AnchorPenalty:
    """weight x the squared distance of the trainable weights from where the run started. The anchor is taken
    when the stage is built, before any resume, so a resumed run keeps pulling toward the same start."""

    def __init__(self, params: list[torch.nn.Parameter], weight: float):
        self.weight = weight
        self.anchor = [p.detach().clone() for p in params] if weight > 0 else []

    def __call__(self, params: list[torch.nn.Parameter]) -> Tensor | None:
        if not self.anchor:
            return None
        return self.weight * sum(((p.float() - a.float()) ** 2).sum() for p, a in zip(params, self.anchor))


def improvement(start: float, best: float) -> float | None:
    """The best validation loss's improvement over the starting model's, as a share of the start (positive:
    fine-tuning helped); None when the start was not measured (a run resumed from before this was recorded)."""
    if not (math.isfinite(start) and math.isfinite(best)) or start == 0:
        return None
    return (start - best) / abs(start)


def verdict(start: float, best: float) -> str:
    gain = improvement(start, best)
    if gain is None:
        return "the starting model's validation loss was not measured"
    beat = "beat" if gain > 0 else "did not beat"
    return f"validation loss {start:.4f} at the start, best {best:.4f} ({gain:+.1%}): fine-tuning {beat} its start"
