"""Recipes: the shipped set, overrides, and errors that name the bad key."""

from __future__ import annotations

import pytest

from fcnseg.engine.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    list_recipes,
    load_config,
)
from fcnseg.models import PRETRAINED

SHIPPED = ["voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "voc-fcn8s-modern",
           "voc-fcn-alexnet", "voc-fcn32s-googlenet",
           "folder-fcn8s", "synthetic-fcn8s", "synthetic-fcn32s"]


def test_every_shipped_recipe_is_listed_and_resolves() -> None:
    listed = list_recipes()
    assert set(SHIPPED) <= set(listed)
    for name in listed:
        config = load_config(name)
        assert config.name == name
        assert listed[name], f"{name} has no description line"


def test_recipe_descriptions_are_whole_sentences() -> None:
    # A description that wraps over several comment lines is listed whole, not cut mid-sentence.
    for name, description in list_recipes().items():
        assert description.endswith((".", "!", "?")), f"{name}: {description!r}"
        assert description.count("(") == description.count(")"), f"{name}: {description!r}"
    assert list_recipes()["folder-cpu"].endswith("data.val.root=DIR).")


def test_reference_recipes_follow_the_paper() -> None:
    lrs = {"voc-fcn32s": 1e-10, "voc-fcn16s": 1e-12, "voc-fcn8s": 1e-14,
           "voc-fcn8s-atonce": 1e-10}
    for name, lr in lrs.items():
        c = load_config(name)
        assert c.optim.lr == lr and c.optim.momentum == 0.99
        assert c.optim.weight_decay == 5e-4 and c.optim.bias_lr_mult == 2.0
        assert not c.optim.bias_decay and not c.model.train_upsampling
        assert c.loss.reduction == "sum" and c.data.batch_size == 1
        assert c.schedule.name == "fixed" and c.train.eval_every == 4000
        assert c.data.train["name"] == "sbd" and c.data.val["name"] == "seg11valid"
    assert load_config("voc-fcn8s-atonce").train.iterations == 300_000
    assert load_config("voc-fcn32s").model.backbone_weights == "vgg16_caffe"


def test_table1_recipes_follow_the_paper_and_the_reference() -> None:
    alexnet, googlenet = load_config("voc-fcn-alexnet"), load_config("voc-fcn32s-googlenet")
    assert alexnet.model.arch == "fcn_alexnet" and alexnet.optim.lr == 1e-4
    assert googlenet.model.arch == "fcn32s_googlenet" and googlenet.optim.lr == 5e-5
    for c in (alexnet, googlenet):
        assert c.loss.reduction == "mean" and c.optim.momentum == 0.9
        assert c.optim.weight_decay == 5e-4 and c.optim.bias_lr_mult == 2.0
        assert c.schedule.name == "fixed" and not c.model.train_upsampling
        assert c.model.backbone_weights in PRETRAINED
        assert c.data.train["name"] == "sbd" and c.data.val["name"] == "seg11valid"


def test_override_parses_yaml_values_into_nested_fields() -> None:
    c = load_config("synthetic-fcn8s", ["optim.lr=1e-3", "train.iterations=5", "precision=bf16",
                                        "data.train.num_images=7", "data.scale_range=[0.5, 2]",
                                        "init=null"])
    assert c.optim.lr == pytest.approx(1e-3) and isinstance(c.optim.lr, float)
    assert c.train.iterations == 5 and c.precision == "bf16"
    assert c.data.train["num_images"] == 7
    assert c.data.scale_range == [0.5, 2]
    assert c.init is None


@pytest.mark.parametrize("override", ["optim.lrr=1", "optimizer.lr=1", "train.iterations.x=1"])
def test_unknown_override_key_is_an_error_naming_it(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        load_config("synthetic-fcn8s", [override])
    assert key.rsplit(".", 1)[0] in str(e.value)


def test_override_with_wrong_type_or_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.iterations"):
        load_config("synthetic-fcn8s", ["train.iterations=many"])
    with pytest.raises(ConfigError, match="precision"):
        load_config("synthetic-fcn8s", ["precision=fp8"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(config_from_dict({}), ["optim.lr"])


def test_unknown_recipe_and_unknown_yaml_field_are_errors() -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
        config_from_dict({"optim": {"learning_rate": 0.1}})


def test_cli_lists_recipes_and_rejects_a_bad_override(capsys: pytest.CaptureFixture,
                                                      tmp_path) -> None:
    from fcnseg.cli.main import main

    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SHIPPED)
    assert main(["train", "--recipe", "synthetic-fcn8s", "--out", str(tmp_path / "run"),
                 "--set", "optim.momentun=0.9"]) == 2
    assert "optim.momentun: unknown field" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["data.num_workers=many", "data.num_workers=-1",
                                      "channels_last=sometimes"])
def test_workers_and_channels_last_take_auto_values_or_say_what_is_wrong(override) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config("synthetic-fcn8s", [override])
    config = load_config("synthetic-fcn8s", ["data.num_workers=auto", "channels_last=null"])
    assert config.data.num_workers == "auto" and config.channels_last is None


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 0), (4, 1), (8, 3), (64, 4)])
def test_auto_workers_leave_two_cores_to_the_model(cpus: int, workers: int) -> None:
    from fcnseg.engine.setup import loader_workers

    assert loader_workers("auto", cpus=cpus) == workers
    assert loader_workers(3, cpus=cpus) == 3


