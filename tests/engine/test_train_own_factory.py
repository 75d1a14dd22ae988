"""A backbone factory named on the user's own command line is trusted by that command only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _train_helpers import fcnseg_command, subprocess_env, tiny_recipe, write_recipe

from fcnseg.checkpoint import CheckpointError, build_model_from_checkpoint
from fcnseg.models.trunk import BackboneError

MODULE = '''
from torch import nn
from fcnseg.models import backbone_factory


class Tiny(nn.Module):
    def __init__(self, width):
        super().__init__()
        chans = [3, width, width, width, 2 * width, 2 * width]
        self.stages = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1)
                                    for a, b in zip(chans, chans[1:]))
        self.out_channels = {8: width, 16: 2 * width, 32: 2 * width}

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x).relu()
            feats.append(x)
        return {8: feats[2], 16: feats[3], 32: feats[4]}


@backbone_factory
def make(width=4):
    return Tiny(width)
'''


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = subprocess_env()
    env["PYTHONPATH"] = f"{tmp_path / 'code'}:{env.get('PYTHONPATH', '')}"
    env.pop("FCNSEG_ALLOW_FACTORIES", None)
    return subprocess.run(fcnseg_command(*args), env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_factory_named_with_set_trains_without_allow_factory(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "userbackbone.py").write_text(MODULE)
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(
        model={"arch": "fcn_custom_backbone"}, train={"iterations": 2, "eval_every": 2}))
    done = _run(tmp_path, "train", "--recipe", str(recipe), "--out", str(tmp_path / "run"),
                "--set", "model.options={factory: 'userbackbone:make', "
                "factory_kwargs: {width: 4}}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backbone factory userbackbone:make: named by this command" in done.stdout
    # The checkpoint records the factory; reading it elsewhere still needs it allowed.
    with pytest.raises((CheckpointError, BackboneError), match="--allow-factory userbackbone"):
        build_model_from_checkpoint(tmp_path / "run" / "best.pt")
    info = _run(tmp_path, "info", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                "--allow-factory", "userbackbone")
    assert info.returncode == 0, info.stdout + info.stderr


def test_resuming_from_the_run_folders_recipe_does_not_trust_its_factory(
        tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "userbackbone.py").write_text(MODULE)
    recipe = tiny_recipe(model={"arch": "fcn_custom_backbone",
                                "options": {"factory": "userbackbone:make"}})
    (tmp_path / "run").mkdir()
    write_recipe(tmp_path / "run" / "recipe.yaml", recipe)
    done = _run(tmp_path, "train", "--out", str(tmp_path / "run"), "--resume")
    assert done.returncode != 0
    assert "--allow-factory userbackbone" in done.stderr
