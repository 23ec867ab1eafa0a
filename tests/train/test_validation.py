"""Validation is causal: a position's loss never depends on later inputs."""

from __future__ import annotations

import torch

from kronos_cli import config
from kronos_cli.train.stages import PredictorStage


def test_changing_last_input_leaves_earlier_losses_unchanged(tiny_checkpoints):
    tok_dir, model_dir = tiny_checkpoints
    cfg = config.load(None, [f"model.tokenizer={tok_dir}", f"model.predictor={model_dir}"])
    stage = PredictorStage.build(cfg)
    stage.model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 6, generator=g)
    stamp = torch.zeros(3, 20, 5, dtype=torch.long)
    with torch.no_grad():
        a = stage.per_position_val_loss(x, stamp)
        y = x.clone()
        y[:, -2] += 4.0  # the last *input* token (the final row is only a target)
        b = stage.per_position_val_loss(y, stamp)
    assert torch.equal(a[:, :-2], b[:, :-2])
    assert not torch.equal(a[:, -2:], b[:, -2:])