def test_a_recipe_with_a_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path) -> None:
    from fcnseg.engine.config import load_recipe

    (tmp_path / "mine.yaml").write_text("name: mine\ntrain: {iterations: 10\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(tmp_path / "mine.yaml")
    message = str(e.value)
    assert "\n" not in message and "mine.yaml: not valid YAML (line 3, column 1" in message
    assert "started at line 2, column 8" in message


@pytest.mark.parametrize(("amp", "precision"), [("none", "fp32"), ("bf16", "bf16"),
                                                ("fp16", "fp16")])
def test_a_recipe_in_the_older_amp_spelling_reads_as_precision(tmp_path, amp, precision) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(f"name: old\namp: {amp}\n")
    assert load_config(path).precision == precision
    assert config_from_dict({"amp": amp}).precision == precision
    assert load_config("synthetic-fcn8s", [f"amp={amp}"]).precision == precision


def test_precision_takes_the_four_words_and_amp_only_its_own() -> None:
    for word in ("auto", "fp32", "bf16", "fp16"):
        assert load_config("synthetic-fcn8s", [f"precision={word}"]).precision == word
    for word in ("none", "off", "float32", "bfloat16"):
        with pytest.raises(ConfigError, match="precision"):
            load_config("synthetic-fcn8s", [f"precision={word}"])
    with pytest.raises(ConfigError, match="amp: 'fp32' is not one of none, bf16, fp16"):
        config_from_dict({"amp": "fp32"})


def test_amp_and_precision_that_disagree_are_refused() -> None:
    with pytest.raises(ConfigError, match="amp: 'bf16' contradicts precision: 'fp32'"):
        config_from_dict({"amp": "bf16", "precision": "fp32"})
    assert config_from_dict({"amp": "none", "precision": "fp32"}).precision == "fp32"


def test_an_unknown_section_in_an_override_lists_the_known_fields_sorted() -> None:
    with pytest.raises(ConfigError) as e:
        load_config("synthetic-fcn8s", ["optimm.lr=1"])
    message = str(e.value)
    assert message.startswith("optimm: unknown field; known: ")
    known = message.split("known: ", 1)[1].split(", ")
    assert known == sorted(known) and "optim" in known


def test_a_scale_range_given_from_python_as_a_tuple_is_accepted() -> None:
    config = load_config({"data": {"train": {"name": "synthetic"}, "scale_range": (0.5, 2.0)}})
    assert tuple(config.data.scale_range) == (0.5, 2.0)
    with pytest.raises(ConfigError, match=r"data\.scale_range: expected \[min, max\]"):
        load_config({"data": {"train": {"name": "synthetic"}, "scale_range": (0.5, 1.0, 2.0)}})


def test_a_recipe_nested_thousands_deep_is_one_line_naming_it(tmp_path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: not valid YAML (nested too deeply)"


@pytest.mark.parametrize("overrides", [["precision=fp32", "amp=bf16"],
                                       ["amp=bf16", "precision=fp32"]])
def test_overrides_setting_amp_and_precision_apart_are_refused_in_one_line(overrides) -> None:
    with pytest.raises(ConfigError) as e:
        load_config("synthetic-fcn8s", overrides)
    assert str(e.value) == ("override 'amp=bf16' contradicts override 'precision=fp32' (amp is "
                            "the older spelling of precision; keep only precision)")


def test_an_amp_override_is_noted_once_as_the_older_spelling_of_precision() -> None:
    with pytest.warns(UserWarning, match=r"override 'amp=none': amp is now spelled precision "
                                         r"\(amp: none is read as precision: fp32"):
        config = load_config("synthetic-fcn8s", ["amp=none", "precision=fp32"])
    assert config.precision == "fp32"
