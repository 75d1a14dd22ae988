"""Recipes: the model fields and ``model.options`` an architecture takes, checked when read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fcnseg.cli.main import main
from fcnseg.engine.config import ConfigError, ModelConfig, load_config, load_recipe


def _recipe(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("override", ["model.width=0.25", "model.fc_channels=16",
                                      "model.geometry=same", "model.dropout=0.1"])
def test_a_vgg_trunk_field_set_for_a_resnet_is_refused_naming_field_and_model(override) -> None:
    field = override.partition("=")[0]
    with pytest.raises(ConfigError, match=rf"^{field}: fcn8s_resnet18 takes no "
                                          rf".*base_channels") as e:
        load_config("folder-cpu", [override])
    assert "\n" not in str(e.value)


def test_a_field_at_its_default_is_accepted_for_any_model() -> None:
    # Saved recipes (a run's recipe.yaml) list every field at its default: never refused.
    config = load_config("folder-cpu", ["model.width=1.0", "model.geometry=caffe",
                                        "model.fc_channels=4096", "model.dropout=0.5"])
    assert config.model.arch == "fcn8s_resnet18"


def test_a_field_set_in_the_recipe_that_chose_the_model_is_refused_naming_the_file(
        tmp_path) -> None:
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {arch: fcn8s_resnet34, width: 0.5}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model.width: fcn8s_resnet34 takes no"):
        load_config(path)


def test_a_field_set_in_a_recipe_based_on_the_one_that_chose_the_model_is_refused(
        tmp_path) -> None:
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {fc_channels: 16}\n")
    with pytest.raises(ConfigError, match="model.fc_channels: fcn8s_resnet18 takes no"):
        load_config(path)


def test_fields_inherited_from_a_base_for_another_model_are_dropped(tmp_path) -> None:
    # synthetic-fcn8s sets a slim VGG16 (width 0.25, fc 256, dropout 0, geometry same): they
    # describe that model, not the ResNet chosen here.
    path = _recipe(tmp_path, "base: synthetic-fcn8s\nmodel: {arch: fcn8s_resnet18}\n")
    assert not {"width", "fc_channels", "geometry", "dropout"} & set(load_recipe(path)["model"])
    model = load_config(path).model
    defaults = ModelConfig()
    assert (model.width, model.fc_channels, model.geometry, model.dropout) == (
        defaults.width, defaults.fc_channels, defaults.geometry, defaults.dropout)


def test_fields_a_model_takes_are_inherited_across_a_change_of_model(tmp_path) -> None:
    path = _recipe(tmp_path, "base: synthetic-fcn8s\nmodel: {arch: fcn_alexnet}\n")
    model = load_config(path).model
    assert (model.width, model.fc_channels) == (0.25, 256)


def test_an_override_of_the_model_drops_the_recipes_fields_it_does_not_take() -> None:
    config = load_config("synthetic-fcn8s", ["model.arch=fcn8s_resnet18"])
    assert (config.model.width, config.model.geometry) == (1.0, "caffe")
    with pytest.raises(ConfigError, match="^model.width: fcn8s_resnet18 takes no"):
        load_config("synthetic-fcn8s", ["model.width=0.5", "model.arch=fcn8s_resnet18"])


def test_an_unknown_model_is_refused_when_the_recipe_is_read() -> None:
    with pytest.raises(ConfigError, match="^model.arch: unknown model 'fcn8s_resnet19'"):
        load_config("folder-cpu", ["model.arch=fcn8s_resnet19"])


def test_recipes_name_prints_only_the_model_fields_that_apply(capsys) -> None:
    assert main(["recipes", "folder-cpu"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["arch"] == "fcn8s_resnet18"
    assert not {"width", "fc_channels", "geometry", "dropout"} & set(model)
    assert main(["recipes", "synthetic-fcn8s"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert (model["width"], model["geometry"]) == (0.25, "same")


def test_a_field_dropped_by_a_model_that_does_not_take_it_stays_dropped_after_it(
        tmp_path) -> None:
    # voc-fcn8s-modern sets geometry: same; folder-cpu's ResNet takes none; a VGG16 chosen on
    # top of folder-cpu starts from the default geometry, not from two recipes below (its
    # ResNet-18 weights do not fit a VGG16: they are set to null).
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {arch: fcn8s, backbone_weights: null}\n")
    assert load_config(path).model.geometry == "caffe"
