"""Label maps written as labelme, CVAT and COCO polygons come back as the same label maps."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fcnseg.data.annotations import LabelSet, rasterise
from fcnseg.data.annotations.contours import centre_chain, crack_rings, ring_area, simplify
from fcnseg.data.annotations.cvat import read_cvat_xml
from fcnseg.data.annotations.export import (
    DEFAULT_TOLERANCE,
    coco_annotations,
    coco_document,
    cvat_document,
    cvat_image_element,
    fill_small_regions,
    labelme_document,
)
from fcnseg.data.annotations.labelme import read_labelme_file

# pycocotools 2.0 on NumPy 2 warns when it decodes (its __array__ lacks the copy keyword).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
CLASSES = ["background", "a", "b", "c"]
LABELS = ["__ignore__", "_background_", "a", "b", "c"]


def scene(seed: int, height: int = 72, width: int = 96) -> np.ndarray:
    """Regions with holes, touching regions of different classes and thin parts."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        c = int(rng.integers(1, 4))
        x, y, r = int(rng.integers(10, width - 10)), int(rng.integers(10, height - 10)), int(
            rng.integers(8, 22))
        kind = int(rng.integers(0, 4))
        if kind == 0:  # a ring: a hole of background (or of what lies below)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
            draw.ellipse([x - r // 2, y - r // 2, x + r // 2, y + r // 2], fill=0)
        elif kind == 1:  # a disc with another class inside
            draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
            draw.rectangle([x - 3, y - 3, x + 3, y + 3], fill=c % 3 + 1)
        elif kind == 2:  # thin parts: lines one and two pixels wide
            draw.line([(x - r, y), (x + r, y + r // 2)], fill=c, width=int(rng.integers(1, 3)))
        else:  # touching rectangles of two classes
            draw.rectangle([x - r, y - 6, x, y + 6], fill=c)
            draw.rectangle([x + 1, y - 6, x + r, y + 6], fill=c % 3 + 1)
    return np.asarray(img)


def labelme_round_trip(label: np.ndarray, tmp_path: Path, tolerance: float) -> np.ndarray:
    doc = labelme_document(label, CLASSES, "x.png", tolerance=tolerance)
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    back, problems = rasterise(read_labelme_file(path, "x"), LabelSet(LABELS), *label.shape)
    assert back is not None, problems
    return back


def iou_per_class(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    return {c: float(((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum())
            for c in np.union1d(np.unique(a), np.unique(b)).tolist()}


def test_scenes_have_holes_touching_regions_and_thin_parts() -> None:
    label = np.concatenate([scene(s) for s in range(12)])
    holes = sum(ring_area(r) < 0 for c in (1, 2, 3) for r in crack_rings(label == c))
    assert holes >= 5
    touching = ((label[:, 1:] != label[:, :-1]) & (label[:, 1:] > 0) & (label[:, :-1] > 0))
    assert touching.sum() >= 20
    thin = (label[1:-1] > 0) & (label[:-2] != label[1:-1]) & (label[2:] != label[1:-1])
    assert thin.sum() >= 20


@pytest.mark.parametrize("seed", range(12))
def test_labelme_round_trip_keeps_iou_per_class_at_the_default_tolerance(
        seed: int, tmp_path: Path) -> None:
    label = scene(seed)
    back = labelme_round_trip(label, tmp_path, DEFAULT_TOLERANCE)
    assert min(iou_per_class(label, back).values()) >= 0.99


def test_labelme_round_trip_is_exact_without_simplification(tmp_path: Path) -> None:
    for seed in range(12):
        label = scene(seed)
        np.testing.assert_array_equal(labelme_round_trip(label, tmp_path, 0.0), label)


def test_simplification_drops_points() -> None:
    img = Image.new("L", (80, 80), 0)
    ImageDraw.Draw(img).ellipse([5, 5, 75, 75], fill=1)
    label = np.asarray(img)
    exact = labelme_document(label, CLASSES, "x.png", tolerance=0)["shapes"][0]["points"]
    simple = labelme_document(label, CLASSES, "x.png")["shapes"][0]["points"]
    assert len(simple) < len(exact) / 2


def test_crossing_diagonals_are_drawn_back_exactly(tmp_path: Path) -> None:
    label = np.array([[1, 1, 0, 0],
                      [1, 0, 1, 1],
                      [0, 1, 1, 1],
                      [0, 1, 1, 1]], np.uint8)
    np.testing.assert_array_equal(labelme_round_trip(label, tmp_path, 0.0), label)


def test_cvat_round_trip_is_exact(tmp_path: Path) -> None:
    labels = {f"s{k}": scene(k) for k in range(6)}
    images = [cvat_image_element(m, CLASSES, f"{n}.png", k)
              for k, (n, m) in enumerate(labels.items())]
    (tmp_path / "annotations.xml").write_bytes(cvat_document(images, CLASSES))
    for n, m in labels.items():
        Image.fromarray(m).save(tmp_path / f"{n}.png")
    found = read_cvat_xml(tmp_path)
    assert found.classes == ["a", "b", "c"]
    for item in found.items:
        back, _ = rasterise(item, LabelSet(LABELS), *labels[item.name].shape)
        assert min(iou_per_class(labels[item.name], back).values()) >= 0.99


def test_cvat_labels_carry_their_palette_colours_as_cvat_writes_them(tmp_path: Path) -> None:
    palette = [(1, 2, 3), (61, 61, 245), (250, 50, 83), (50, 183, 250)]
    images = [cvat_image_element(scene(0), CLASSES, "s0.png", 0)]
    xml = cvat_document(images, CLASSES, colours=palette)
    assert b"<name>a</name>\n          <color>#3d3df5</color>" in xml
    (tmp_path / "annotations.xml").write_bytes(xml)
    Image.fromarray(scene(0)).save(tmp_path / "s0.png")
    found = read_cvat_xml(tmp_path)
    assert found.classes == ["a", "b", "c"]
    assert [found.colours[c] for c in found.classes] == palette[1:]


def cvat_ids(names: list[str]) -> list[int]:
    """The ``<image id>`` of each of ``names`` in the file :func:`cvat_document` writes."""
    empty = np.zeros((4, 4), np.uint8)
    xml = cvat_document([cvat_image_element(empty, CLASSES, n, 0) for n in names], CLASSES)
    return [int(i.get("id")) for i in ET.fromstring(xml).iter("image")]


def test_cvat_ids_of_a_video_s_frames_are_their_frame_numbers() -> None:
    assert cvat_ids(["frame_000012.png", "frame_000003.png"]) == [12, 3]
    assert cvat_ids(["street__frame_000012.png", "street__frame_000040.jpg"]) == [12, 40]


def test_cvat_ids_of_other_images_among_frames_are_their_places() -> None:
    assert cvat_ids(["frame_000012.png", "cat.png", "dog.jpg"]) == [12, 1, 2]
    assert cvat_ids(["cat.png", "dog.png"]) == [0, 1]


def test_cvat_ids_are_places_where_frame_numbers_would_clash() -> None:
    # a place equal to a frame number
    assert cvat_ids(["cat.png", "frame_000000.png"]) == [0, 1]
    # frames of two videos, or CVAT's and an import's names, which could be two videos
    assert cvat_ids(["street__frame_000012.png", "park__frame_000012.png"]) == [0, 1]
    assert cvat_ids(["street__frame_000012.png", "park__frame_000013.png"]) == [0, 1]
    assert cvat_ids(["frame_000012.png", "street__frame_000013.png"]) == [0, 1]


def test_coco_export_decodes_with_pycocotools_to_the_label_map() -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    label = scene(3)
    anns = coco_annotations(label, 1, 1, tolerance=0)
    doc = coco_document([{"id": 1, "file_name": "x.png", "height": 72, "width": 96}], anns,
                        CLASSES)
    assert [c["name"] for c in doc["categories"]] == ["a", "b", "c"]
    back = np.zeros_like(label)
    for ann in anns:
        seg = ann["segmentation"]
        rle = (mask_api.merge(mask_api.frPyObjects(seg, 72, 96)) if isinstance(seg, list)
               else mask_api.frPyObjects(seg, 72, 96))
        back[mask_api.decode(rle) > 0] = ann["category_id"]
    np.testing.assert_array_equal(back, label)


def test_coco_categories_recorded_with_one_id_keep_it_for_the_first_class_only() -> None:
    anns = [{"category_id": k} for k in (1, 2, 3)]
    doc = coco_document([], anns, ["bg", "car", "truck", "dog"],
                        sources={"car": {"id": 3}, "truck": {"id": 3}})
    assert [(c["name"], c["id"]) for c in doc["categories"]] == [
        ("car", 3), ("truck", 4), ("dog", 5)]
    assert [a["category_id"] for a in doc["annotations"]] == [3, 4, 5]


def test_crack_rings_of_a_region_with_a_hole() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    mask[2, 2] = False
    outer, hole = sorted(crack_rings(mask), key=ring_area, reverse=True)
    assert ring_area(outer) == 9 and ring_area(hole) == -1
    assert sorted(map(tuple, centre_chain(outer).tolist())) == sorted(
        {(x, y) for y in range(1, 4) for x in range(1, 4)} - {(2, 2)})


def test_simplify_keeps_a_spike_beyond_the_ends() -> None:
    ring = np.array([(40, 0), (40, 1), (40, 4), (41, 8), (40, 4), (40, 1)], float)
    kept = simplify(ring, 1.0).tolist()
    assert [40, 0] in kept and [41, 8] in kept


def test_a_class_0_that_is_no_background_is_drawn_with_its_name(tmp_path: Path) -> None:
    label = scene(4)
    names = ["road", "car", "sign", "tree"]
    doc = labelme_document(label, names, "x.png")
    assert {s["label"] for s in doc["shapes"]} == {names[c] for c in np.unique(label)}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    back, _ = rasterise(read_labelme_file(path, "x"), LabelSet(["__ignore__", *names]),
                        *label.shape)
    assert min(iou_per_class(label, back).values()) >= 0.99


def test_specks_are_filled_into_the_class_around_them() -> None:
    label = np.zeros((30, 40), np.uint8)
    label[5:25, 5:35] = 1  # a region of class 1 ...
    label[10:12, 10:12] = 2  # ... holding a speck of class 2 (4 pixels)
    label[15, 20] = 0  # ... and a one-pixel hole
    label[0, 39] = 2  # a speck on the background
    label[20:24, 28:34] = 2  # a region of class 2 large enough to keep (24 pixels)
    label[2, 2] = 255  # ignored: kept, and never a speck
    filled = fill_small_regions(label, 20, ignore_index=255)
    expected = label.copy()
    expected[10:12, 10:12] = expected[15, 20] = 1
    expected[0, 39] = 0
    assert np.array_equal(filled, expected)
    assert np.array_equal(fill_small_regions(label, 0, ignore_index=255), label)


def test_min_area_leaves_out_the_outline_patches_of_fewer_pixels() -> None:
    label = np.zeros((60, 80), np.uint8)
    yy, xx = np.mgrid[:60, :80]
    label[(yy - 30) ** 2 + (xx - 40) ** 2 < 24 ** 2] = 1  # a disc: simplified, then patched
    exact = labelme_document(label, CLASSES, "a.png")["shapes"]
    assert len(exact) > 1  # the pixels simplification left out come back as patches
    assert len(labelme_document(label, CLASSES, "a.png", min_area=20)["shapes"]) == 1


def test_cvat_file_holds_no_background_label_or_shape_and_regions_around_it_are_masks(
        tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    labels = {f"s{k}": scene(k) for k in range(6)}
    images = [cvat_image_element(m, CLASSES, f"{n}.png", k)
              for k, (n, m) in enumerate(labels.items())]
    root = ET.fromstring(cvat_document(images, CLASSES))
    assert [el.findtext("name") for el in root.iter("label")] == ["a", "b", "c"]
    shapes = [el for image in root.iter("image") for el in image]
    assert {el.get("label") for el in shapes} == {"a", "b", "c"}
    assert {el.tag for el in shapes} == {"polygon", "mask"}  # a ring's hole: a mask
    (tmp_path / "annotations.xml").write_bytes(ET.tostring(root))
    for item in read_cvat_xml(tmp_path).items:
        back, _ = rasterise(item, LabelSet(LABELS), *labels[item.name].shape)
        background = labels[item.name] == 0
        assert (back[background] == 0).mean() >= 0.99
