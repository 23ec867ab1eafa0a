"""The training Dataset and sampler: deterministic per (seed, epoch), each sample once across workers and ranks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from torch.utils.data import DataLoader

from kronos_cli.core.errors import KronosError
from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate
from kronos_cli.data.manifest import manifest_digest
from kronos_cli.data.store import DatasetArrays
from kronos_cli.market.stamps import calendar_features
from tests.conftest import edit_array, edit_manifest, rehash_dataset


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


def test_the_manifest_records_each_arrays_dtype_and_shape_and_is_sealed(prepared):
    cfg, _ = prepared
    arrays = DatasetArrays(cfg.data.dataset_path)
    m = arrays.manifest
    assert m["digest"] == manifest_digest(m)
    assert m["arrays"]["features"]["dtype"] == "<f4" and m["arrays"]["features"]["shape"] == [m["rows"], 6]
    assert m["arrays"]["calpos"]["dtype"] == "<i4" and m["arrays"]["windows_train"]["shape"][1] == 2
    assert not {"timestamps", "stamps"} & set(m["arrays"])  # the calendar's, through calpos


def test_a_rows_time_and_stamps_are_those_of_its_calendar_bar(prepared):
    cfg, _ = prepared
    arrays = DatasetArrays(cfg.data.dataset_path)
    rows = np.arange(0, len(arrays.calpos), 7)
    np.testing.assert_array_equal(arrays.timestamps[rows], arrays.calendar[np.asarray(arrays.calpos)[rows]])
    np.testing.assert_array_equal(arrays.stamps[rows], calendar_features(arrays.timestamps[rows]).astype(np.int8))
    assert arrays.stamps.shape == (len(arrays.calpos), 5) and arrays.stamps[rows[:2, None]].shape == (2, 1, 5)


def _calpos_back(arr):
    arr[1] = arr[0]
    return arr


def _origin_without_lookback(arr):
    arr[0, 0] = 0  # the first row of the first symbol: no lookback bars before it
    return arr


@pytest.mark.parametrize(
    "name, edit, needle",
    [
        ("calpos", _calpos_back, "calpos.npy does not rise within each symbol"),
        ("origins_val", _origin_without_lookback, "origins_val.npy has 1 of its"),
        ("features", lambda a: a.astype(np.float64), "features.npy holds float64 rows of shape (6,), not the float32"),
        ("windows_val", lambda a: a[:, :1], "windows_val.npy holds int64 rows of shape (1,), not the int64 rows of"),
    ],
)
def test_arrays_edited_and_rehashed_are_refused_by_what_they_hold(dataset_copy, name, edit, needle):
    edit_array(dataset_copy, name, edit)
    rehash_dataset(dataset_copy)
    with pytest.raises(KronosError, match=re.escape(needle)) as err:
        WindowDataset(dataset_copy, "train")
    assert "run `kronos prep` again" in str(err.value)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m.update(clip=-1), "clip is -1, not a finite number > 0"),
        (lambda m: m.update(lookback_window=20), "window (36) is not lookback_window + predict_window + 1"),
        (lambda m: m["calendar"].update(bars="many"), "calendar.bars is not a whole number"),
        (lambda m: m["arrays"]["features"].pop("dtype"), "arrays is not a table of each array's bytes"),
        (lambda m: m.update(symbols=[]), "symbols is not a list of the symbols kept"),
    ],
)
def test_manifest_fields_that_do_not_add_up_are_refused_even_when_resealed(dataset_copy, edit, needle):
    edit_manifest(dataset_copy, edit, reseal=True)
    with pytest.raises(KronosError, match=re.escape(needle)):
        WindowDataset(dataset_copy, "train")


def test_an_older_dataset_format_asks_for_a_rebuild(dataset_copy):
    edit_manifest(dataset_copy, lambda m: m.update(version=4), reseal=False)
    with pytest.raises(KronosError, match="format version 5; rebuild it with `kronos prep`"):
        WindowDataset(dataset_copy, "train")


def test_the_checks_read_in_chunks_and_see_across_their_seams(dataset_copy, monkeypatch):
    from kronos_cli.data import store

    monkeypatch.setattr(store, "_CHUNK", 7)
    monkeypatch.setattr(store, "_CHECKED", set())
    DatasetArrays(dataset_copy)  # intact: every seam passes
    edit_array(dataset_copy, "calpos", lambda a: np.concatenate([a[:7], a[6:7], a[8:]]))  # row 7 repeats row 6
    rehash_dataset(dataset_copy)
    with pytest.raises(KronosError, match="calpos.npy does not rise within each symbol"):
        DatasetArrays(dataset_copy)
