"""Every format: the imported folder passes ``fcnseg check-data``, and the format read directly
as a dataset gives the imported masks."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation, build_dataset
from fcnseg.data.annotations import import_annotations
from fcnseg.data.annotations.export import (
    coco_annotations,
    coco_document,
    cvat_document,
    cvat_image_element,
    labelme_document,
)
from fcnseg.data.annotations.labelstudio import encode_brush_rle

CLASSES = ["background", "car", "road"]


def label_map(k: int) -> np.ndarray:
    label = np.zeros((24, 32), np.uint8)
    label[2 + k:12, 3:20] = 1
    label[14:, 10 + k:] = 2
    label[5:8, 6:9] = 0  # a hole
    return label


def write_source(fmt: str, root: Path, stem: str = "i") -> Path:
    """Three images (``<stem>0.png`` ...) and their annotations as ``fmt`` lays them out; the
    path to import."""
    (root / "images").mkdir(parents=True)
    labels = [label_map(k) for k in range(3)]
    for k in range(3):
        picture = np.full((24, 32, 3), 60 * k, np.uint8)
        Image.fromarray(picture).save(root / "images" / f"{stem}{k}.png")
    if fmt == "labelme":
        for k, label in enumerate(labels):
            doc = labelme_document(label, CLASSES, f"{stem}{k}.png")
            (root / "images" / f"{stem}{k}.json").write_text(json.dumps(doc))
        return root / "images"
    if fmt == "cvat":
        elements = [cvat_image_element(m, CLASSES, f"{stem}{k}.png", k)
                    for k, m in enumerate(labels)]
        (root / "annotations.xml").write_bytes(cvat_document(elements, CLASSES))
        return root
    if fmt == "coco":
        images = [{"id": k + 1, "file_name": f"{stem}{k}.png", "height": 24, "width": 32}
                  for k in range(3)]
        anns = [a for k, m in enumerate(labels) for a in coco_annotations(m, k + 1, 100 * k)]
        (root / "coco.json").write_text(json.dumps(coco_document(images, anns, CLASSES)))
        return root / "coco.json"
    if fmt == "cvat-mask":
        (root / "SegmentationClass").mkdir()
        colours = np.array([(0, 0, 0), (250, 50, 83), (128, 64, 128)], np.uint8)
        (root / "labelmap.txt").write_text("".join(
            f"{n}:{','.join(map(str, c))}::\n" for n, c in zip(CLASSES, colours, strict=True)))
        for k, label in enumerate(labels):
            Image.fromarray(colours[label]).save(root / "SegmentationClass" / f"{stem}{k}.png")
        return root
    tasks = []
    for k, label in enumerate(labels):
        results = [{"type": "brushlabels", "original_width": 32, "original_height": 24,
                    "value": {"format": "rle", "rle": encode_brush_rle(label == c),
                              "brushlabels": [CLASSES[c]]}} for c in (1, 2)]
        url = f"/data/upload/1/0a1b2c3d-{quote(stem)}{k}.png"
        tasks.append({"id": k, "data": {"image": url},
                      "annotations": [{"result": results}]})
    (root / "export.json").write_text(json.dumps(tasks))
    return root / "export.json"


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "cvat-mask", "labelstudio"])
def test_imported_folder_passes_check_data_and_equals_the_dataset(fmt, tmp_path: Path,
                                                                  capsys) -> None:
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    src = write_source(fmt, tmp_path / "src")
    images = ["--images", str(tmp_path / "src" / "images")] if fmt != "labelme" else []
    out = tmp_path / "out"
    assert main(["import", fmt, str(src), "--out", str(out), *images]) == 0
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out),
                 "--num-workers", "0"]) == 0
    assert "no problems found" in capsys.readouterr().out
    folder = FolderSegmentation(out)
    assert len(folder) == 3
    direct = build_dataset({"name": fmt.replace("-", "_"), "root": str(src),
                            **({"images": images[1]} if images else {})})
    assert direct.classes == folder.classes
    for k in range(3):
        name = folder.ids[k]
        _, imported = folder[k]
        _, read = direct[list(direct.ids).index(name)]
        np.testing.assert_array_equal(read, imported)
        assert folder.classes[1:] == ("car", "road")
        np.testing.assert_array_equal(imported, label_map(int(name[-1])))


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "cvat-mask", "labelstudio"])
def test_file_names_with_spaces_reach_check_data_and_training(fmt, tmp_path: Path,
                                                            capsys) -> None:
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    src = write_source(fmt, tmp_path / "src", stem="IMG 猫 ")
    images = ["--images", str(tmp_path / "src" / "images")] if fmt != "labelme" else []
    out = tmp_path / "out"
    assert main(["import", fmt, str(src), "--out", str(out), "--val-fraction", "0.5",
                 *images]) == 0
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out),
                 "--num-workers", "0"]) == 0
    assert "no problems found" in capsys.readouterr().out
    listed = FolderSegmentation(out, "train").ids + FolderSegmentation(out, "val").ids
    assert sorted(listed) == ["IMG 猫 0", "IMG 猫 1", "IMG 猫 2"]


def test_a_name_a_split_list_cannot_hold_is_refused_in_one_line(tmp_path: Path) -> None:
    src = write_source("cvat", tmp_path / "src", stem="trailing ")
    images = tmp_path / "src" / "images"
    (images / "trailing 0.png").rename(images / "x .png")
    xml = (src / "annotations.xml").read_text(encoding="utf-8").replace("trailing 0.png", "x .png")
    (src / "annotations.xml").write_text(xml, encoding="utf-8")
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["trailing 1", "trailing 2"]
    assert report.errors == [f"{src / 'annotations.xml'}: the name 'x ' starts or ends with a "
                             f"space or holds a line break, which a split list cannot hold: "
                             f"rename the image"]


def write_one_empty(fmt: str, root: Path) -> Path:
    """One 24×32 picture ``empty.png`` that the export lists as labelled with no shape, as
    each tool writes "nothing here"; the path to import."""
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(root / "images" / "empty.png")
    if fmt == "labelme":  # a JSON file without shapes
        doc = labelme_document(np.zeros((24, 32), np.uint8), CLASSES, "empty.png")
        assert doc["shapes"] == []
        (root / "images" / "empty.json").write_text(json.dumps(doc))
        return root / "images"
    if fmt == "cvat":  # the task's <image> element without shapes
        element = cvat_image_element(np.zeros((24, 32), np.uint8), CLASSES, "empty.png", 0)
        (root / "annotations.xml").write_bytes(cvat_document([element], CLASSES))
        return root
    if fmt == "coco":  # the image listed, no annotation of it
        images = [{"id": 1, "file_name": "empty.png", "height": 24, "width": 32}]
        (root / "coco.json").write_text(json.dumps(coco_document(images, [], CLASSES)))
        return root / "coco.json"
    # Label Studio: a submitted annotation whose result is empty; a skipped task (cancelled)
    # and a task nobody annotated stay to be annotated.
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/0a1b2c3d-empty.png"},
              "annotations": [{"id": 5, "was_cancelled": False, "result": []}]},
             {"id": 2, "data": {"image": "/data/upload/1/0a1b2c3d-skipped.png"},
              "annotations": [{"id": 6, "was_cancelled": True, "result": []}]},
             {"id": 3, "data": {"image": "/data/upload/1/0a1b2c3d-todo.png"}, "annotations": []}]
    for stem in ("skipped", "todo"):
        Image.new("RGB", (32, 24)).save(root / "images" / f"{stem}.png")
    (root / "export.json").write_text(json.dumps(tasks))
    return root / "export.json"


@pytest.mark.parametrize("fmt", ["labelme", "cvat-tagged", "labelstudio"])
def test_an_image_the_export_marks_labelled_without_shapes_is_all_background(fmt, tmp_path: Path,
                                                                            capsys) -> None:
    src = write_one_empty(fmt.removesuffix("-tagged"), tmp_path / "src")
    if fmt == "cvat-tagged":  # a frame-level tag: someone looked at the image
        xml = (src / "annotations.xml").read_text(encoding="utf-8")
        xml = xml.replace('height="24" />', 'height="24"><tag label="car" /></image>')
        (src / "annotations.xml").write_text(xml, encoding="utf-8")
        fmt = "cvat"
    images = ["--images", str(tmp_path / "src" / "images")] if fmt != "labelme" else []
    out = tmp_path / "out"
    assert main(["import", fmt, str(src), "--out", str(out), *images]) == 0
    said = capsys.readouterr().out
    assert "1 image(s) listed in the export without any shape imported as all background " \
           "(the first: empty)" in said
    mask = np.asarray(Image.open(out / "masks" / "empty.png"))
    assert mask.shape == (24, 32) and not mask.any()
    listed = (out / "unannotated.txt").read_text() if fmt == "labelstudio" else ""
    assert listed == "".join(f"{tmp_path / 'src' / 'images' / s}.png\n"
                             for s in ("skipped", "todo") if fmt == "labelstudio")


def test_classes_taken_from_the_labels_found_are_said_in_one_line(tmp_path: Path,
                                                                  capsys) -> None:
    src = write_source("labelme", tmp_path / "src")
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "out")]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "--labels" in ln]
    assert line == ("fcnseg import: classes: _background_, then the 2 labels found, sorted (a "
                    "label no image uses is no class): to keep a model's classes and their "
                    "order, import with --labels labels.txt")
    labels = tmp_path / "labels.txt"
    labels.write_text("_background_\ncar\nroad\nbicycle\n")
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "out2"), "--labels",
                 str(labels)]) == 0
    assert "--labels" not in capsys.readouterr().out


def test_an_ignore_index_8_bit_masks_cannot_hold_is_refused_before_importing(
        tmp_path: Path, capsys) -> None:
    src = write_source("labelme", tmp_path / "src")
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "out"),
                 "--ignore-index", "2555"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fcnseg import: error: --ignore-index: 2555 is no value of the 8-bit masks fcnseg "
        "import writes: expected 0-255")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_an_image_only_listed_without_shapes_is_left_to_annotate(fmt, tmp_path: Path,
                                                                 capsys) -> None:
    """A CVAT task or COCO export lists every image, labelled or not: a half-annotated task
    must not teach the model that its unlabelled images hold nothing."""
    src = write_one_empty(fmt, tmp_path / "src")
    out = tmp_path / "out"
    assert main(["import", fmt, str(src), "--out", str(out),
                 "--images", str(tmp_path / "src" / "images")]) == 1  # no image imported
    said = capsys.readouterr().out
    assert not (out / "masks" / "empty.png").exists()
    assert (out / "unannotated.txt").read_text() == f"{tmp_path / 'src' / 'images' / 'empty.png'}\n"
    assert ("fcnseg import: 1 image(s) the export lists without any shape left out as not yet "
            "annotated (the first: empty): if they hold nothing to label, import with "
            "--empty-as-background\n") in said


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_empty_as_background_imports_listed_images_without_shapes(fmt, tmp_path: Path,
                                                                   capsys) -> None:
    src = write_one_empty(fmt, tmp_path / "src")
    out = tmp_path / "out"
    assert main(["import", fmt, str(src), "--out", str(out), "--empty-as-background",
                 "--images", str(tmp_path / "src" / "images")]) == 0
    assert "1 image(s) listed in the export without any shape imported as all background " \
           "(the first: empty)" in capsys.readouterr().out
    mask = np.asarray(Image.open(out / "masks" / "empty.png"))
    assert mask.shape == (24, 32) and not mask.any()
    assert not (out / "unannotated.txt").exists()


@pytest.mark.parametrize("empty_as_background", [False, True])
def test_the_dataset_read_directly_takes_listed_empty_images_as_import_does(
        empty_as_background, tmp_path: Path) -> None:
    src = write_one_empty("cvat", tmp_path / "src")
    spec = {"name": "cvat", "root": str(src), "images": str(tmp_path / "src" / "images"),
            "empty_as_background": empty_as_background}
    dataset = build_dataset(spec, split=None)
    assert dataset.ids == (["empty"] if empty_as_background else [])
    if empty_as_background:
        _, label = dataset.load(0)
        assert label.shape == (24, 32) and not label.any()
