"""Recipes: ``model.options`` checked against the model's builder when the recipe is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.cli.main import main
from fcnseg.engine.config import ConfigError, load_config


def _recipe(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_option_is_refused_naming_the_file_key_and_model(tmp_path) -> None:
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {options: {base_channel: 16}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (f"{path}: model.options.base_channel: unknown option of "
                            f"fcn8s_resnet18; known: replace_stride_with_dilation, "
                            f"base_channels")


def test_an_option_of_the_wrong_type_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^model.options.base_channels: expected int, "
                                          r"got 'sixteen'$"):
        load_config("folder-cpu", ["model.options={base_channels: sixteen}"])


def test_an_option_the_options_dataclass_refuses_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^model.options.replace_stride_with_dilation: "
                                          r"expected three booleans"):
        load_config("folder-cpu", ["model.options={replace_stride_with_dilation: [true]}"])


@pytest.mark.parametrize("key", ["width", "num_classes", "backbone_weights"])
def test_an_option_that_is_a_model_field_or_the_datasets_is_refused(key) -> None:
    with pytest.raises(ConfigError, match=rf"^model.options.{key}: "):
        load_config("synthetic-fcn8s", [f"model.options={{{key}: 2}}"])


def test_a_custom_backbones_options_are_accepted() -> None:
    config = load_config("folder-cpu", [
        "model.arch=fcn_custom_backbone", "model.backbone_weights=null",
        "model.options={factory: 'mymod:make', factory_kwargs: {width: 4}}"])
    assert config.model.options["factory_kwargs"] == {"width": 4}


def test_recipes_show_refuses_a_bad_option_in_one_line(tmp_path, capsys) -> None:
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {options: {base_channel: 16}}\n")
    assert main(["recipes", "--show", str(path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "model.options.base_channel: unknown option of fcn8s_resnet18" in err
    assert len(err.splitlines()) == 1


def test_a_vgg_trunk_option_given_to_a_resnet_is_an_unknown_option() -> None:
    with pytest.raises(ConfigError, match=r"^model.options.width: unknown option of "
                                          r"fcn8s_resnet18"):
        load_config("folder-cpu", ["model.options={width: 0.5}"])


def test_the_custom_backbone_recipe_in_the_docs_reads_as_it_says(tmp_path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "backbones.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "arch: fcn_custom_backbone" in block
    model = load_config(_recipe(tmp_path, block)).model
    assert model.arch == "fcn_custom_backbone" and model.backbone_weights is None
    assert model.options == {"factory": "mypkg.backbones:make_backbone",
                             "factory_kwargs": {"width": 16}, "variant": "8s"}


def test_options_a_base_recipe_gave_its_own_model_are_dropped_for_another(tmp_path) -> None:
    _recipe(tmp_path, "base: folder-cpu\nmodel: {options: {base_channels: 16}}\n", "slim.yaml")
    path = _recipe(tmp_path, "base: slim.yaml\nmodel: {arch: fcn8s, backbone_weights: null}\n")
    assert load_config(path).model.options == {}
    kept = _recipe(tmp_path, "base: slim.yaml\nmodel: {arch: fcn8s_resnet34, backbone_weights: "
                             "resnet34}\n", "deeper.yaml")
    assert load_config(kept).model.options == {"base_channels": 16}


def test_an_override_of_the_model_drops_the_recipes_options_it_does_not_take(tmp_path) -> None:
    path = _recipe(tmp_path, "base: folder-cpu\nmodel: {options: {base_channels: 16}}\n")
    vgg16 = ["model.arch=fcn8s", "model.backbone_weights=null"]  # ResNet-18 weights do not fit
    assert load_config(path, vgg16).model.options == {}
    with pytest.raises(ConfigError, match="^model.options.base_channels: unknown option of fcn8s"):
        load_config(path, ["model.arch=fcn8s", "model.options={base_channels: 8}"])


def test_a_null_option_of_a_plain_type_is_refused_naming_it() -> None:
    # base_channels: null would otherwise pass and fail inside the ResNet builder.
    with pytest.raises(ConfigError, match=r"^model.options.base_channels: expected int, "
                                          r"got None$"):
        load_config("folder-cpu", ["model.options.base_channels=null"])
