"""dataset.yaml and split lists with wrong types or bytes: one clear error naming file and field.

Each case is checked through the dataset constructor and through ``fcnseg check-data`` (one
line on stderr, exit status 2, no traceback).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation, build_dataset


def _write(root, files: dict[bytes, bytes]) -> None:
    """Write ``files`` ({path relative to root, as bytes: content}) plus one good sample."""
    for folder in ("images", "masks"):
        (root / folder).mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / "a.png")
    for relative, content in files.items():
        with open(os.fsencode(root) + b"/" + relative, "wb") as f:
            f.write(content)


def _yaml(text: bytes) -> dict[bytes, bytes]:
    return {b"dataset.yaml": b"classes: [bg, fg]\n" + text}


# (id, files, split for the constructor, what the message must contain; check-data's where it
# differs: it reads the whole images folder first, so it names a file there)
CASES = [
    ("ignore_index-list", _yaml(b"ignore_index: [1]\n"), None,
     "dataset.yaml: ignore_index: expected an integer mask value (e.g. 255), got [1]"),
    ("ignore_index-text", _yaml(b"ignore_index: abc\n"), None,
     "dataset.yaml: ignore_index: expected an integer mask value (e.g. 255), got 'abc'"),
    ("ignore_index-no-mask-value", _yaml(b"ignore_index: 70000\n"), None,
     "dataset.yaml: ignore_index: 70000 is no mask value: masks hold 0-255 (8-bit) or "
     "0-65535 (16-bit)"),
    ("ignore_index-above-8-bit", _yaml(b"ignore_index: 2555\n"), None,
     "dataset.yaml: ignore_index: 2555 cannot occur in 8-bit masks (values 0-255) such as "),
    ("remap-text-key", _yaml(b"remap: {abc: 1}\n"), None,
     "dataset.yaml: remap: expected integer raw mask values (or 'other': every value not "
     "listed) mapped to integer class indices or 'ignore'"),
    ("remap-other-text-value", _yaml(b"remap: {7: 1, other: void}\n"), None,
     "dataset.yaml: remap: expected integer raw mask values (or 'other': every value not "
     "listed) mapped to integer class indices or 'ignore', e.g. {255: 1} for 0/255 binary "
     "masks, {7: 1, other: ignore}; got 'other': 'void'"),
    ("colors-text-entry", _yaml(b"colors: [[0, 0, 0], [1, 2, x]]\n"), None,
     "dataset.yaml: colors[1]: expected an [r, g, b] colour of integers in 0-255, "
     "got [1, 2, 'x']"),
    ("splits-list", {**_yaml(b"splits: [train.txt]\n"), b"train.txt": b"a\n"}, "train",
     "dataset.yaml: splits: expected a mapping of split names to list files"),
    ("yaml-syntax", _yaml(b"bands: [red, green\n"), None,
     "dataset.yaml: not valid YAML: line 3, column 1: expected ',' or ']', but got "
     "'<stream end>' (while parsing a flow sequence started at line 2, column 8)"),
    ("yaml-not-utf8", {b"dataset.yaml": b"classes: [bg, caf\xe9]\n"}, None,
     "dataset.yaml: line 1: byte 0xe9 is not UTF-8"),
    ("split-list-not-utf8", {**_yaml(b""), b"train.txt": b"a\n# caf\xe9\n"}, "train",
     "train.txt: line 2: byte 0xe9 is not UTF-8"),
    ("listed-name-not-utf8",
     {**_yaml(b""), b"train.txt": b"caf\xe9\n", b"images/caf\xe9.png": b"",
      b"masks/caf\xe9.png": b""},
     "train", "train.txt: line 1: byte 0xe9 is not UTF-8: the split list must be UTF-8 text, "
              "file names included",
     "images: file name b'caf\\xe9.png' is not UTF-8: rename it"),
    ("file-name-not-utf8", {**_yaml(b""), b"images/caf\xe9.png": b""}, None,
     "images: file name b'caf\\xe9.png' is not UTF-8: rename it"),
]


@pytest.mark.parametrize(("files", "split", "message"), [c[1:4] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_dataset_constructor_names_file_field_and_expectation(tmp_path, files, split, message):
    _write(tmp_path, files)
    with pytest.raises(ValueError) as info:
        FolderSegmentation(tmp_path, split)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("files", "message"), [(c[1], c[-1]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_check_data_reports_it_in_one_line(tmp_path, capsys, files, message):
    _write(tmp_path, files)
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnseg check-data: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert message in err


def test_training_does_not_ignore_a_split_list_given_as_a_list(tmp_path):
    _write(tmp_path, {**_yaml(b"splits: [train.txt]\n"), b"train.txt": b"a\n"})
    with pytest.raises(ValueError, match="dataset.yaml: splits: expected a mapping"):
        build_dataset({"name": "folder", "root": str(tmp_path)}, split="train")


def test_keyword_arguments_are_checked_like_the_yaml(tmp_path):
    _write(tmp_path, {})
    with pytest.raises(ValueError, match="FolderSegmentation argument: ignore_index: expected an "
                                         "integer mask value"):
        FolderSegmentation(tmp_path, classes=["bg", "fg"], ignore_index="255")


def test_an_ignore_index_above_255_is_taken_for_16_bit_masks(tmp_path) -> None:
    _write(tmp_path, _yaml(b"ignore_index: 2555\n"))
    Image.fromarray(np.array([[0, 1], [2555, 1]], np.uint16)).save(tmp_path / "masks" / "a.png")
    label = FolderSegmentation(tmp_path).read_label(0)
    assert label.tolist() == [[0, 1], [2555, 1]]
