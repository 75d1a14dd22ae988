"""Checkpoints written in the background: a copy taken at the save, errors not lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from _train_helpers import tiny_recipe

import fcnseg.engine.checkpoint_writer as checkpoint_writer
from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import TrainState, build_setup, load_config
from fcnseg.engine.distributed import setup_distributed
from fcnseg.engine.state import seed_everything
from fcnseg.engine.trainer import step, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(setup, batches) -> None:  # type: ignore[no-untyped-def]
    images, labels = next(batches)
    step(setup, images, labels, float((labels != setup.ignore_index).sum()))


def test_a_background_save_writes_the_weights_of_its_moment_while_training_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release, started = threading.Event(), threading.Event()
    write = checkpoint_writer.write_checkpoint

    def slow_write(path, payload):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(60)
        return write(path, payload)

    monkeypatch.setattr(checkpoint_writer, "write_checkpoint", slow_write)
    config = load_config(tiny_recipe(), out=str(tmp_path / "run"))
    seed_everything(0)
    setup = build_setup(config, setup_distributed("cpu"), None)
    state = TrainState.start(setup)
    setup.sampler.set_epoch(0)
    batches = iter(setup.loader)
    _step(setup, batches)
    at_save = {k: v.clone() for k, v in setup.model.state_dict().items()}
    state.save(setup, tmp_path / "last.pt", background=True)
    assert started.wait(60) and not (tmp_path / "last.pt").exists()  # still being written
    _step(setup, batches)  # training goes on meanwhile
    release.set()
    assert setup.checkpoint_writer.finish() is None
    saved = load_checkpoint(tmp_path / "last.pt")["model_state_dict"]
    changed = [k for k, v in setup.model.state_dict().items() if not torch.equal(v, at_save[k])]
    assert changed  # the second step moved the weights; the file holds the first's
    for key in changed:
        assert torch.equal(saved[key], at_save[key]), key


def test_a_failed_background_write_stops_the_run_with_its_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(path, payload):  # type: ignore[no-untyped-def]
        raise OSError(f"{path}: disk full")

    monkeypatch.setattr(checkpoint_writer, "write_checkpoint", failing)
    with pytest.raises(OSError, match="disk full"):
        train(load_config(tiny_recipe(train={"iterations": 4, "checkpoint_every": 2})),
              out=tmp_path / "run")


def test_checkpoints_carry_the_coco_categories_of_the_dataset_classes(tmp_path: Path) -> None:
    from _train_helpers import write_folder_dataset

    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "dataset.yaml").write_text(
        "classes: [bg, thing]\ncoco_categories: {thing: {id: 7, supercategory: stuff}}\n")
    data = {**tiny_recipe()["data"], "train": spec, "val": {**spec, "split": "val"}}
    config = load_config(tiny_recipe(data=data), out=str(tmp_path / "run"))
    setup = build_setup(config, setup_distributed("cpu"), None)
    TrainState.start(setup).save(setup, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["classes"]["coco_categories"] == {
        "thing": {"id": 7, "supercategory": "stuff"}}
