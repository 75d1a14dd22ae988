"""Building the recipe's model: backbone errors, staged init, frozen or trained upsampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _train_helpers import tiny_recipe, write_recipe

from fcnseg.checkpoint import save_checkpoint
from fcnseg.engine import load_config
from fcnseg.engine.setup import build_training_model
from fcnseg.models import WeightsError


def test_missing_backbone_file_is_a_clear_error_naming_the_field() -> None:
    config = load_config(tiny_recipe(), ["model.backbone_weights=/nowhere/vgg16.pth"])
    with pytest.raises(FileNotFoundError, match=r"model\.backbone_weights: /nowhere/vgg16\.pth"):
        build_training_model(config, 7)


def _unnamed_vgg16_file(path: Path) -> Path:
    """A torchvision-layout VGG16 file for the tiny recipe's trunk, under a name of one's own
    (so its input convention cannot be recognised)."""
    chans = [3, 4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    sd = {}
    for i, j in enumerate((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)):
        sd[f"features.{j}.weight"] = torch.zeros(chans[i + 1], chans[i], 3, 3)
        sd[f"features.{j}.bias"] = torch.zeros(chans[i + 1])
    for name, shape in (("0", (16, 32 * 49)), ("3", (16, 16)), ("6", (1000, 16))):
        sd[f"classifier.{name}.weight"] = torch.zeros(shape)
        sd[f"classifier.{name}.bias"] = torch.zeros(shape[0])
    torch.save(sd, path)
    return path


def test_a_backbone_of_unknown_convention_is_one_line_naming_the_recipe_field(
        tmp_path: Path) -> None:
    weights = _unnamed_vgg16_file(tmp_path / "my_vgg16.pth")
    config = load_config(tiny_recipe(), [f"model.backbone_weights={weights}"])
    with pytest.raises(WeightsError, match=r"my_vgg16\.pth: .*set model\.backbone_convention: "
                                        r"caffe_bgr .* or torchvision_rgb") as e:
        build_training_model(config, 7)
    assert "\n" not in str(e.value) and "pass convention=" not in str(e.value)
    config = load_config(tiny_recipe(), [f"model.backbone_weights={weights}",
                                         "model.backbone_convention=caffe_bgr"])
    assert build_training_model(config, 7).input_convention.name == "caffe_bgr"


def test_staged_init_copies_the_previous_stage_and_keeps_new_scorers_at_zero(
    tmp_path: Path,
) -> None:
    stage32 = build_training_model(load_config(tiny_recipe(model={"arch": "fcn32s"})), 7)
    with torch.no_grad():
        stage32.head.score_fr.weight.normal_()  # as if trained
    path = save_checkpoint(tmp_path / "best.pt", stage32, class_names=list("abcdefg"),
                           palette=[[i, i, i] for i in range(7)])
    config = load_config(tiny_recipe(model={"arch": "fcn16s"}), [f"init={path}"])
    stage16 = build_training_model(config, 7)
    assert torch.equal(stage16.trunk.conv1_1.weight, stage32.trunk.conv1_1.weight)
    assert torch.equal(stage16.head.score_fr.weight, stage32.head.score_fr.weight)
    assert not stage16.head.score_pool4.weight.any() and not stage16.head.score_pool4.bias.any()
    assert stage16.input_convention == stage32.input_convention


def test_a_missing_init_names_where_it_looked_and_the_recipe_folder_holding_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes, work = tmp_path / "recipes", tmp_path / "work"
    (recipes / "runs" / "a").mkdir(parents=True)
    (recipes / "runs" / "a" / "best.pt").write_bytes(b"x")
    work.mkdir()
    monkeypatch.chdir(work)
    recipe = write_recipe(recipes / "stage16.yaml", tiny_recipe(init="runs/a/best.pt"))
    with pytest.raises(FileNotFoundError) as e:
        build_training_model(load_config(recipe), 7)
    assert str(e.value) == (
        f"init: runs/a/best.pt: no such checkpoint (looked for {work}/runs/a/best.pt); "
        f"{recipes}/runs/a/best.pt exists, but init is relative to the current folder, not to "
        f"the recipe file (as base is): --set init={recipes}/runs/a/best.pt")


def test_a_missing_init_nowhere_else_names_only_where_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path / "stage16.yaml", tiny_recipe(init="runs/a/best.pt"))
    with pytest.raises(FileNotFoundError) as e:
        build_training_model(load_config(recipe), 7)
    assert str(e.value) == (f"init: runs/a/best.pt: no such checkpoint (looked for "
                            f"{tmp_path}/runs/a/best.pt)")


def test_a_missing_absolute_init_names_the_field_and_where_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path / "stage16.yaml", tiny_recipe(init=f"{tmp_path}/best.pt"))
    with pytest.raises(FileNotFoundError) as e:
        build_training_model(load_config(recipe), 7)
    assert str(e.value) == (f"init: {tmp_path}/best.pt: no such checkpoint (looked for "
                            f"{tmp_path}/best.pt)")


def test_a_missing_init_under_a_tilde_names_the_path_opened_not_the_home_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "best.pt").write_bytes(b"")  # there, but not what init opened
    recipe = write_recipe(tmp_path / "stage16.yaml", tiny_recipe(init="~/best.pt"))
    with pytest.raises(FileNotFoundError) as e:
        build_training_model(load_config(recipe), 7)
    assert str(e.value) == f"init: ~/best.pt: no such checkpoint (looked for {tmp_path}/~/best.pt)"


def test_an_init_of_another_width_names_both_builds_and_the_recipe_fields_in_one_short_line(
        tmp_path: Path) -> None:
    wide = {"arch": "fcn32s", "width": 0.125, "fc_channels": 32}
    stage32 = build_training_model(load_config(tiny_recipe(model=wide)), 7)
    path = save_checkpoint(tmp_path / "best.pt", stage32, class_names=list("abcdefg"))
    config = load_config(tiny_recipe(model={"arch": "fcn16s"}), [f"init={path}"])
    with pytest.raises(WeightsError) as e:
        build_training_model(config, 7)
    message = str(e.value)
    assert "\n" not in message and len(message.replace(str(path), "P")) < 500
    assert message.startswith(
        f"init: {path}, fcn32s (width 0.125, fc_channels 32), cannot initialise the model, "
        f"fcn16s (width 0.0625, fc_channels 16): their trunks differ")
    assert "(source vs model: conv1_1.weight (8, 3, 3, 3) vs (4, 3, 3, 3), conv1_1.bias (8,) " \
           "vs (4,), conv1_2.weight (8, 8, 3, 3) vs (4, 4, 3, 3), +27 more)." in message
    assert message.endswith("Initialise from a checkpoint of the same backbone, width and "
                            "bands, or set model.width: 0.125, model.fc_channels: 32 in the "
                            "recipe (the source's).")


def test_training_prints_what_the_staged_init_copied(tmp_path: Path, capsys) -> None:
    stage32 = build_training_model(load_config(tiny_recipe(model={"arch": "fcn32s"})), 7)
    path = save_checkpoint(tmp_path / "best.pt", stage32, class_names=list("abcdefg"))
    build_training_model(load_config(tiny_recipe(model={"arch": "fcn16s"}), [f"init={path}"]), 7)
    out = capsys.readouterr().out
    assert f"init from {path}: copied" in out and "score_pool4.weight (not in the source)" in out


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_an_init_checkpoint_holding_nan_is_refused_at_load_naming_the_tensor(
    tmp_path: Path, capsys: pytest.CaptureFixture, value: float
) -> None:
    from fcnseg.cli.main import main

    stage32 = build_training_model(load_config(tiny_recipe(model={"arch": "fcn32s"})), 7)
    with torch.no_grad():
        stage32.trunk.fc7.weight[0, 0, 0, 0] = value  # as saved by a run that diverged
    path = save_checkpoint(tmp_path / "best.pt", stage32, class_names=list("abcdefg"),
                           palette=[[i, i, i] for i in range(7)])
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(model={"arch": "fcn16s"},
                                                           init=str(path)))
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"init: {path}: tensor fc7.weight holds NaN or infinite values" in err
    assert "loss is nan" not in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_upsampling_is_frozen_unless_the_recipe_trains_it() -> None:
    frozen = build_training_model(load_config(tiny_recipe()), 7)
    assert not any(m.weight.requires_grad for m in frozen.upsampling_layers())
    trained = build_training_model(load_config(tiny_recipe(),
                                               ["model.train_upsampling=true"]), 7)
    assert all(m.weight.requires_grad for m in trained.upsampling_layers())


def test_recipes_build_other_backbones_with_their_own_options() -> None:
    config = load_config(tiny_recipe(model={"arch": "fcn8s_resnet18",
                                            "options": {"base_channels": 8}}))
    model = build_training_model(config, 7)
    assert model.arch == "fcn8s_resnet18"
    assert model.build_kwargs["base_channels"] == 8
    assert "geometry" not in model.build_kwargs  # the VGG trunk's options are not passed on
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 40, 52)).shape == (1, 7, 40, 52)


@pytest.mark.parametrize("convention", ["torchvision_rgb", "caffe_bgr"])
def test_recipes_set_the_input_convention_of_torchvision_fcn(convention: str) -> None:
    # The tiny recipe sets model.input_convention; every builder must take it.
    config = load_config(tiny_recipe(model={"arch": "fcn_resnet50", "input_convention": convention,
                                            "options": {"base_channels": 8}}))
    model = build_training_model(config, 7)
    assert model.arch == "fcn_resnet50" and model.input_convention.name == convention


def test_sync_batchnorm_on_cpu_processes_is_one_line_naming_the_field() -> None:
    from fcnseg.engine.distributed import DistInfo
    from fcnseg.engine.setup import check_sync_batchnorm

    config = load_config(tiny_recipe(), ["train.sync_batchnorm=true"])
    two_cpus = DistInfo(0, 2, 0, torch.device("cpu"), owns_group=False)
    with pytest.raises(ValueError, match=r"^train\.sync_batchnorm: torch's SyncBatchNorm runs "
                                         r"on CUDA GPUs only, not on cpu processes"):
        check_sync_batchnorm(config, two_cpus)
    # one process has nothing to synchronise: asked for, it changes nothing
    check_sync_batchnorm(config, DistInfo(0, 1, 0, torch.device("cpu"), owns_group=False))


def test_sync_batchnorm_keeps_the_parameters_statistics_and_state_dict_keys() -> None:
    # wrap_model converts the model after the optimizer was built on its parameters
    config = load_config(tiny_recipe(model={"options": {"batch_norm": True}}))
    model = build_training_model(config, 7)
    before = {k: v for k, v in model.state_dict(keep_vars=True).items()}
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in synced.modules())
    after = synced.state_dict(keep_vars=True)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)  # the optimizer's tensors, not copies
