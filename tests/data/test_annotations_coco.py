"""COCO files as merge scripts and other tools write them: duplicate image ids, detection-only
annotations, Windows paths; each problem one line naming the image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fcnseg.cli.main import main
from fcnseg.data.annotations import ImportOptions, import_annotations
from tests.data.test_annotations_formats import coco_file, read_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
pytest.importorskip("pycocotools.mask")

SQUARE = [[0, 0, 9, 0, 9, 9, 0, 9]]


def test_two_images_of_one_id_are_one_line_naming_both_and_left_out(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3,
                                 "segmentation": SQUARE}], images=("a.jpg", "b.jpg", "c.jpg"))
    doc = json.loads(path.read_text())
    doc["images"].append({"id": 1, "file_name": "b.jpg", "height": 30, "width": 40})
    doc["annotations"].append({"id": 2, "image_id": 2, "category_id": 3, "segmentation": SQUARE})
    path.write_text(json.dumps(doc))
    said: list[str] = []
    report = import_annotations("coco", path, tmp_path / "out", report=said.append)
    assert report.written == ["b"]
    assert report.errors == [f"{path}: images[3] ('b.jpg') has the id 1 of images[0] ('a.jpg'): "
                             f"annotations cannot tell them apart; neither imported (give each "
                             f"image its own id)"]


def test_one_image_listed_twice_alike_is_imported_once(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3,
                                 "segmentation": SQUARE}], images=("a.jpg", "b.jpg"))
    doc = json.loads(path.read_text())
    doc["images"].append(dict(doc["images"][0]))  # merged files both listing it
    path.write_text(json.dumps(doc))
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.written == ["a"] and not report.errors
    assert read_mask(tmp_path / "out", "a")[5, 5] == 1


def test_a_file_name_with_a_line_break_is_named_on_one_line(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [], images=("a.jpg",))
    doc = json.loads(path.read_text())
    doc["images"].append({"id": 1, "file_name": "b\nerror: c.jpg", "height": 30, "width": 40})
    path.write_text(json.dumps(doc))
    report = import_annotations("coco", path, tmp_path / "out", ImportOptions(
        empty_as_background=True))
    assert report.errors == [f"{path}: images[1] ('b\\nerror: c.jpg') has the id 1 of "
                             f"images[0] ('a.jpg'): annotations cannot tell them apart; neither "
                             f"imported (give each image its own id)"]


def test_an_empty_segmentation_is_said_so_naming_its_image(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [
        {"id": 13, "image_id": 2, "category_id": 3, "segmentation": [], "bbox": [0, 0, 5, 5]},
        {"id": 14, "image_id": 1, "category_id": 3, "segmentation": SQUARE}],
        images=("a.jpg", "site_a/0004.jpg"))
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.written == ["a"]
    assert report.errors == [f"{path}: image 'site_a/0004.jpg' annotation 13 (category 3): "
                             f"empty 'segmentation' (a box only?): the shape cannot be drawn; "
                             f"image left out (fix or delete the shape)"]


def test_a_windows_file_name_finds_its_picture(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3,
                                 "segmentation": SQUARE}], images=("site_a/a.jpg",))
    doc = json.loads(path.read_text())
    doc["images"][0]["file_name"] = "site_a\\a.jpg"
    path.write_text(json.dumps(doc))
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.written == ["site_a__a"] and read_mask(tmp_path / "out", "site_a__a")[5, 5] == 1


def test_a_picture_not_found_is_named_as_the_file_gives_it_unescaped(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3,
                                 "segmentation": SQUARE}], images=("a.jpg",))
    doc = json.loads(path.read_text())
    doc["images"][0]["file_name"] = "site_b\\a.jpg"
    path.write_text(json.dumps(doc))
    said: list[str] = []
    import_annotations("coco", path, tmp_path / "out", report=said.append)
    assert any(line.startswith("error: 1 picture(s) not found, the first 'site_b\\a.jpg' of ")
               for line in said)


def test_polygons_partly_outside_are_counted_in_one_line_as_every_reader_counts_them(
        tmp_path: Path) -> None:
    path = coco_file(tmp_path, [
        {"id": 9, "image_id": 1, "category_id": 3, "segmentation": [[30, 20, 50, 20, 50, 40]]},
        {"id": 10, "image_id": 1, "category_id": 3, "segmentation": [[50, 40, 60, 40, 60, 50]]}])
    said: list[str] = []
    report = import_annotations("coco", path, tmp_path / "out", report=said.append)
    assert report.written == ["a"] and read_mask(tmp_path / "out", "a")[25, 39] == 1
    assert f"1 shape(s) partly outside their image were clipped to it (the first: {path}: " \
           f"image 'a.jpg' annotation 9 (category 3))" in said
    assert f"warning: {path}: image 'a.jpg' annotation 10 (category 3): outside the 40×30 " \
           f"image (skipped)" in said


def test_check_data_names_the_image_of_a_shape_it_cannot_draw_without_importing(
        tmp_path: Path, capsys) -> None:
    path = coco_file(tmp_path, [
        {"id": 13, "image_id": 1, "category_id": 3, "segmentation": []},
        {"id": 14, "image_id": 2, "category_id": 3, "segmentation": SQUARE}],
        images=("a.jpg", "b.jpg"))
    main(["check-data", "--dataset", "coco", "--root", str(path), "--num-workers", "0"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "image 'a.jpg' annotation 13 (category 3): empty 'segmentation'" in text
    assert "not imported" not in text


@pytest.mark.parametrize("value", [None, "a"])
def test_a_polygon_holding_something_else_than_numbers_is_one_line(value, tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 5, "image_id": 1, "category_id": 3,
                                 "segmentation": [[0, 0, value, 0, 9, 9, 0, 9]]}])
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.errors == [f"{path}: image 'a.jpg' annotation 5 (category 3): 'segmentation' "
                             f"polygons must be lists of at least 3 x, y pairs: the shape cannot "
                             f"be drawn; image left out (fix or delete the shape)"]
