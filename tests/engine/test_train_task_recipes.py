"""The PASCAL-Context, NYUDv2 and SIFT Flow recipes: each loads, states its published score and
keeps the reference's solver; the staged ones run on tiny trees in the real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ondisk import write_nyud, write_siftflow

from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import load_config, train

TASK_RECIPES = [
    "pascalcontext-fcn32s", "pascalcontext-fcn16s", "pascalcontext-fcn8s",
    "nyud-fcn32s-color", "nyud-fcn32s-hha", "nyud-fcn32s-color-d", "nyud-fcn32s-color-hha",
    "nyud-fcn16s-color-hha", "siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s",
]
TINY = ["model.width=0.0625", "model.fc_channels=8", "model.backbone_weights=null",
        "train.iterations=2", "train.eval_every=2", "train.checkpoint_every=2",
        "train.progress=false", "threads=1"]


@pytest.mark.parametrize("name", TASK_RECIPES)
def test_task_recipe_loads_with_the_reference_solver(name):
    config = load_config(name)
    assert config.loss.reduction == "sum"
    assert config.optim.momentum == 0.99 and config.optim.lr <= 1e-10
    assert "source" in config.published


@pytest.mark.parametrize("name", [n for n in TASK_RECIPES if n not in
                                  ("siftflow-fcn32s", "siftflow-fcn8s")])
def test_task_recipe_states_its_published_mean_iu(name):
    assert load_config(name).published["mean_iu"] > 0


def test_siftflow_fcn16s_states_the_geometric_pixel_accuracy():
    assert load_config("siftflow-fcn16s").published["geometric_pixel_acc"] == 94.3


def _run(recipe: str, out: Path, root: Path, *extra: str) -> dict:
    overrides = [*TINY, f"data.train.root={root}", f"data.val.root={root}", *extra]
    train(load_config(recipe, overrides, out=str(out)))
    return load_checkpoint(out / "best.pt")


def test_siftflow_fcn16s_starts_from_the_trained_fcn32s(tmp_path):
    pytest.importorskip("scipy", reason="SIFT Flow's .mat labels need scipy (the data extra)")
    write_siftflow(tmp_path, {"trainval": ["a", "b"], "test": ["c"]}, size=(32, 32))
    stage32 = _run("siftflow-fcn32s", tmp_path / "fcn32s", tmp_path)
    stage16 = _run("siftflow-fcn16s", tmp_path / "fcn16s", tmp_path,
                   f"init={tmp_path / 'fcn32s' / 'best.pt'}")
    assert set(stage16["classes"]["heads"]) == {"semantic", "geometric"}
    # lr 1e-12 for two steps: the trunk is still the one FCN-32s trained
    torch.testing.assert_close(stage16["model_state_dict"]["conv1_1.weight"],
                               stage32["model_state_dict"]["conv1_1.weight"], rtol=1e-5, atol=0)


def test_nyud_late_fusion_starts_each_stream_from_its_own_net(tmp_path):
    pytest.importorskip("scipy", reason="NYUDv2's .mat labels need scipy (the data extra)")
    write_nyud(tmp_path, {"train": ["1", "2"], "test": ["3"]}, size=(32, 32))
    color = _run("nyud-fcn32s-color", tmp_path / "color", tmp_path)
    hha = _run("nyud-fcn32s-hha", tmp_path / "hha", tmp_path, "seed=1")
    fused = _run("nyud-fcn32s-color-hha", tmp_path / "fused", tmp_path,
                 f"init={{color: {tmp_path / 'color' / 'best.pt'}, "
                 f"hha: {tmp_path / 'hha' / 'best.pt'}}}")
    sd = fused["model_state_dict"]
    torch.testing.assert_close(sd["conv1_1_color.weight"],
                               color["model_state_dict"]["conv1_1.weight"], rtol=1e-5, atol=0)
    torch.testing.assert_close(sd["conv1_1_hha.weight"],
                               hha["model_state_dict"]["conv1_1.weight"], rtol=1e-5, atol=0)
