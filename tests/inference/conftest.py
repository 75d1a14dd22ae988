"""Fixtures of the inference tests: tiny FCN-8s checkpoints with non-trivial score layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.models import fcn8s

CLASS_NAMES = ["background", "cat", "dog", "potted plant"]


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``make_checkpoint(geometry)``: a tiny FCN-8s checkpoint (cached per geometry) whose score
    layers are random, so that labels vary over the image (zeros would predict class 0)."""
    made: dict[str, Path] = {}

    def make(geometry: str = "same") -> Path:
        if geometry not in made:
            torch.manual_seed(0)
            model = fcn8s(num_classes=len(CLASS_NAMES), geometry=geometry, width=0.0625,
                          fc_channels=16)
            with torch.no_grad():
                for name in ("score_fr", "score_pool4", "score_pool3"):
                    getattr(model, name).weight.normal_(0.0, 0.05)
                    getattr(model, name).bias.normal_(0.0, 0.5)
            path = tmp_path_factory.mktemp(f"ckpt_{geometry}") / "tiny.pt"
            save_checkpoint(path, model, class_names=CLASS_NAMES, palette=voc_palette())
            made[geometry] = path
        return made[geometry]

    return make


@pytest.fixture(scope="session")
def class_names() -> list[str]:
    """The class names of the fixture checkpoints."""
    return list(CLASS_NAMES)


@pytest.fixture(scope="session")
def segmenter(make_checkpoint: Callable[[str], Path]) -> Segmenter:
    return Segmenter.from_checkpoint(make_checkpoint("same"))


@pytest.fixture(scope="session")
def smooth_image() -> np.ndarray:
    """A 48×64 RGB image of smooth colour blobs (smooth so the tiny model's labels form
    regions rather than noise)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(6, 8, 3)).astype(np.float64)
    big = np.kron(small, np.ones((8, 8, 1)))
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
