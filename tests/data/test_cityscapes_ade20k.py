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


def test_check_data_warns_of_a_cityscapes_mask_without_its_image(tmp_path: Path, capsys) -> None:
    write_cityscapes(tmp_path)
    (tmp_path / "leftImg8bit/val/lindau/lindau_000000_000011_leftImg8bit.png").unlink()
    assert main(["check-data", "--dataset", "cityscapes", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    orphan = tmp_path / "gtFine/val/lindau/lindau_000000_000011_gtFine_labelIds.png"
    assert f"warning: {orphan}: mask without an image (not used)" in out
    assert out.count("mask without an image") == 1


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


#: A street scene in label ids (sky 23, building 11, road 7, car 26, pole 17, ego vehicle 1).
_SCENE_LABEL_IDS = np.array([[23, 23, 23, 23, 23, 23, 23, 23],
                             [11, 11, 11, 11, 11, 17, 23, 23],
                             [7, 7, 7, 26, 26, 17, 7, 7],
                             [1, 1, 1, 1, 1, 1, 1, 1]], np.uint8)


def _train_ids(label_ids: np.ndarray) -> np.ndarray:
    table = np.full(256, 255, np.uint8)
    table[[7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]] = range(19)
    return table[label_ids]


def write_scenes(root: Path, label_ids_file_holds_train_ids: bool = False) -> None:
    """Two val images with both masks, as createTrainIdLabelImgs.py leaves them: the labelIds
    mask (or, the mix-up, the train-id mask saved under its name) and the labelTrainIds one."""
    for k in range(2):
        folder = root / "gtFine" / "val" / "lindau"
        folder.mkdir(parents=True, exist_ok=True)
        (root / "leftImg8bit" / "val" / "lindau").mkdir(parents=True, exist_ok=True)
        stem = f"lindau_000000_00001{k}"
        Image.new("RGB", (8, 4)).save(root / "leftImg8bit" / "val" / "lindau" /
                                      f"{stem}_leftImg8bit.png")
        train_ids = _train_ids(_SCENE_LABEL_IDS)
        ids = train_ids if label_ids_file_holds_train_ids else _SCENE_LABEL_IDS
        Image.fromarray(ids).save(folder / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(train_ids).save(folder / f"{stem}_gtFine_labelTrainIds.png")


def test_labels_train_ids_reads_the_label_train_ids_masks_as_they_are(tmp_path: Path) -> None:
    write_scenes(tmp_path)
    by_ids = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    by_train_ids = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val",
                                  "labels": "train_ids"})
    assert by_train_ids.label_path(0).name == "lindau_000000_000010_gtFine_labelTrainIds.png"
    np.testing.assert_array_equal(by_train_ids[0][1], by_ids[0][1])
    assert by_train_ids[0][1][2, 3] == CITYSCAPES_CLASSES.index("car")


def test_a_train_id_mask_saved_as_label_ids_is_one_line_naming_the_option(
        tmp_path: Path) -> None:
    write_scenes(tmp_path, label_ids_file_holds_train_ids=True)
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    with pytest.raises(DataError) as info:
        ds[0]
    assert info.value.path == str(ds.label_path(0))
    assert "train ids" in info.value.problem and "`labels: train_ids`" in info.value.problem
    assert "\n" not in str(info.value)


def test_a_train_id_mask_without_255_saved_as_label_ids_is_refused(tmp_path: Path) -> None:
    # A crop above the ego vehicle: train ids 0-18 only, road (0) and building (2) the most,
    # which read as label ids are unlabeled and rectification border.
    write_scenes(tmp_path)
    scene = _SCENE_LABEL_IDS.copy()
    scene[3] = 7  # road where the ego vehicle was
    train_ids = _train_ids(scene)
    assert train_ids.max() <= 18
    mask = tmp_path / "gtFine" / "val" / "lindau" / "lindau_000000_000010_gtFine_labelIds.png"
    Image.fromarray(train_ids).save(mask)
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    with pytest.raises(DataError) as info:
        ds[0]
    assert info.value.path == str(mask)
    assert info.value.problem.startswith(
        "looks like train ids saved under the labelIds name (only values 0-18, 56% of its "
        "pixels unlabeled, rectification border or out of roi as label ids: road, building "
        "and wall as train ids)")
    assert "`labels: train_ids`" in info.value.problem


def test_check_data_reports_train_id_masks_saved_as_label_ids(tmp_path: Path, capsys) -> None:
    write_scenes(tmp_path, label_ids_file_holds_train_ids=True)
    assert main(["check-data", "--dataset", "cityscapes", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 1
    out = capsys.readouterr().out
    assert "no problems found" not in out
    lines = [line for line in out.splitlines() if "lindau_000000_000010_gtFine_labelIds" in line]
    assert len(lines) == 1 and "labels train_ids" in lines[0]


def test_check_data_labels_train_ids_reads_the_label_train_ids_masks(tmp_path: Path,
                                                                      capsys) -> None:
    write_scenes(tmp_path, label_ids_file_holds_train_ids=True)
    assert main(["check-data", "--dataset", "cityscapes", "--root", str(tmp_path),
                 "--labels", "train_ids", "--num-workers", "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_label_ids_of_a_street_scene_or_all_void_are_not_taken_for_train_ids(
        tmp_path: Path) -> None:
    write_scenes(tmp_path)
    void = np.zeros((4, 8), np.uint8)  # the test split's masks: all void
    void[3] = 1
    Image.fromarray(void).save(tmp_path / "gtFine" / "val" / "lindau" /
                               "lindau_000000_000011_gtFine_labelIds.png")
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    assert (ds[0][1] != 255).sum() == 24 and (ds[1][1] == 255).all()


def test_label_ids_of_a_scene_under_a_bridge_are_not_taken_for_train_ids(
        tmp_path: Path) -> None:
    # Bridge (15), guard rail (14), tunnel (16), ego vehicle (1): void as label ids, with only
    # road (7) and a wall (12) to learn from and no value above 18, but no 255 either.
    write_scenes(tmp_path)
    under_bridge = np.array([[15] * 8, [16, 16, 12, 12, 15, 15, 15, 15],
                             [14, 7, 7, 7, 7, 7, 7, 14], [1] * 8], np.uint8)
    Image.fromarray(under_bridge).save(tmp_path / "gtFine" / "val" / "lindau" /
                                       "lindau_000000_000010_gtFine_labelIds.png")
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val"})
    label = ds[0][1]
    assert (label == CITYSCAPES_CLASSES.index("road")).sum() == 6
    assert (label == CITYSCAPES_CLASSES.index("wall")).sum() == 2 and (label == 255).sum() == 24


def test_a_test_split_with_labels_of_its_own_is_not_refused_as_withheld(tmp_path: Path) -> None:
    # A folder in the Cityscapes layout whose test images are labelled (the user's own data);
    # the benchmark's test masks are all void (unlabeled, 0).
    for root, ids in (("own", _SCENE_LABEL_IDS), ("benchmark", np.zeros((4, 8), np.uint8))):
        for kind, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
            folder = tmp_path / root / kind / "test" / "berlin"
            folder.mkdir(parents=True)
            picture = Image.new("RGB", (8, 4)) if kind == "leftImg8bit" else Image.fromarray(ids)
            picture.save(folder / f"berlin_000000_000019_{suffix}.png")
    own = build_dataset({"name": "cityscapes", "root": str(tmp_path / "own"), "split": "test"})
    assert own.labels_withheld is None
    benchmark = build_dataset({"name": "cityscapes", "root": str(tmp_path / "benchmark"),
                               "split": "test"})
    assert "test labels are withheld (all void)" in benchmark.labels_withheld


def test_label_ids_read_as_train_ids_name_the_other_option(tmp_path: Path) -> None:
    write_scenes(tmp_path)
    for mask in (tmp_path / "gtFine" / "val" / "lindau").glob("*_labelIds.png"):
        mask.replace(str(mask).replace("_labelIds", "_labelTrainIds"))
    ds = build_dataset({"name": "cityscapes", "root": str(tmp_path), "split": "val",
                        "labels": "train_ids"})
    with pytest.raises(DataError, match=r"_labelTrainIds\.png: .*23, 26 .*labels: label_ids"):
        ds[0]


def test_an_unknown_labels_value_is_one_line_naming_both(tmp_path: Path) -> None:
    write_scenes(tmp_path)
    with pytest.raises(ValueError, match=r"^dataset\.labels: expected label_ids .* or "
                                         r"train_ids .*got 'trainIds'$"):
        build_dataset({"name": "cityscapes", "root": str(tmp_path), "labels": "trainIds"})
