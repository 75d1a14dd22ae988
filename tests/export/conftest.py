"""Fixtures of the export tests: tiny FCN-8s checkpoints in both geometries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.models import fcn8s

EXPORT_CLASSES = ["background", "road", "car", "person"]


@pytest.fixture(scope="session")
def export_classes() -> list[str]:
    """The class names of the fixture checkpoints."""
    return list(EXPORT_CLASSES)


@pytest.fixture(scope="session")
def export_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``export_checkpoint(geometry)``: a tiny FCN-8s with random score layers (so outputs are
    not all zero) scaled to give logits of a trained model's order (tens, not thousands)."""
    made: dict[str, Path] = {}

    def make(geometry: str) -> Path:
        if geometry not in made:
            torch.manual_seed(0)
            model = fcn8s(num_classes=len(EXPORT_CLASSES), geometry=geometry, width=0.0625,
                          fc_channels=16)
            with torch.no_grad():
                for name in ("score_fr", "score_pool4", "score_pool3"):
                    getattr(model, name).weight.normal_(0.0, 0.05)
                    getattr(model, name).bias.normal_(0.0, 0.5)
            path = tmp_path_factory.mktemp(f"export_{geometry}") / "tiny.pt"
            save_checkpoint(path, model, class_names=EXPORT_CLASSES, palette=voc_palette())
            made[geometry] = path
        return made[geometry]

    return make
