"""The forms ``loss.class_weights`` takes from Python (build_class_weights)."""

from __future__ import annotations

import numpy as np
import torch

from fcnseg.data import SyntheticSegmentation
from fcnseg.engine.loss import build_class_weights


def test_weights_computed_with_numpy_are_taken_as_given() -> None:
    data = SyntheticSegmentation(2, size=32)
    weights = np.linspace(0.5, 2.0, data.num_classes)  # as data.class_frequencies gives them
    got, counts = build_class_weights(weights, data)
    assert counts is None
    assert torch.equal(got, torch.tensor(weights, dtype=torch.float32))
