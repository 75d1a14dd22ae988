"""Fixtures of the inference tests: tiny FCN-8s checkpoints with non-trivial score layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fcnseg.inference import Segmenter

CLASS_NAMES = ["background", "cat", "dog", "potted plant"]


@pytest.fixture(scope="session")
def make_checkpoint(tiny_checkpoint: Callable[..., Path]) -> Callable[[str], Path]:
    """``make_checkpoint(geometry)``: a tiny FCN-8s checkpoint (cached per geometry) whose score
    layers are random, so that labels vary over the image (zeros would predict class 0)."""
    return lambda geometry="same": tiny_checkpoint(CLASS_NAMES, geometry)


@pytest.fixture(scope="session")
def class_names() -> list[str]:
    """The class names of the fixture checkpoints."""
    return list(CLASS_NAMES)


@pytest.fixture(scope="session")
def segmenter(make_checkpoint: Callable[[str], Path]) -> Segmenter:
    # float32, so that tests may compare its labels with a plain float32 forward pass
    return Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")


@pytest.fixture(scope="session")
def smooth_image() -> np.ndarray:
    """A 48×64 RGB image of smooth colour blobs (smooth so the tiny model's labels form
    regions rather than noise)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float64)
    big = np.kron(small, np.ones((8, 8, 1)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
