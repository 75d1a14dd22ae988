"""Every format: the imported folder passes ``fcnseg check-data``, and the format read directly
as a dataset gives the imported masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation, build_dataset
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


def write_source(fmt: str, root: Path) -> Path:
    """Three images and their annotations as ``fmt`` lays them out; the path to import."""
    (root / "images").mkdir(parents=True)
    labels = [label_map(k) for k in range(3)]
    for k in range(3):
        Image.fromarray(np.full((24, 32, 3), 60 * k, np.uint8)).save(root / "images" / f"i{k}.png")
    if fmt == "labelme":
        for k, label in enumerate(labels):
            doc = labelme_document(label, CLASSES, f"i{k}.png")
            (root / "images" / f"i{k}.json").write_text(json.dumps(doc))
        return root / "images"
    if fmt == "cvat":
        elements = [cvat_image_element(m, CLASSES, f"i{k}.png", k) for k, m in enumerate(labels)]
        (root / "annotations.xml").write_bytes(cvat_document(elements, CLASSES))
        return root
    if fmt == "coco":
        images = [{"id": k + 1, "file_name": f"i{k}.png", "height": 24, "width": 32}
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
            Image.fromarray(colours[label]).save(root / "SegmentationClass" / f"i{k}.png")
        return root
    tasks = []
    for k, label in enumerate(labels):
        results = [{"type": "brushlabels", "original_width": 32, "original_height": 24,
                    "value": {"format": "rle", "rle": encode_brush_rle(label == c),
                              "brushlabels": [CLASSES[c]]}} for c in (1, 2)]
        tasks.append({"id": k, "data": {"image": f"/data/upload/1/0a1b2c3d-i{k}.png"},
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
