"""One CLI: every option explained, defaults shown one way, the same spelling in every command."""

from __future__ import annotations

import argparse
import re

import pytest

from fcnseg.cli.main import build_parser, main
from fcnseg.cli.options import DeprecatedAlias, HelpFormatter


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = sorted(_commands())


def _options(command: str) -> list[argparse.Action]:
    return [a for a in _commands()[command]._actions if not isinstance(a, argparse._HelpAction)]


def _help_text(command: str, action: argparse.Action) -> str:
    return HelpFormatter(command)._expand_help(action)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(command) -> None:
    for action in _options(command):
        name = "/".join(action.option_strings) or action.dest
        if isinstance(action, DeprecatedAlias):  # an older spelling, hidden on purpose
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{command} {name}: no help"


@pytest.mark.parametrize("command", COMMANDS)
def test_defaults_are_shown_one_way(command) -> None:
    for action in _options(command):
        if isinstance(action, DeprecatedAlias):
            continue
        name = "/".join(action.option_strings) or action.dest
        text = _help_text(command, action)
        assert not re.search(r"\(default(?!: )|\[default|\[\w[^\]]*\]$|default \d", text), \
            f"{command} {name}: {text!r} gives its default another way than '(default: X)'"
        if action.default not in (None, False, [], ()) and action.nargs != 0:
            assert "(default: " in text, f"{command} {name}: default {action.default!r} unshown"


def test_device_defaults_to_auto_in_every_command() -> None:
    with_device = {}
    for command in COMMANDS:
        for action in _options(command):
            if "--device" in action.option_strings:
                with_device[command] = action.default
    assert set(with_device) >= {"predict", "evaluate", "serve", "bench"}
    assert set(with_device.values()) == {"auto"}, with_device


def test_one_spelling_for_the_worker_count_and_the_dataset_config() -> None:
    spellings: dict[str, set[str]] = {}
    for command in COMMANDS:
        for action in _options(command):
            if not isinstance(action, DeprecatedAlias):
                for option in action.option_strings:
                    spellings.setdefault(option, set()).add(command)
    assert "--workers" not in spellings
    assert {"evaluate", "check-data"} <= spellings["--num-workers"]
    assert {"evaluate", "check-data"} <= spellings["--config"]


def test_an_older_spelling_still_works_with_a_note(capsys) -> None:
    args = build_parser().parse_args(["check-data", "--dataset", "synthetic", "--workers", "2"])
    assert args.workers == 2
    assert "--workers is now spelled --num-workers" in capsys.readouterr().err
    args = build_parser().parse_args(["evaluate", "--checkpoint", "x.pt", "--workers", "3"])
    assert args.num_workers == 3


@pytest.mark.parametrize("command", COMMANDS)
def test_help_prints(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: fcnseg " + command in capsys.readouterr().out


def test_set_takes_several_fields_after_one_flag() -> None:
    args = build_parser().parse_args(["train", "--recipe", "r", "--out", "o", "--set", "a=1",
                                      "b.c=x", "--set", "d=[1, 2]"])
    assert args.overrides == ["a=1", "b.c=x", "d=[1, 2]"]


def test_a_misspelt_option_names_the_one_meant(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--chekpoint", "best.pt", "a.png", "--out", "preds"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized option --chekpoint; did you mean --checkpoint?" in err
    with pytest.raises(SystemExit):
        main(["info", "--jsn=1"])
    assert "did you mean --json?" in capsys.readouterr().err


def test_an_abbreviated_option_is_refused_naming_the_option_in_full(
        tmp_path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["info", "--check", str(tmp_path / "none.pt")])
    assert exited.value.code == 2
    assert ("unrecognized option --check; did you mean --checkpoint? (options are written "
            "in full)") in capsys.readouterr().err


def test_check_datas_data_option_is_not_taken_for_dataset() -> None:
    args = build_parser().parse_args(["check-data", "--dataset", "labelme", "--root", "r",
                                      "--data", "labels=labels.txt"])
    assert args.dataset == "labelme" and args.data == ["labels=labels.txt"]


def test_no_parser_takes_abbreviated_options() -> None:
    assert not build_parser().allow_abbrev
    assert [name for name, sub in _commands().items() if sub.allow_abbrev] == []


@pytest.mark.parametrize(("option", "message"), [
    (["--tta-scales", "big"], "--tta-scales: expected numbers like 0.75 1 1.25, got ['big'] "
                              "(give the inputs before --tta-scales, or the scales as "
                              "0.75,1,1.25)"),
    (["--coverage", "0.5,most"], "--coverage: expected fractions like 0.5 0.9, got "
                                 "['0.5,most']"),
    (["--coverage", "0"], "--coverage: fractions must be in (0, 1], got ['0']"),
])
def test_a_number_list_that_is_not_one_is_refused_before_any_file_is_read(
        tmp_path, capsys: pytest.CaptureFixture, option, message) -> None:
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), *option]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate", "bench"])
def test_a_device_torch_does_not_know_is_refused_naming_the_option(command, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--device", "gpu"])
    assert stop.value.code == 2
    assert "argument --device: 'gpu' is not a device" in capsys.readouterr().err
