"""Cityscapes and ADE20K SceneParsing read from their own layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.ade20k import ADE20K, ADE20K_CLASSES, ADE20K_PALETTE
from fcnseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, Cityscapes
from fcnseg.data.errors import DataError


def write_cityscapes(root: Path, extra: int | None = None, rgb: bool = False) -> None:
    for split, city in (("train", "aachen"), ("val", "lindau")):
        for k in range(2):
            stem = f"{city}_000000_00001{k}"
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 8)).save(root / "leftImg8bit" / split / city /
                                          f"{stem}_leftImg8bit.png")
            ids = np.zeros((8, 16), np.uint8)  # 0: unlabeled
            ids[:, 4:8] = 7  # road
            ids[:, 8:12] = 33  # bicycle
            ids[:, 12:] = 9  # parking: not evaluated
            if extra is not None:
                ids[0, 0] = extra
            mask = Image.fromarray(ids).convert("RGB") if rgb else Image.fromarray(ids)
            mask.save(root / "gtFine" / split / city /
                                      f"{stem}_gtFine_labelIds.png")


def test_cityscapes_label_ids_become_train_ids(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cityscapes")
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    assert len(ds) == 2 and ds.classes == CITYSCAPES_CLASSES and len(ds.classes) == 19
    assert ds.name(0) == "lindau_000000_000010"
    _, label = ds[0]
    assert (label[:, :4] == 255).all() and (label[:, 4:8] == 0).all()
    assert (label[:, 8:12] == 18).all() and (label[:, 12:] == 255).all()
    np.testing.assert_array_equal(ds.palette[:19], CITYSCAPES_PALETTE)


def test_check_data_reads_cityscapes(tmp_path: Path, capsys) -> None:
    write_cityscapes(tmp_path)
    assert main(["check-data", "--dataset", "cityscapes", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


def write_ade(root: Path, value: int = 150) -> None:
    for sub in ("training", "validation"):
        (root / "images" / sub).mkdir(parents=True)
        (root / "annotations" / sub).mkdir(parents=True)
        Image.new("RGB", (6, 4)).save(root / "images" / sub / "ADE_x_00000001.jpg")
        raw = np.zeros((4, 6), np.uint8)
        raw[:, 3:] = 1
        raw[0, 5] = value
        Image.fromarray(raw).save(root / "annotations" / sub / "ADE_x_00000001.png")


def test_ade20k_other_is_ignored_and_classes_shift_down(tmp_path: Path) -> None:
    write_ade(tmp_path / "ADEChallengeData2016")
    ds = build_dataset({"name": "ade20k", "root": str(tmp_path), "split": "val"})
    assert len(ADE20K_CLASSES) == 150 and ds.classes[0] == "wall" and ds.classes[-1] == "flag"
    _, label = ds[0]
    assert (label[:, :3] == 255).all() and label[1, 4] == 0 and label[0, 5] == 149
    assert ADE20K_PALETTE.shape == (150, 3) and tuple(ds.palette[0]) == (120, 120, 120)
    assert len({tuple(c) for c in ADE20K_PALETTE}) == 149  # one colour is used twice


def test_ade20k_value_above_150_is_a_data_error(tmp_path: Path) -> None:
    write_ade(tmp_path, value=151)
    with pytest.raises(DataError, match="ADE_x_00000001.png"):
        build_dataset({"name": "ade20k", "root": str(tmp_path)})[0]


def test_help_of_cityscapes_gives_the_label_mapping() -> None:
    doc = Cityscapes.__doc__ or ""
    assert "module docstring" not in doc
    for label_id, train_id, name in ((7, 0, "road"), (26, 13, "car"), (33, 18, "bicycle")):
        assert f"{label_id} → {train_id} {name}" in doc
    assert "255" in doc and "leftImg8bit" in doc


def test_help_of_ade20k_gives_the_label_mapping() -> None:
    doc = ADE20K.__doc__ or ""
    assert "module docstring" not in doc
    assert "k + 1" in doc and "255" in doc and "above 150" in doc


def test_ade20k_values_out_of_range_are_said_in_ade20ks_own_terms(tmp_path: Path) -> None:
    write_ade(tmp_path, value=200)
    with pytest.raises(DataError) as info:
        build_dataset({"name": "ade20k", "root": str(tmp_path)})[0]
    problem = info.value.problem
    assert "1-150" in problem and "200 (1 pixels)" in problem
    assert "dataset.yaml" not in problem and "ignore value 0" not in problem


def test_a_cityscapes_rgb_mask_gets_cityscapes_advice_not_dataset_yaml(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, rgb=True)
    with pytest.raises(DataError) as info:
        build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})[0]
    assert "RGB mask" in info.value.problem and "_gtFine_labelIds.png" in info.value.problem
    assert "dataset.yaml" not in str(info.value)


def test_cityscapes_values_that_are_no_label_id_are_a_data_error(tmp_path: Path) -> None:
    # As for ADE20K: a value the benchmark does not define means a wrong or damaged file.
    write_cityscapes(tmp_path, extra=40)
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    with pytest.raises(DataError, match=r"_gtFine_labelIds\.png: .*: 40 \(1 pixels\)\. .*0-33"):
        ds[0]


def test_cityscapes_255_is_the_license_plates_id_and_ignored(tmp_path: Path) -> None:
    # cityscapesScripts gives the license plate the label id -1: 255 in an 8-bit mask.
    write_cityscapes(tmp_path, extra=255)
    _, label = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})[0]
    assert label[0, 0] == 255


def test_check_data_reports_a_cityscapes_mask_of_no_label_ids(tmp_path: Path, capsys) -> None:
    write_cityscapes(tmp_path, extra=40)
    assert main(["check-data", "--dataset", "cityscapes", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 1
    assert "0-33" in capsys.readouterr().out


def test_cityscapes_ids_are_split_city_stem_and_name_both_files(tmp_path: Path) -> None:
    write_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "train")
    assert list(ds.ids) == ["train/aachen/aachen_000000_000010",
                            "train/aachen/aachen_000000_000011"]
    stem = "train/aachen/aachen_000000_000011"
    assert ds.image_path(1) == tmp_path / "leftImg8bit" / f"{stem}_leftImg8bit.png"
    assert ds.label_path(1) == tmp_path / "gtFine" / f"{stem}_gtFine_labelIds.png"


def test_a_split_without_its_image_folder_is_named(tmp_path: Path) -> None:
    write_cityscapes(tmp_path / "cs")
    write_ade(tmp_path / "ade")
    (tmp_path / "ade" / "images" / "validation" / "ADE_x_00000001.jpg").unlink()
    (tmp_path / "ade" / "images" / "validation").rmdir()
    with pytest.raises(FileNotFoundError, match=r"split 'test': .*leftImg8bit/test not found"):
        Cityscapes(tmp_path / "cs", "test")
    with pytest.raises(FileNotFoundError, match=r"split 'val': .*images/validation not found"):
        ADE20K(tmp_path / "ade", "val")
    assert list(ADE20K(tmp_path / "ade", "train").ids) == ["ADE_x_00000001"]
