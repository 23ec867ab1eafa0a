"""The training Dataset and sampler: deterministic per (seed, epoch), each sample once across workers and ranks."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate
from kronos_cli.errors import KronosError


def test_loader_with_two_workers_yields_each_window_once(prepared):
    cfg, m = prepared
    ds = WindowDataset(cfg.data.dataset_path, "train")
    sampler = EpochSampler(len(ds), samples=600, seed=1)
    sampler.set_epoch(3)
    order = list(sampler)
    assert len(order) == len(set(order)) == 600
    loader = DataLoader(ds, batch_size=50, sampler=sampler, num_workers=2, collate_fn=collate)
    xs = np.concatenate([x for x, _ in loader])
    expected = np.stack([ds[i][0] for i in order])
    np.testing.assert_array_equal(xs, expected)  # workers deliver exactly the sampler's windows, in order


def test_ranks_take_disjoint_shards(prepared):
    cfg, _ = prepared
    n = len(WindowDataset(cfg.data.dataset_path, "train"))
    shards = []
    for rank in range(2):
        s = EpochSampler(n, samples=1000, seed=7, rank=rank, world_size=2)
        s.set_epoch(1)
        shards.append(list(s))
    assert len(shards[0]) == len(shards[1]) == 500
    assert not set(shards[0]) & set(shards[1])


def test_order_is_fixed_by_seed_and_epoch(prepared):
    s = EpochSampler(5000, samples=100, seed=3)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(0)
    assert list(s) == a
    s.set_epoch(1)
    assert list(s) != a
    s.set_epoch(0, skip=40)
    assert list(s) == a[40:]


def test_dataset_built_with_other_windows_is_refused(prepared):
    cfg, _ = prepared
    with pytest.raises(KronosError, match="lookback_window=30"):
        WindowDataset(cfg.data.dataset_path, "train", lookback=90)


def test_missing_dataset(tmp_path):
    with pytest.raises(KronosError, match="kronos prep"):
        WindowDataset(tmp_path, "train")
