"""Training access to a prepared dataset: an O(1) index -> window Dataset and a per-epoch sharded sampler."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from kronos_cli.core.errors import KronosError
from kronos_cli.data.store import DatasetArrays
from kronos_cli.market.bars import lookback_stats, normalise


class WindowDataset(Dataset):
    """Window i of a split: (x (W, 6) float32 normalised on its lookback rows and clipped, stamps (W, 5) int8).

    No pandas, no randomness: the same index always gives the same window.
    """

    def __init__(
        self,
        path: str | os.PathLike | DatasetArrays,
        split: str,
        lookback: int | None = None,
        predict: int | None = None,
    ):
        self.arrays = path if isinstance(path, DatasetArrays) else DatasetArrays(path)
        m = self.arrays.manifest
        for name, want in (("lookback_window", lookback), ("predict_window", predict)):
            if want is not None and m[name] != want:
                raise KronosError(
                    f"the dataset at {self.arrays.path} was built with {name}={m[name]}, but the "
                    f"config asks for {want}; run `kronos prep` again with this config"
                )
        if split not in self.arrays.windows:
            raise KronosError(f"unknown split {split!r}")
        self.split = split
        self.lookback, self.window, self.clip = m["lookback_window"], m["window"], float(m["clip"])
        self.index = self.arrays.windows[split]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        x, stamp = self.__getitems__([i])
        return x[0], stamp[0]

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """A whole batch in a few vectorised reads: x (B, W, 6) and stamps (B, W, 5).

        The DataLoader calls this with a batch's indices; `collate` accepts its result as it is.
        """
        starts = self.index[np.asarray(indices, dtype=np.int64), 0]
        rows = starts[:, None] + np.arange(self.window)  # (B, W)
        x = np.asarray(self.arrays.features[rows], dtype=np.float32)
        mean, std = lookback_stats(x[:, : self.lookback])
        x = normalise(x, mean, std, self.clip)
        return x, np.asarray(self.arrays.stamps[rows])  # int8: small to ship from DataLoader workers


class EpochSampler(Sampler[int]):
    """A permutation of the windows fixed by (seed, epoch), cut into one disjoint shard per rank.

    Indices come from the sampler in the main process, so DataLoader workers never repeat each other, and
    ranks take disjoint shards, so each window is seen at most once per epoch whenever `samples` does not exceed
    the number of windows. `skip` resumes mid-epoch.
    """

    def __init__(self, n: int, samples: int | None = None, seed: int = 0, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise KronosError("the split has no windows")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.total = (samples or n) // world_size * world_size
        if self.total == 0:
            raise KronosError(f"{samples or n} samples cannot be shared among {world_size} processes")
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        reps = -(-self.total // self.n)
        perm = np.concatenate([rng.permutation(self.n) for _ in range(reps)])[: self.total]
        return perm[self.rank :: self.world_size]

    def __len__(self) -> int:
        return self.total // self.world_size - self.skip

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :].tolist())


def collate(batch) -> tuple[np.ndarray, np.ndarray]:
    """A batch as numpy arrays: from `__getitems__` (already stacked) or from a list of single windows.

    Workers hand numpy arrays back through the pipe, which costs far less than a shared-memory tensor per
    batch (measured in benchmarks/bench_data.py); `to_tensors` wraps them without a copy in the main process.
    """
    if isinstance(batch, tuple):
        return batch
    return np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])


def to_tensors(
    batch: tuple[np.ndarray, np.ndarray], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    x, stamp = batch
    return (
        torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True),
        torch.from_numpy(np.ascontiguousarray(stamp)).long().to(device, non_blocking=True),
    )
