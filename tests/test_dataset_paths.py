"""Where a checkpoint's relative dataset paths are found: the current folder, the folder its
run folder lies in, the folder training ran in (recorded)."""

from __future__ import annotations

import pytest

from fcnseg.dataset_paths import recipe_paths_found, training_folders


def _checkpoint(tmp_path, run="moved/runs/r1", trained_in="old"):
    """A checkpoint of ``out: runs/r1`` lying in ``tmp_path/run``, trained in ``trained_in``."""
    return {"recipe": {"out": "runs/r1"}, "path": str(tmp_path / run / "best.pt"),
            "trained_in": str(tmp_path / trained_in)}


def test_the_run_folders_location_comes_before_the_recorded_training_folder(tmp_path) -> None:
    assert training_folders(_checkpoint(tmp_path)) == [tmp_path / "moved", tmp_path / "old"]
    assert training_folders(_checkpoint(tmp_path, run="copies")) == [tmp_path / "old"]


def test_a_relative_path_is_taken_from_the_current_folder_first(tmp_path, monkeypatch) -> None:
    for folder in ("here", "moved", "old"):
        (tmp_path / folder / "data" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    folders = training_folders(_checkpoint(tmp_path))
    spec = {"name": "folder", "root": "data/mine"}
    assert recipe_paths_found(spec, folders, source="best.pt") == spec
    (tmp_path / "here" / "data" / "mine").rmdir()
    assert recipe_paths_found(spec, folders, source="best.pt")["root"] == \
        str(tmp_path / "moved" / "data" / "mine")
    (tmp_path / "moved" / "data" / "mine").rmdir()
    assert recipe_paths_found(spec, folders, source="best.pt")["root"] == \
        str(tmp_path / "old" / "data" / "mine")


def test_a_root_found_nowhere_names_every_folder_it_was_looked_for_in(
        tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folders = training_folders(_checkpoint(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        recipe_paths_found({"name": "folder", "root": "data/mine"}, folders, source="best.pt")
    assert str(e.value) == (
        f"root from best.pt's recipe: data/mine is not in {tmp_path}, the folder relative "
        f"paths are taken from (nor in {tmp_path / 'moved'} or {tmp_path / 'old'}, where the "
        f"checkpoint was trained); pass --data root=DIR with the dataset's folder")
