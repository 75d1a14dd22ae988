"""The data order here can be resumed exactly, on one process or many.
Each epoch's order is a permutation drawn from ``(seed, epoch)`` alone, of which process ``rank``
takes every ``world_size``-th index (like ``DistributedSampler``); resuming inside an epoch skips
the batches already used. Augmentation draws are seeded per sample from ``(seed, epoch, index)``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` pairs for this process, from position ``start`` of the epoch
    (see the module docstring); the epoch's order repeats some indices so that every process
    gets as many, which keeps them in step."""

    def __init__(self, length: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.seed = length, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and how many of this process's samples to skip (already used)."""
        self.epoch, self.start = int(epoch), int(start)

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=g).tolist()
        if self.length % self.world_size:
            extra = self.world_size - self.length % self.world_size
            order += (order * (extra // len(order) + 1))[:extra]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self._indices()[self.start :]:
            yield self.epoch, i

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)

    def per_epoch(self) -> int:
        """Samples this process sees in a whole epoch."""
        return len(self._indices())


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    # A well-mixed 63-bit seed from the three numbers.
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1, 1 << 31])) & ((1 << 63) - 1)


class SeededSamples(Dataset):
    """Wraps a dataset indexed by ``(epoch, index)``: every random draw made while loading the
    sample is seeded from ``(seed, epoch, index)``, and the caller's RNG states are restored
    afterwards (dropout's stream is untouched)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        s = _sample_seed(self.seed, epoch, index)
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only (loading draws nowhere else): torch.manual_seed would
                # also reseed every GPU and record the caller's stack, which costs more than the
                # rest of the seeding together.
                torch.default_generator.manual_seed(s)
                np.random.seed(s % (1 << 32))
                random.seed(s)
                return self.dataset[index]
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
