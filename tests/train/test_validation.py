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


def test_augmentations_keep_shape_and_are_deterministic():
    from kronos_cli.train.augment import augment

    x = torch.randn(4, 30, 6)
    for kinds in (["noise"], ["scale"], ["time_warp"], ["slice"], ["noise", "scale", "time_warp", "slice"]):
        a = augment(x, kinds, torch.Generator().manual_seed(3))
        b = augment(x, kinds, torch.Generator().manual_seed(3))
        assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert augment(x, [], torch.Generator()) is x
