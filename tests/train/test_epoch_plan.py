"""Every epoch runs exactly the scheduled optimiser steps, for any world size and accumulation, even when the
samples per rank leave a short last batch."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from kronos_cli.data.dataset import EpochSampler
from kronos_cli.train.steps import ends_step, epoch_plan


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("accumulation", [1, 2, 3])
def test_steps_per_epoch_match_the_schedule(world, accumulation):
    batch, samples = 7, 200  # 200 / world / 7 never divides: a short last batch on every rank
    counts = []
    for rank in range(world):
        sampler = EpochSampler(500, samples, seed=1, rank=rank, world_size=world)
        assert (len(sampler) % batch) != 0
        batches, steps = epoch_plan(len(sampler), batch, accumulation)
        loader = DataLoader(np.arange(500), batch_size=batch, sampler=sampler, drop_last=True)
        seen = sum(1 for _ in loader)
        boundaries = sum(ends_step(b, batches, accumulation) for b in range(seen))
        assert seen == batches and boundaries == steps
        counts.append((seen, boundaries))
    assert len(set(counts)) == 1  # every rank runs the same batches and steps: no rank waits on another
