"""``fcnseg recipes``: every ``--set`` example it prints works when typed as shown."""

from __future__ import annotations

import re
import shlex

import yaml

from fcnseg.cli.main import build_parser, main
from fcnseg.engine import load_config
from fcnseg.engine.config import load_recipe


def _printed_commands(text: str) -> list[list[str]]:
    """The ``fcnseg train`` command lines the listing shows: the usage lines, and each
    recipe's ``(--set ...)`` hint as part of a command training that recipe."""
    text = text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        hint = re.search(r"\((--set [^)]*)\)", line)
        if hint:
            name = line.split()[0]
            commands.append(["train", "--recipe", name, "--out", "runs/x",
                             *shlex.split(hint.group(1))])
        elif "fcnseg train" in line:
            commands.append(shlex.split(line.split("fcnseg ", 1)[1]))
        elif "--set" in line:  # a bare example of values: on the default recipe
            commands.append(["train", "--recipe", "synthetic-fcn8s", "--out", "runs/x",
                             *shlex.split(line[line.index("--set"):])])
    return commands


def test_every_set_example_parses_and_sets_real_fields(capsys, tmp_path) -> None:
    assert main(["recipes"]) == 0
    commands = _printed_commands(capsys.readouterr().out)
    with_set = [argv for argv in commands if "--set" in argv]
    assert len(with_set) >= 4, commands  # the usage lines and the recipes' hints
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert args.command == "train"
        for override in args.overrides:
            assert re.fullmatch(r"[\w.]+=\S*", override), (argv, override)
        load_config(args.recipe, args.overrides, out=str(tmp_path))  # unknown fields raise


def test_the_listing_shows_each_recipes_published_mean_iu(capsys) -> None:
    assert main(["recipes"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
             if line and not line.startswith(" ")}
    assert "63.6 mean IU (seg11valid)" in lines["voc-fcn32s"]
    assert "65.5 mean IU (seg11valid)" in lines["voc-fcn8s"]
    assert lines["synthetic-fcn8s"].split()[1] == "-"


def test_a_recipes_published_block_is_kept_in_its_config() -> None:
    config = load_config("voc-fcn16s")
    assert config.published["mean_iu"] == 65.0
    assert config.published["split"] == "seg11valid"


def test_show_checks_a_recipe_files_fields_as_train_does(tmp_path, capsys) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("base: synthetic-fcn8s\noptim:\n  lr: fast\n", encoding="utf-8")
    assert main(["recipes", "--show", str(recipe)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and str(recipe) in err and "optim.lr" in err


def test_show_names_the_base_chain_in_a_first_comment_line(tmp_path, capsys) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: voc-fcn8s\nname: mine\n", encoding="utf-8")
    assert main(["recipes", "--show", str(mine)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"# {mine}: base voc-fcn8s <- voc-fcn16s <- voc-fcn32s"
    assert yaml.safe_load(out) == load_recipe(mine)


def test_show_says_a_recipe_without_a_base_has_none(capsys) -> None:
    assert main(["recipes", "--show", "voc-fcn32s"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "# voc-fcn32s: no base"
    assert yaml.safe_load(out) == load_recipe("voc-fcn32s")


def test_a_recipe_in_the_older_amp_spelling_gets_one_note_naming_precision(tmp_path,
                                                                          capsys) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("base: synthetic-fcn8s\namp: bf16\n", encoding="utf-8")
    assert main(["recipes", "--show", str(old)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"fcnseg recipes: warning: {old}: amp is now spelled precision (amp: bf16 is read as "
        f"precision: bf16; write that instead)"]
    assert yaml.safe_load(captured.out)["precision"] == "bf16"
