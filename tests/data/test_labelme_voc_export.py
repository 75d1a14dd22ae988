"""labelme's VOC-style export (JPEGImages/ + SegmentationClass/ + class_names.txt, no
ImageSets/) read as ``--dataset voc`` and as a folder dataset that names its sub-folders."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.data import FolderSegmentation, build_dataset
from fcnseg.data.layout import say_once


def labelme_export(root: Path, count: int = 3) -> Path:
    """What ``labelme2voc.py`` writes: JPEG images, palette PNG masks (255 = __ignore__) and
    class_names.txt with __ignore__ first."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "SegmentationClassVisualization").mkdir()
    (root / "class_names.txt").write_text("__ignore__\n_background_\nSky\nCar")
    for n in range(count):
        image = np.full((24, 32, 3), 40 * n, np.uint8)
        Image.fromarray(image).save(root / "JPEGImages" / f"img{n}.jpg")
        mask = np.zeros((24, 32), np.uint8)
        mask[:8] = 1
        mask[10:20, 4:12] = 2
        mask[0, 0] = 255
        png = Image.fromarray(mask, mode="P")
        png.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
        png.save(root / "SegmentationClass" / f"img{n}.png")
    return root


@pytest.fixture(autouse=True)
def _forget_what_was_said():
    say_once.cache_clear()
    yield
    say_once.cache_clear()


def test_voc_without_split_lists_uses_every_image_and_says_so_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = labelme_export(tmp_path / "export")
    with caplog.at_level(logging.WARNING, logger="fcnseg.data"):
        train = build_dataset({"name": "voc", "root": str(root)}, split="train")
        val = build_dataset({"name": "voc", "root": str(root)}, split="val")
    assert len(train) == len(val) == 3
    assert train.classes == ("_background_", "Sky", "Car")
    said = [r.message for r in caplog.records if "no split lists" in r.message]
    assert len(said) == 1 and "3 annotated images" in said[0]
    _, label = train[0]
    assert label[0, 0] == 255 and label[5, 5] == 1 and label[15, 8] == 2


def test_folder_names_its_sub_folders_in_dataset_yaml(tmp_path: Path) -> None:
    root = labelme_export(tmp_path / "export")
    (root / "dataset.yaml").write_text(
        "classes: [background, Sky, Car]\nimages: JPEGImages\nmasks: SegmentationClass\n")
    ds = build_dataset({"name": "folder", "root": str(root)}, split="train")
    assert len(ds) == 3 and ds.image_path(0).name == "img0.jpg"


def test_folder_sub_folders_and_suffixes_from_the_spec(tmp_path: Path) -> None:
    root = labelme_export(tmp_path / "export")
    for p in (root / "SegmentationClass").glob("*.png"):  # masks named <id>_mask.png
        p.rename(p.with_name(f"{p.stem}_mask.png"))
    spec = {"name": "folder", "root": str(root), "images": "JPEGImages",
            "masks": "SegmentationClass", "mask_suffix": "_mask.png"}
    ds = FolderSegmentation(root, "train", classes=["bg", "sky", "car"],
                            **{k: v for k, v in spec.items() if k not in ("name", "root")})
    assert ds.ids == ["img0", "img1", "img2"]
    assert ds.label_path(1).name == "img1_mask.png"
    (root / "dataset.yaml").write_text("classes: [bg, sky, car]\n")
    assert len(build_dataset(spec, split="val")) == 3


def test_a_sub_folder_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    root = labelme_export(tmp_path / "export")
    (root / "dataset.yaml").write_text("classes: [a]\nimages: ../elsewhere\n")
    with pytest.raises(ValueError, match="dataset.yaml: images: expected a sub-folder"):
        FolderSegmentation(root)


def test_check_data_reads_the_export_as_voc(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fcnseg.cli.main import main

    root = labelme_export(tmp_path / "export")
    assert main(["check-data", "--dataset", "voc", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"all images\s+3\n", out) and "Car" in out, out
