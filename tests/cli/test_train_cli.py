"""``fcnseg train``: what the command line says about a recipe's data fields."""

import pytest

from fcnseg.cli.main import main


def test_a_missing_data_root_names_the_recipe_field_and_how_to_set_it(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)  # the recipe's placeholder root data/mine is not there
    rc = main(["train", "--recipe", "folder-cpu", "--out", str(tmp_path / "run")])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fcnseg train: error: data.train.root: data/mine does not exist")
    assert "--set data.train.root=DIR data.val.root=DIR" in lines[0]


def test_a_bad_budget_names_the_option_it_came_from(tmp_path, capsys):
    rc = main(["train", "--recipe", "folder-cpu", "--out", str(tmp_path / "run"),
               "--budget", "5mn"])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fcnseg train: error: --budget: '5mn' is not a duration")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("reported_elsewhere", [False, True])
def test_a_lost_process_is_printed_only_by_the_process_that_reports_it(
        tmp_path, monkeypatch, capsys, reported_elsewhere):
    from fcnseg.cli import train as train_command
    from fcnseg.engine.errors import ProcessLost

    def lose_a_process(*args, **kwargs):
        raise ProcessLost("lost another of 3 training processes (...)",
                          reported_elsewhere=reported_elsewhere)

    monkeypatch.setattr(train_command, "train", lose_a_process)
    rc = main(["train", "--recipe", "folder-cpu", "--out", str(tmp_path / "run")])
    assert rc == 2
    out = capsys.readouterr()
    expected = [] if reported_elsewhere else \
        ["fcnseg train: error: lost another of 3 training processes (...)"]
    assert out.err.splitlines() == expected and out.out == ""


@pytest.mark.parametrize("where", ["notes.txt", "notes.txt/run"])
def test_a_run_folder_that_cannot_be_made_is_one_line_before_the_data_is_read(
        where, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    from fcnseg.cli import train as train_command

    monkeypatch.setattr(train_command, "train", lambda *a, **k: pytest.fail("trained"))
    rc = main(["train", "--recipe", "synthetic-fcn8s", "--out", str(tmp_path / where)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"fcnseg train: error: output folder {tmp_path / where}: ")
