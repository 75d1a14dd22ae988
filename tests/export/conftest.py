"""Fixtures of the export tests: tiny FCN-8s checkpoints in both geometries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

EXPORT_CLASSES = ["background", "road", "car", "person"]


@pytest.fixture(scope="session")
def export_classes() -> list[str]:
    """The class names of the fixture checkpoints."""
    return list(EXPORT_CLASSES)


@pytest.fixture(scope="session")
def export_checkpoint(tiny_checkpoint: Callable[..., Path]) -> Callable[[str], Path]:
    """``export_checkpoint(geometry)``: a tiny FCN-8s with random score layers (so outputs are
    not all zero) scaled to give logits of a trained model's order (tens, not thousands)."""
    return lambda geometry: tiny_checkpoint(EXPORT_CLASSES, geometry)
