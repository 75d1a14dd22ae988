"""Recipes: published ``model.backbone_weights`` must fit the chosen model's trunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.cli.main import main
from fcnseg.engine.config import ConfigError, list_recipes, load_config
from fcnseg.models.builders import backbone_trunk
from fcnseg.weightfiles.published import PRETRAINED


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("recipe", ["voc-fcn32s", "folder-fcn8s"])
def test_inherited_vgg16_weights_for_a_resnet_chosen_with_set_are_refused(recipe) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(recipe, ["model.arch=fcn8s_resnet50"])
    message = str(e.value)
    assert message.startswith(f"model.backbone_weights: vgg16_caffe, set by {recipe} for its ")
    assert "VGG16 trunk weights" in message and "fcn8s_resnet50's trunk is ResNet-50" in message
    assert "--set model.backbone_weights=resnet50 (published ResNet-50 weights)" in message
    assert message.endswith("or null (random trunk weights)")
    assert "\n" not in message


def test_a_resnet_with_fitting_weights_or_none_is_accepted_over_a_vgg16_recipe() -> None:
    config = load_config("voc-fcn32s", ["model.arch=fcn8s_resnet50",
                                        "model.backbone_weights=resnet50"])
    assert config.model.backbone_weights == "resnet50"
    config = load_config("voc-fcn32s", ["model.arch=fcn8s_resnet50",
                                        "model.backbone_weights=null"])
    assert config.model.backbone_weights is None


def test_the_train_command_refuses_the_mismatch_in_one_line_before_anything_runs(
        tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", "--recipe", "voc-fcn32s", "--out", str(out),
                 "--set", "model.arch=fcn8s_resnet50"])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.backbone_weights: vgg16_caffe" in err[0]
    assert not out.exists()


def test_weights_a_recipe_inherits_from_its_base_are_refused_naming_the_file_and_base(
        tmp_path) -> None:
    path = _recipe(tmp_path, "base: voc-fcn32s\nmodel: {arch: fcn8s_resnet50}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model.backbone_weights: vgg16_caffe, "
                                          r"inherited from its base voc-fcn32s, .*resnet50"):
        load_config(path)


@pytest.mark.parametrize("override, trunk, model, fitting", [
    ("model.backbone_weights=vgg16_caffe", "VGG16", "fcn8s_resnet18", "resnet18"),
    ("model.backbone_weights=resnet50", "ResNet-50", "fcn8s_resnet18", "resnet18"),
])
def test_published_weights_set_for_another_trunk_are_refused_naming_field_trunk_model(
        override, trunk, model, fitting) -> None:
    with pytest.raises(ConfigError) as e:
        load_config("folder-cpu", [override])
    message = str(e.value)
    name = override.partition("=")[2]
    assert message.startswith(f"model.backbone_weights: {name} holds {trunk} trunk weights, "
                              f"and {model}'s trunk is ")
    assert f"set model.backbone_weights to {fitting} (published" in message
    assert "\n" not in message


def test_the_trunk_follows_the_models_options() -> None:
    with pytest.raises(ConfigError, match="vgg16_caffe holds VGG16 trunk weights, and fcn8s's "
                                          "trunk is VGG16-BN: .*vgg16_bn"):
        load_config("voc-fcn8s-modern", ["model.options={batch_norm: true}"])
    with pytest.raises(ConfigError, match=r"alexnet_caffe holds AlexNet \(Caffe\) trunk "
                                          r"weights.*to alexnet \(published"):
        load_config("voc-fcn-alexnet", ["model.options.variant=torchvision"])


def test_a_published_checkpoint_is_no_backbone_weights() -> None:
    with pytest.raises(ConfigError, match="fcn32s_caffe holds a whole trained model, not trunk "
                                          "weights.*vgg16_caffe or vgg16_torchvision"):
        load_config("voc-fcn32s", ["model.backbone_weights=fcn32s_caffe"])


def test_a_file_is_not_judged_when_the_recipe_is_read(tmp_path) -> None:
    weights = tmp_path / "vgg16-397923af.pth"  # its loader checks its keys when built
    weights.write_bytes(b"")
    config = load_config("folder-cpu", [f"model.backbone_weights={weights}"])
    assert config.model.backbone_weights == str(weights)


@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_every_shipped_recipe_reads_with_weights_that_fit_its_model(recipe) -> None:
    model = load_config(recipe).model
    if model.backbone_weights is not None:
        published = PRETRAINED[model.backbone_weights]
        assert published.kind == "backbone"
        assert published.trunk == backbone_trunk(model.arch, model.options)
