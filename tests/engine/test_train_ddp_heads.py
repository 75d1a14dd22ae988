"""Data-parallel training with dict labels: SIFT Flow's two heads on 2 gloo processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from _train_helpers import (
    finish,
    start_ddp_training,
    start_training,
    tiny_recipe,
    write_recipe,
)
from floats import assert_close_to_scale
from ondisk import write_siftflow

from fcnseg.checkpoint import load_checkpoint

pytest.importorskip("scipy", reason="SIFT Flow's .mat labels need scipy (the data extra)")


def test_two_gloo_processes_train_both_heads_as_one_process_with_the_whole_batch(
    tmp_path: Path,
) -> None:
    write_siftflow(tmp_path, {"trainval": ["a", "b", "c", "d"], "test": ["e", "f"]},
                   size=(32, 32))
    spec = {"name": "siftflow", "root": str(tmp_path)}
    sections = {
        "model": {"arch": "siftflow_fcn16s", "geometry": "same", "width": 0.0625,
                  "fc_channels": 16, "dropout": 0.0, "backbone_weights": None,
                  "input_convention": "caffe_bgr"},
        "train": {"iterations": 4, "checkpoint_every": 2, "eval_every": 2, "log_every": 1,
                  "progress": False, "tensorboard": False},
        "optim": {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4,
                  "bias_lr_mult": 2.0},
    }
    data = {"train": {**spec, "split": "trainval"}, "val": {**spec, "split": "test"},
            "crop_size": None, "val_batch_size": 1}
    one = write_recipe(tmp_path / "one.yaml",
                       tiny_recipe(data={**data, "batch_size": 4}, **sections))
    two = write_recipe(tmp_path / "two.yaml",
                       tiny_recipe(data={**data, "batch_size": 2}, **sections))
    single = start_training(one, tmp_path / "single")
    ddp = start_ddp_training(two, tmp_path / "ddp")
    finish(ddp, timeout=240)
    finish(single, timeout=240)

    a = load_checkpoint(tmp_path / "single" / "last.pt")
    b = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert b["state"]["world_size"] == 2
    for key, value in a["model_state_dict"].items():
        assert_close_to_scale(b["model_state_dict"][key], value, rtol=1e-4, err_msg=key)
    # Both heads' scorers start at zero: non-zero ones show that each head was trained.
    for head in ("sem", "geo"):
        assert a["model_state_dict"][f"score_fr_{head}.weight"].abs().sum() > 0
    # Both heads were scored on the validation images the two processes shared out.
    assert set(b["metrics"]["heads"]) == {"semantic", "geometric"}
    assert b["metrics"]["heads"]["geometric"]["pixel_acc"] == pytest.approx(
        a["metrics"]["heads"]["geometric"]["pixel_acc"], rel=1e-4)
