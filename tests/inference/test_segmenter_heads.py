"""Segmenter with a model of several heads (SIFT Flow) and one of several inputs (NYUDv2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from floats import assert_labels_match
from tiny_models import tiny_task_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.pretrained.reference import NYUD_CLASSES, SIFT_FLOW_CLASSES

GEOMETRIC = ["sky", "horizontal", "vertical"]


@pytest.fixture
def siftflow_checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "sift.pt", tiny_task_model("siftflow_fcn16s"),
                           class_names=list(SIFT_FLOW_CLASSES), palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": GEOMETRIC})


def test_a_two_headed_model_predicts_each_head(siftflow_checkpoint: Path) -> None:
    seg = Segmenter.from_checkpoint(siftflow_checkpoint, precision="fp32")
    rgb = np.random.default_rng(0).integers(0, 256, (41, 37, 3), dtype=np.uint8)
    pred = seg.predict(rgb, return_probs=True)
    assert list(pred.heads) == ["semantic", "geometric"]
    geo = pred.heads["geometric"]
    assert geo.class_names == tuple(GEOMETRIC) and geo.probs.shape == (3, 41, 37)
    with torch.no_grad():
        logits = seg.model(seg.preprocess(rgb))
    for head, p in pred.heads.items():
        assert_labels_match(p.label, logits[head][0].argmax(0).numpy(), logits[head][0])
    assert np.array_equal(pred.label, pred.heads["semantic"].label)  # the first head's
    assert seg.describe()["heads"]["geometric"] == GEOMETRIC


def test_a_fusion_model_says_it_needs_more_than_an_image(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "rgbhha.pt", tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    seg = Segmenter.from_checkpoint(ckpt)
    with pytest.raises(ValueError, match=r"takes the inputs \['color', 'hha'\]"):
        seg.predict(np.zeros((32, 32, 3), np.uint8))
