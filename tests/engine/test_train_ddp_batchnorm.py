"""Data-parallel training of a BatchNorm model on 2 gloo processes: what validation scores is
what the run saves."""

from __future__ import annotations

from pathlib import Path

from _train_helpers import (
    finish,
    start_ddp_training,
    tiny_recipe,
    write_folder_dataset,
    write_recipe,
)

from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine.evaluation import evaluate_checkpoint


def _batchnorm_recipe(spec: dict, iterations: int, **train: object) -> dict:
    # A high rate on two-class squares: after 10 steps the predictions depend on the features
    # (and so on the BatchNorm statistics), not only on the scorers' biases.
    return tiny_recipe(model={"options": {"batch_norm": True}},
                       data={"batch_size": 2, "train": spec, "val": spec},
                       optim={"lr": 0.3},
                       train={"iterations": iterations, "eval_every": iterations,
                              "checkpoint_every": iterations, "log_every": 1, **train})


def test_validation_under_two_processes_scores_the_saved_batchnorm_statistics(
    tmp_path: Path,
) -> None:
    # Each process updates its BatchNorm statistics from its own batches; only rank 0's are
    # saved. Validation (each process scores its share of the images) must use those.
    spec = write_folder_dataset(tmp_path / "data", count=8)
    recipe = write_recipe(tmp_path / "bn.yaml", _batchnorm_recipe(spec, 10))
    finish(start_ddp_training(recipe, tmp_path / "ddp"))
    saved = load_checkpoint(tmp_path / "ddp" / "last.pt")
    again = evaluate_checkpoint(saved, spec, batch_size=2)
    assert saved["metrics"]["num_images"] == again["num_images"] == 8
    assert saved["metrics"]["pixel_acc"] == again["pixel_acc"]
    assert saved["metrics"]["iu"] == list(again["iu"])
