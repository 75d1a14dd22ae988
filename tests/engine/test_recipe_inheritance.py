"""Recipes inherit: ``base: NAME`` and then only what differs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fcnseg.cli.main import main
from fcnseg.engine.config import (
    ConfigError,
    config_to_dict,
    list_recipes,
    load_config,
    load_recipe,
    recipe_path,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = set()
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and prefix == "":
            keys |= _differences(x, y, f"{key}.")
        elif x != y:
            keys.add(f"{prefix}{key}")
    return keys


def test_a_recipe_states_only_what_differs_from_its_base(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: voc-fcn32s\nname: mine\noptim: {lr: 1.0e-11}\n")
    base, config = load_config("voc-fcn32s"), load_config(mine)
    assert config.optim.lr == 1e-11
    assert config.optim.momentum == base.optim.momentum == 0.99  # merged field by field
    assert config.model == base.model and config.data == base.data
    # published is the base's own score, not inherited
    assert _differences(config_to_dict(base), config_to_dict(config)) == {
        "name", "optim.lr", "published"}


def test_a_recipe_file_without_a_name_is_named_by_its_file_not_its_base(tmp_path) -> None:
    mine = _write(tmp_path / "my-cpu.yaml", "base: folder-cpu\ntrain: {iterations: 3}\n")
    assert load_config(mine).name == "my-cpu"
    assert load_recipe(mine)["name"] == "my-cpu"


def test_a_dataset_spec_replaces_the_bases_whole(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml",
                  "base: voc-fcn32s\ndata: {train: {name: folder, root: data/mine}}\n")
    config = load_config(mine)
    assert config.data.train == {"name": "folder", "root": "data/mine"}  # no SBD "split"
    assert config.data.val == load_config("voc-fcn32s").data.val


def test_null_sets_an_inherited_field_to_null(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: voc-fcn32s\nmodel: {backbone_weights: null}\n")
    assert load_config(mine).model.backbone_weights is None


def test_bases_chain_and_relative_paths_start_at_the_recipes_folder(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "first.yaml", "base: voc-fcn16s\ntrain: {iterations: 7}\n")
    mine = _write(tmp_path / "mine.yaml", "base: sub/first.yaml\noptim: {lr: 0.5}\n")
    config = load_config(mine)
    assert (config.train.iterations, config.optim.lr) == (7, 0.5)
    assert config.model.arch == "fcn16s" and config.init == "runs/voc-fcn32s/best.pt"
    assert config.train.eval_every == 4000  # from voc-fcn32s, two bases up


def test_a_base_chain_that_loops_is_one_line_naming_the_recipe(tmp_path) -> None:
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(tmp_path / "a.yaml")
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "a.yaml"))
    assert "comes back" in message and "b.yaml" in message


def test_a_recipe_that_is_its_own_base_is_refused(tmp_path) -> None:
    _write(tmp_path / "self.yaml", "base: self.yaml\n")
    with pytest.raises(ConfigError, match="comes back"):
        load_recipe(tmp_path / "self.yaml")


def test_an_unknown_base_is_one_line_naming_the_recipe_and_the_base(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: voc-fcn99s\n")
    with pytest.raises(ConfigError) as e:
        load_config(mine)
    message = str(e.value)
    assert "\n" not in message and "mine.yaml" in message and "'voc-fcn99s'" in message
    assert "unknown recipe" in message


def test_a_recipe_given_as_a_mapping_inherits_too() -> None:
    config = load_config({"base": "voc-fcn8s", "name": "x", "train": {"iterations": 3}})
    assert config.model.arch == "fcn8s" and config.optim.lr == 1e-14
    assert config.train.iterations == 3


def test_voc_fcn16s_is_voc_fcn32s_staged_to_16s() -> None:
    fcn32s, fcn16s = load_config("voc-fcn32s"), load_config("voc-fcn16s")
    assert _differences(config_to_dict(fcn32s), config_to_dict(fcn16s)) == {
        "name", "published.mean_iu", "published.also", "model.arch", "model.backbone_weights",
        "init", "optim.lr"}
    assert (fcn16s.model.arch, fcn16s.optim.lr, fcn16s.init) == (
        "fcn16s", 1e-12, "runs/voc-fcn32s/best.pt")
    assert fcn16s.model.backbone_weights is None


def test_shipped_recipes_state_their_differences_only() -> None:
    # Every shipped recipe but the few roots starts from another and is short.
    roots = []
    for name in list_recipes():
        written = yaml.safe_load(recipe_path(name).read_text(encoding="utf-8"))
        if "base" not in written:
            roots.append(name)
        assert load_recipe(name)["name"] == name
    assert sorted(roots) == ["synthetic-fcn32s", "voc-fcn32s"]


def test_recipes_show_prints_the_resolved_recipe(capsys) -> None:
    assert main(["recipes", "--show", "voc-fcn8s"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == load_recipe("voc-fcn8s") and "base" not in shown
    assert shown["optim"]["momentum"] == 0.99 and shown["model"]["arch"] == "fcn8s"


def test_a_recipe_in_the_older_amp_spelling_overrides_its_bases_precision(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: voc-fcn8s-modern\namp: none\n")
    assert load_config("voc-fcn8s-modern").precision == "bf16"
    assert load_config(mine).precision == "fp32"


def test_a_missing_base_file_is_named_as_written_not_as_a_path_object(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: nothere.yaml\n")
    with pytest.raises(ConfigError) as e:
        load_config(mine)
    message = str(e.value)
    assert message == f"{mine}: base: {tmp_path / 'nothere.yaml'}: no such recipe file"


def test_a_recipe_does_not_inherit_its_bases_published_score(tmp_path) -> None:
    mine = _write(tmp_path / "mine.yaml", "base: voc-fcn16s\nname: mine\nmodel: {arch: fcn8s}\n")
    assert "published" not in load_recipe(mine)
    assert load_config(mine).published is None


def test_each_shipped_recipe_carries_the_published_score_its_own_file_states() -> None:
    for name in list_recipes():
        written = yaml.safe_load(recipe_path(name).read_text(encoding="utf-8"))
        assert load_config(name).published == written.get("published"), name
