"""Automatic validation batches: images of one size together, as many as memory allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _train_helpers import tiny_recipe
from PIL import Image

from fcnseg.data import build_dataset
from fcnseg.data.cache import cache_decoded
from fcnseg.engine import build_setup, load_config
from fcnseg.engine.distributed import setup_distributed
from fcnseg.engine.eval_batching import activation_bytes, sample_sizes
from fcnseg.engine.evaluation import evaluate_model
from fcnseg.engine.state import seed_everything
from fcnseg.utils.batches import same_size_batches

pytestmark = pytest.mark.usefixtures("one_thread")


def _mixed_sizes(root: Path) -> dict:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, thing]\n")
    rng = np.random.default_rng(0)
    sizes = [(32, 48), (40, 40), (32, 48), (32, 48), (40, 40)]
    for n, (h, w) in enumerate(sizes):
        image = rng.integers(0, 255, (h, w, 3), np.uint8)
        Image.fromarray(image).save(root / "images" / f"{n}.png")
        Image.fromarray(rng.integers(0, 2, (h, w), np.uint8)).save(root / "masks" / f"{n}.png")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in range(len(sizes))))
    return {"name": "folder", "root": str(root)}


def test_batches_hold_one_image_size_each(tmp_path: Path) -> None:
    dataset = build_dataset(_mixed_sizes(tmp_path), split="val")
    sizes = sample_sizes(dataset)
    assert sizes == [(32, 48), (40, 40), (32, 48), (32, 48), (40, 40)]
    assert same_size_batches(sizes, 2, range(5)) == [[0, 2], [3], [1, 4]]
    cache_decoded("ram", [dataset])  # the cache knows the sizes too
    assert sample_sizes(dataset) == sizes


def test_activation_bytes_count_every_layer_output() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    assert activation_bytes(model, torch.zeros(3, 5, 6)) == 2 * 4 * 5 * 6 * 4


def test_auto_batched_evaluation_scores_as_one_image_at_a_time(tmp_path: Path) -> None:
    spec = _mixed_sizes(tmp_path)
    scores = {}
    for setting in ("auto", 1):
        recipe = tiny_recipe(data={"train": spec, "val": {**spec, "split": "val"},
                                   "val_batch_size": setting})
        seed_everything(0)
        setup = build_setup(load_config(recipe, out=str(tmp_path / "run")),
                            setup_distributed("cpu"), None)
        batches = [len(labels) for _, labels in setup.val_loader]
        scores[setting] = (batches, evaluate_model(setup.model, setup.val_loader,
                                                   num_classes=2)["confusion"])
        if setting == "auto":
            assert any("evaluation: batches of up to" in n for n in setup.notes)
    assert scores["auto"][0] == [3, 2] and scores[1][0] == [1] * 5
    # Batched kernels round differently from single-image ones: a near-tie may flip a pixel's
    # label (tests/floats.py), never a border's worth, as padding would.
    auto, single = np.asarray(scores["auto"][1]), np.asarray(scores[1][1])
    assert auto.sum() == single.sum() and np.abs(auto - single).sum() <= 0.002 * single.sum()
