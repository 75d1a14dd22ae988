"""The loss options in real runs: gradient accumulation, loss sampling and class weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _train_helpers import finish, start_ddp_training, tiny_recipe, write_recipe

from fcnseg.checkpoint import load_checkpoint
from fcnseg.data import build_dataset
from fcnseg.data.class_frequencies import class_pixel_counts, class_weights
from fcnseg.engine import load_config, train
from fcnseg.engine.trainer import _no_sync
from fcnseg.models import build_model

QUIET = {"progress": False, "tensorboard": False}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model_state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    for key, value in wa.items():
        torch.testing.assert_close(wb[key], value, rtol=1e-5, atol=1e-7, msg=key)
    assert wa["score_pool3.weight"].abs().sum() > 0  # training moved the weights


@pytest.mark.parametrize("reduction, lr", [("mean", 0.05), ("sum", 2e-5)])
def test_accumulating_two_batches_equals_one_step_on_both(tmp_path: Path, reduction: str,
                                                          lr: float) -> None:
    # The averaged loss divides by the valid pixels of both batches together (the ignored
    # border makes their counts differ), not by each batch's own count.
    common = dict(loss={"reduction": reduction},
                  train={"iterations": 3, "eval_every": 100, "checkpoint_every": 100,
                         "log_every": 1, **QUIET})
    data = {"train": {"name": "synthetic", "num_images": 12, "size": 32, "seed": 0,
                      "ignore_border": 2}, "val": None}
    whole = tiny_recipe(data={**data, "batch_size": 4}, optim={"lr": lr}, **common)
    parts = tiny_recipe(data={**data, "batch_size": 2}, optim={"lr": lr, "accumulate": 2},
                        **common)
    train(load_config(whole, out=str(tmp_path / "whole")))
    train(load_config(parts, out=str(tmp_path / "parts")))
    _assert_same_weights(tmp_path / "whole", tmp_path / "parts")


def test_resumed_run_with_sampling_and_accumulation_matches_a_straight_one(
    tmp_path: Path,
) -> None:
    # 10 images in batches of 2 and 2 batches a step: steps straddle epoch ends. The fixed
    # schedule does not depend on the run's length, so 4 then 4 more equals 8.
    recipe = tiny_recipe(loss={"reduction": "mean", "sample_rate": 0.5},
                         optim={"accumulate": 2}, schedule={"name": "fixed"},
                         data={"val": None},
                         train={"iterations": 8, "eval_every": 100, "checkpoint_every": 100,
                                "log_every": 1, **QUIET})
    train(load_config(recipe, out=str(tmp_path / "straight")))
    short = load_config(recipe, ["train.iterations=4"], out=str(tmp_path / "resumed"))
    train(short)
    halfway = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert halfway["state"]["data"]["position"] == 3  # 8 batches: one epoch of 5, then 3
    train(load_config(recipe, out=str(tmp_path / "resumed")), resume=True)
    _assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["state"]["loss_sampling"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["state"]["loss_sampling"]
    assert torch.equal(a[0]["generator"], b[0]["generator"])


def test_sampling_changes_training_and_its_draws_follow_the_seed(tmp_path: Path) -> None:
    base = dict(data={"val": None}, train={"iterations": 2, "eval_every": 100,
                                           "checkpoint_every": 100, "log_every": 1, **QUIET})
    for name, rate in (("full", 1.0), ("half", 0.5), ("half_again", 0.5)):
        train(load_config(tiny_recipe(loss={"sample_rate": rate}, **base),
                          out=str(tmp_path / name)))
    full, half = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert not torch.equal(full["score_fr.weight"], half["score_fr.weight"])
    _assert_same_weights(tmp_path / "half", tmp_path / "half_again")


def test_sample_rate_scales_batch_multiplies_the_images_per_step() -> None:
    config = load_config(tiny_recipe(), ["loss.sample_rate=0.25",
                                         "loss.sample_rate_scales_batch=true"])
    assert config.images_per_batch() == 8
    config.loss.sample_rate_scales_batch = False
    assert config.images_per_batch() == 2


def test_class_weights_are_printed_and_stored_in_the_checkpoint_recipe(tmp_path: Path,
                                                                       capsys) -> None:
    recipe = tiny_recipe(loss={"class_weights": "median_frequency", "max_weight": 50.0},
                         data={"val": None},
                         train={"iterations": 1, "eval_every": 100, "checkpoint_every": 100,
                                "log_every": 1, **QUIET})
    train(load_config(recipe, out=str(tmp_path / "run")))
    ds = build_dataset(recipe["data"]["train"], split="train")
    expected = class_weights(class_pixel_counts(ds), "median_frequency", 50.0)
    stored = load_checkpoint(tmp_path / "run" / "last.pt")["recipe"]["loss"]["class_weights"]
    torch.testing.assert_close(torch.tensor(stored, dtype=torch.float64),
                               torch.tensor(expected), rtol=1e-6, atol=0)
    out = capsys.readouterr().out
    assert "class weights (median_frequency, max 50.0)" in out
    for name in ds.classes:
        assert f"\n{name} " in out


def test_a_weight_list_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    recipe = tiny_recipe(loss={"class_weights": [1.0, 2.0]})
    with pytest.raises(ValueError, match="loss.class_weights: 2 weights given but the "
                                         "training data has"):
        train(load_config(recipe, out=str(tmp_path / "run")))


def test_inner_accumulation_batches_skip_the_gradient_all_reduce(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Conv2d(3, 2, 1))
        with _no_sync(model, inner=True):
            assert model.require_backward_grad_sync is False
        with _no_sync(model, inner=False):
            assert model.require_backward_grad_sync is True
    finally:
        dist.destroy_process_group()


def test_two_processes_accumulating_equal_one_process_with_the_whole_batch(
    tmp_path: Path,
) -> None:
    # 2 processes × 1 image × 2 accumulated batches = 1 process × 4 images, class weights
    # (computed by rank 0 and broadcast) and averaged loss included.
    base = dict(loss={"reduction": "mean", "class_weights": "inverse_frequency"},
                train={"iterations": 3, "eval_every": 100, "checkpoint_every": 100,
                       "log_every": 1, **QUIET})
    data = {"train": {"name": "synthetic", "num_images": 12, "size": 32, "seed": 0},
            "val": None}  # 3 whole steps per epoch either way
    one = write_recipe(tmp_path / "one.yaml", tiny_recipe(data={**data, "batch_size": 4},
                                                          **base))
    two = write_recipe(tmp_path / "two.yaml", tiny_recipe(data={**data, "batch_size": 1},
                                                          optim={"accumulate": 2}, **base))
    train(load_config(str(one), out=str(tmp_path / "single")))
    finish(start_ddp_training(two, tmp_path / "ddp"), timeout=300)
    _assert_same_weights(tmp_path / "single", tmp_path / "ddp")


def test_the_sampler_uses_the_models_score_grid(tmp_path: Path) -> None:
    from fcnseg.engine.distributed import setup_distributed
    from fcnseg.engine.setup import build_setup

    config = load_config(tiny_recipe(model={"geometry": "caffe"},
                                     loss={"sample_rate": 0.5}), out=str(tmp_path))
    setup = build_setup(config, setup_distributed("cpu"), None)
    model = build_model("fcn8s", num_classes=setup.num_classes, geometry="caffe",
                        width=0.0625, fc_channels=16)
    assert (setup.loss_sampler.cell, setup.loss_sampler.offset) == (32, -3.5)
    assert model.coord_maps()[32].shift == 12.5


@pytest.mark.parametrize("override, message", [
    ("loss.sample_rate=0", "loss.sample_rate: must be in (0, 1]"),
    ("loss.class_weights=balanced", "loss.class_weights: 'balanced' is not one of"),
    ("loss.class_weights=[1, -2]", "loss.class_weights: expected one of"),
    ("loss.max_weight=0", "loss.max_weight: must be positive"),
    ("optim.accumulate=0", "optim.accumulate: must be a positive integer"),
])
def test_bad_loss_options_are_named(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(tiny_recipe(), [override])
