"""``fcnseg check-data``: what it says when a dataset's splits cannot be found."""

from __future__ import annotations

import pytest

from fcnseg.cli.main import main


def test_sbd_without_split_lists_names_the_missing_files(tmp_path, capsys) -> None:
    for folder in ("cls", "img"):
        (tmp_path / folder).mkdir()
    assert main(["check-data", "--dataset", "sbd", "--root", str(tmp_path)]) == 2
    assert f"{tmp_path} has neither train.txt nor val.txt" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["voc", "sbd", "nyud", "cityscapes"])
def test_a_dataset_read_from_a_folder_needs_root(dataset, capsys) -> None:
    assert main(["check-data", "--dataset", dataset]) == 2
    assert f"--root is required for --dataset {dataset}" in capsys.readouterr().err


def test_seg11valid_needs_both_roots(tmp_path, capsys) -> None:
    assert main(["check-data", "--dataset", "seg11valid", "--voc-root", str(tmp_path)]) == 2
    assert "--sbd-root is required for --dataset seg11valid" in capsys.readouterr().err
