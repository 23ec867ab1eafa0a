"""An epoch's shape: its full batches and optimiser steps for any world size and accumulation, which batch ends
a step, and seeds fixed by a position in training."""

from __future__ import annotations

import math

from kronos_cli.core.errors import KronosError


def epoch_plan(samples_per_rank: int, batch_size: int, accumulation: int) -> tuple[int, int]:
    """(batches, optimiser steps) of an epoch on each rank: full batches only (a short last batch is dropped,
    so every rank runs the same number), and a step after every `accumulation` batches and after the last."""
    batches = samples_per_rank // batch_size
    if batches == 0:
        raise KronosError("an epoch has no full batch; raise training.n_train_iter or lower training.batch_size")
    return batches, math.ceil(batches / accumulation)


def ends_step(b: int, batches: int, accumulation: int) -> bool:
    """Whether batch b (from 0) ends an accumulation group, or the epoch (a last, shorter group)."""
    return (b + 1) % accumulation == 0 or b + 1 == batches


def seed_for(*parts: int) -> int:
    """A seed fixed by a position in training (seed, rank, epoch, batch)."""
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (2**63 - 1)
    return h
