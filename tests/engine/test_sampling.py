"""Per-sample seeding of the training data (SeededSamples): draws made while loading a sample
are a function of (seed, epoch, index), and the model's random streams are left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnseg.engine.sampling import SeededSamples


class _Draws:
    """A dataset whose samples are random draws from torch's and numpy's global RNGs."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[float, float]:
        return float(torch.rand(())), float(np.random.rand())


def test_a_sample_draws_the_same_numbers_whatever_came_before() -> None:
    samples = SeededSamples(_Draws(), seed=3)
    first = samples[(1, 2)]
    torch.rand(5), np.random.rand(5)  # the model and other samples draw in between
    samples[(0, 2)]
    assert samples[(1, 2)] == first
    assert samples[(2, 2)] != first  # another epoch, other draws


def test_loading_a_sample_leaves_the_callers_cpu_stream_where_it_was() -> None:
    samples = SeededSamples(_Draws(), seed=3)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    samples[(0, 1)]
    assert torch.equal(torch.rand(3), expected)


def test_loading_a_sample_does_not_reseed_the_gpu_generators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loading runs in the training process when there are no workers: seeding the GPU there
    # would replace the model's stream (dropout) with the last sample's seed, and it costs more
    # than the rest of the seeding together (every call records its caller's stack).
    seeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    SeededSamples(_Draws(), seed=3)[(0, 1)]
    assert seeded == []
