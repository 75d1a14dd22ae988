"""COCO, CVAT and Label Studio files read and imported as those tools write them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from traced import peak_traced

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.annotations import ImportOptions, RasterOptions, import_annotations
from fcnseg.data.annotations.labelstudio import decode_brush_rle, encode_brush_rle

# pycocotools 2.0 on NumPy 2 warns when it decodes (its __array__ lacks the copy keyword).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
mask_api = pytest.importorskip("pycocotools.mask")


def picture(path: Path, size=(30, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 120, np.uint8)).save(path)


def read_mask(out: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / f"{stem}.png"))


# -- COCO ---------------------------------------------------------------------------------------

def coco_file(tmp_path: Path, annotations: list, images=("a.jpg",)) -> Path:
    for name in images:
        picture(tmp_path / "coco" / "images" / name)
    doc = {"images": [{"id": k + 1, "file_name": n, "height": 30, "width": 40}
                      for k, n in enumerate(images)],
           "annotations": annotations,
           "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"},
                          {"id": 18, "name": "dog", "supercategory": "animal"}]}
    path = tmp_path / "coco" / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_polygons_and_rle_import_to_pycocotools_masks(tmp_path: Path) -> None:
    polygon = [[2.5, 3.0, 20.2, 4.7, 11.0, 18.9], [25, 20, 35, 21, 30, 28.5]]
    dog = np.zeros((30, 40), np.uint8, order="F")
    dog[10:25, 5:12] = 1
    dog[15:18, 7:9] = 0
    compressed = mask_api.encode(np.asfortranarray(dog))
    compressed["counts"] = compressed["counts"].decode()
    flat = dog.reshape(-1, order="F")
    runs = np.diff(np.flatnonzero(np.r_[True, flat[1:] != flat[:-1], True])).tolist()
    uncompressed = {"size": [30, 40], "counts": runs if flat[0] == 0 else [0, *runs]}
    path = coco_file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 3, "segmentation": polygon, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 18, "segmentation": compressed, "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 18, "segmentation": uncompressed,
         "iscrowd": 0}], images=("a.jpg", "b.jpg", "c.jpg"))
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.classes == ["_background_", "car", "dog"] and not report.errors
    expected_car = mask_api.decode(mask_api.merge(mask_api.frPyObjects(polygon, 30, 40)))
    np.testing.assert_array_equal(read_mask(tmp_path / "out", "a") == 1, expected_car == 1)
    np.testing.assert_array_equal(read_mask(tmp_path / "out", "b"), dog * 2)
    np.testing.assert_array_equal(read_mask(tmp_path / "out", "c"), dog * 2)


def test_coco_crowd_regions_keep_their_class_unless_crowd_as_ignore(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 1,
                                 "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}])
    import_annotations("coco", path, tmp_path / "out")
    assert read_mask(tmp_path / "out", "a")[5, 5] == 1
    import_annotations("coco", path, tmp_path / "out",
                       ImportOptions(raster=RasterOptions(crowd_as_ignore=True)))
    assert read_mask(tmp_path / "out", "a")[5, 5] == 255


def test_coco_unknown_category_and_missing_image_are_one_line_each(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [
        {"id": 7, "image_id": 1, "category_id": 99, "segmentation": [[0, 0, 9, 0, 9, 9]]},
        {"id": 8, "image_id": 2, "category_id": 3, "segmentation": [[0, 0, 9, 0, 9, 9]]},
    ], images=("a.jpg", "b.jpg"))
    (tmp_path / "coco" / "images" / "b.jpg").unlink()
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.errors == [
        f"{path}: image 'a.jpg' annotation 7 (category 99): category_id not in 'categories': "
        f"the shape cannot be drawn; image left out (fix or delete the shape)",
        f"{path}: missing image file {tmp_path / 'coco/images/b.jpg'}"]


def test_coco_panoptic_segments_become_their_classes(tmp_path: Path) -> None:
    picture(tmp_path / "coco" / "images" / "a.jpg")
    ids = np.zeros((30, 40), np.int64)
    ids[0:10] = 300  # car
    ids[20:30] = 70000  # dog, crowd
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    (tmp_path / "coco" / "panoptic").mkdir()
    Image.fromarray(rgb).save(tmp_path / "coco" / "panoptic" / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40}],
           "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
               {"id": 300, "category_id": 3, "iscrowd": 0},
               {"id": 70000, "category_id": 18, "iscrowd": 1}]}],
           "categories": [{"id": 3, "name": "car", "isthing": 1},
                          {"id": 18, "name": "dog", "isthing": 1}]}
    (tmp_path / "coco" / "panoptic.json").write_text(json.dumps(doc))
    import_annotations("coco", tmp_path / "coco" / "panoptic.json", tmp_path / "out")
    mask = read_mask(tmp_path / "out", "a")
    assert (mask[:10] == 1).all() and (mask[10:20] == 0).all() and (mask[20:] == 2).all()
    import_annotations("coco", tmp_path / "coco" / "panoptic.json", tmp_path / "out",
                       ImportOptions(raster=RasterOptions(crowd_as_ignore=True)))
    assert (read_mask(tmp_path / "out", "a")[20:] == 255).all()


# -- CVAT ---------------------------------------------------------------------------------------

def test_cvat_segmentation_mask_export(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                      "car:250,50,83::\nroad:128,64,128::\n")
    colours = np.zeros((30, 40, 3), np.uint8)
    colours[:10] = (250, 50, 83)
    colours[20:] = (128, 64, 128)
    Image.fromarray(colours).save(src / "SegmentationClass" / "a.png")
    picture(src / "JPEGImages" / "a.jpg")
    colours[0, 0] = (1, 2, 3)
    Image.fromarray(colours).save(src / "SegmentationClass" / "b.png")
    picture(src / "JPEGImages" / "b.jpg")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.classes == ["background", "car", "road"]
    mask = read_mask(tmp_path / "out", "a")
    assert (mask[:10] == 1).all() and (mask[10:20] == 0).all() and (mask[20:] == 2).all()
    assert report.errors == [f"{src / 'SegmentationClass/b.png'}: colours not in "
                             f"labelmap.txt: (1, 2, 3) (1 pixels)"]


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>road</name><color>#aa00ff</color><type>polygon</type></label>
    <label><name>car</name><color>#ff0000</color><type>any</type></label>
  </labels></task></meta>
  <image id="0" name="a.jpg" width="40" height="30">
    <polygon label="car" source="manual" occluded="0"
      points="5.00,5.00;15.00,5.00;15.00,15.00;5.00,15.00" z_order="1"/>
    <box label="road" source="manual" occluded="0" xtl="0.00" ytl="10.00" xbr="40.00"
      ybr="30.00" z_order="0"/>
    <mask label="car" source="manual" occluded="0" rle="2, 2, 2, 2" left="30" top="0"
      width="4" height="2" z_order="2"/>
  </image>
  <image id="1" name="b.jpg" width="40" height="30"></image>
</annotations>
"""


def test_cvat_for_images_xml(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(CVAT_XML)
    picture(src / "images" / "a.jpg")
    picture(src / "images" / "b.jpg")
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.classes == ["_background_", "road", "car"]
    mask = read_mask(tmp_path / "out", "a")
    assert (mask[5:15, 5:15] == 2).all()  # z_order 1 over the road box (z_order 0)
    assert (mask[15:30, 15:] == 1).all() and mask[4, 4] == 0 and mask[9, 20] == 0
    assert mask[0, 32] == 2 and mask[0, 30] == 0 and mask[1, 34] == 0
    assert report.unannotated == [src / "images" / "b.jpg"]  # listed, never labelled


# -- Label Studio -------------------------------------------------------------------------------

def test_brush_code_round_trip() -> None:
    mask = np.zeros((7, 9), bool)
    mask[2:5, 1:8] = True
    np.testing.assert_array_equal(decode_brush_rle(encode_brush_rle(mask), 7, 9), mask)


def test_brush_code_of_16_bit_words_is_drawn_where_its_alpha_is_above_0() -> None:
    # 2 pixels, words of 16 bits: a repeat block of 4 values 300, then one of 4 values 0
    bits = f"{8:032b}{15:05b}" + f"{15:04b}" * 4 + f"100{3:016b}{300:016b}100{3:016b}{0:016b}"
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]
    np.testing.assert_array_equal(decode_brush_rle(rle, 1, 2), [[True, False]])


def test_brush_code_of_a_mask_takes_a_few_bytes_a_pixel() -> None:

    yy, xx = np.mgrid[:1000, :1000]
    mask = (yy - 500) ** 2 + (xx - 500) ** 2 < 300 ** 2
    _, peak = peak_traced(lambda: encode_brush_rle(mask))
    # the runs found on the pixels, not on four RGBA values a pixel held as bytes and bits
    assert peak < 4 * mask.size


def test_brush_code_writes_short_runs_in_few_bits_as_label_studios_converter() -> None:
    # 53 header bits, then two runs of 4 values (one pixel each) in 1 + 2 + 3 + 8 bits each
    assert len(encode_brush_rle(np.array([[True, False]]))) == (53 + 2 * 14 + 7) // 8


def test_label_studio_polygons_and_brushes(tmp_path: Path) -> None:
    src = tmp_path / "ls"
    picture(src / "images" / "photo.jpg")
    brush = np.zeros((30, 40), bool)
    brush[20:25, 30:35] = True
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/1a2b3c4d-photo.jpg"},
              "annotations": [{"id": 3, "was_cancelled": False, "result": [
                  {"id": "p1", "type": "polygonlabels", "from_name": "label", "to_name": "image",
                   "original_width": 40, "original_height": 30, "image_rotation": 0,
                   "value": {"points": [[0, 0], [50, 0], [50, 50], [0, 50]],
                             "polygonlabels": ["cat"]}},
                  {"id": "b1", "type": "brushlabels", "from_name": "tag", "to_name": "image",
                   "original_width": 40, "original_height": 30, "image_rotation": 0,
                   "value": {"format": "rle", "rle": encode_brush_rle(brush),
                             "brushlabels": ["dog"]}}]}]}]
    (src / "export.json").write_text(json.dumps(tasks))
    report = import_annotations("labelstudio", src / "export.json", tmp_path / "out")
    assert report.written == ["photo"] and report.classes == ["_background_", "cat", "dog"]
    mask = read_mask(tmp_path / "out", "photo")
    assert (mask[:15, :20] == 1).all() and mask[15, 20] == 0
    assert (mask[20:25, 30:35] == 2).all() and mask[19, 30] == 0


def test_cvat_xml_is_a_dataset(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(CVAT_XML)
    picture(src / "images" / "a.jpg")
    ds = build_dataset({"name": "cvat", "root": str(src)})
    assert ds.classes == ("_background_", "road", "car") and ds[0][1][10, 10] == 2


def test_every_format_imports_a_folder_that_check_data_passes(tmp_path: Path, capsys) -> None:
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(CVAT_XML)
    picture(src / "images" / "a.jpg")
    out = tmp_path / "out"
    main(["import", "cvat", str(src), "--out", str(out), "--val-fraction", "0"])
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out), "--num-workers",
                 "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


# -- malformed files, one line each ---------------------------------------------------------------

def test_coco_malformed_segmentation_and_label_not_listed(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [
        {"id": 5, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 9, 0]]},
        {"id": 6, "image_id": 2, "category_id": 18, "segmentation": [[0, 0, 9, 0, 9, 9]]},
    ], images=("a.jpg", "b.jpg"))
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncar\n")
    report = import_annotations("coco", path, tmp_path / "out", ImportOptions(labels=labels))
    assert report.written == []
    assert report.errors[0].startswith(f"{path}: image 'a.jpg' annotation 5 (category 3): "
                                       f"'segmentation' polygons")
    assert "image left out" in report.errors[0]
    assert report.errors[1:] == [f"{path}: image 'b.jpg' annotation 6 (category 18): label "
                             f"'dog' is not in the label list (add it to the labels file, or "
                             f"import without --labels)"]


def test_non_utf8_annotation_file_names_are_shown_as_bytes(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 99,
                                 "segmentation": [[0, 0, 9, 0, 9, 9]]}])
    odd = path.with_name(os.fsdecode(b"inst\xe9.json"))
    path.rename(odd)
    report = import_annotations("coco", odd, tmp_path / "out")
    [line] = [w for w in report.errors if "annotation 1" in w]
    assert line.startswith("b'") and "inst\\xe9.json" in line


def test_cvat_mask_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    stem = os.fsdecode(b"caf\xe9")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(
        src / "SegmentationClass" / f"{stem}.png")
    picture(src / "JPEGImages" / f"{stem}.jpg")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    [error] = report.errors
    assert "caf\\xe9" in error and "not UTF-8" in error and "\n" not in error


def test_cvat_shape_outside_the_image_missing_image_and_unlisted_label(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    src.mkdir()
    xml = CVAT_XML.replace('<image id="1" name="b.jpg" width="40" height="30"></image>',
                           '<image id="1" name="b.jpg" width="40" height="30"><polygon '
                           'label="car" points="50,50;60,50;60,60" z_order="0"/>'
                           '<polygon label="car" points="1,1;9,1;9,9" z_order="0"/></image>'
                           '<image id="2" name="c.jpg" width="40" height="30"><polygon '
                           'label="car" points="1,1;9,1;9,9" z_order="0"/></image>')
    (src / "annotations.xml").write_text(xml)
    picture(src / "images" / "a.jpg")
    picture(src / "images" / "b.jpg")
    report = import_annotations("cvat", src, tmp_path / "out")
    xml_path = src / "annotations.xml"
    assert f"{xml_path}: image 'b.jpg' polygon 0 ('car'): outside the 40×30 image (skipped)" \
        in report.warnings
    assert report.errors == [f"{xml_path}: missing image file {src / 'images/c.jpg'}"]
    labels = tmp_path / "labels.txt"
    labels.write_text("_background_\nroad\n")
    report = import_annotations("cvat", src, tmp_path / "out2", ImportOptions(labels=labels))
    assert any("image 'a.jpg' polygon 0 ('car'): label 'car' is not in the label list" in e
               for e in report.errors)


def test_label_studio_outside_missing_image_and_unlisted_label(tmp_path: Path) -> None:
    src = tmp_path / "ls"
    picture(src / "a.jpg")

    def task(k: int, image: str, points: list) -> dict:
        return {"id": k, "data": {"image": f"/data/upload/1/{image}"}, "annotations": [
            {"result": [{"type": "polygonlabels", "original_width": 40, "original_height": 30,
                         "value": {"points": points, "polygonlabels": ["cat"]}}]}]}

    (src / "export.json").write_text(json.dumps([
        task(1, "a.jpg", [[120, 120], [150, 120], [150, 150]]),
        task(2, "missing.jpg", [[0, 0], [50, 0], [50, 50]])]))
    report = import_annotations("labelstudio", src / "export.json", tmp_path / "out")
    source = src / "export.json"
    assert (f"{source}: task 1 result 0 (polygonlabels 'cat'): outside the 40×30 image "
            f"(skipped)") in report.warnings
    assert report.errors == [f"{source}: missing image file {src / 'missing.jpg'}"]
    labels = tmp_path / "labels.txt"
    labels.write_text("_background_\ndog\n")
    report = import_annotations("labelstudio", src / "export.json", tmp_path / "out2",
                                ImportOptions(labels=labels))
    assert any("task 1 result 0 (polygonlabels 'cat'): label 'cat' is not in" in e
               for e in report.errors)


def test_coco_region_outside_the_image_is_one_line(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [
        {"id": 4, "image_id": 1, "category_id": 3, "segmentation": [[50, 40, 60, 40, 60, 50]]},
        {"id": 5, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 9, 0, 9, 9]]}])
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.written == ["a"]
    assert (f"{path}: image 'a.jpg' annotation 4 (category 3): outside the 40×30 "
            f"image (skipped)" in report.warnings)


def test_cvat_mask_missing_image_and_label_not_listed(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    colours = np.zeros((30, 40, 3), np.uint8)
    colours[:5] = (250, 50, 83)
    for stem in ("a", "b"):
        Image.fromarray(colours).save(src / "SegmentationClass" / f"{stem}.png")
    picture(src / "JPEGImages" / "a.jpg")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.errors == [f"{src / 'SegmentationClass/b.png'}: missing image file "
                             f"{src / 'JPEGImages/b.jpg'}"]
    labels = tmp_path / "labels.txt"
    labels.write_text("background\ntruck\n")
    report = import_annotations("cvat-mask", src, tmp_path / "out2", ImportOptions(labels=labels))
    assert any(e.startswith(f"{src / 'SegmentationClass/a.png'}: colour (250, 50, 83): label "
                            f"'car' is not in the label list") for e in report.errors)


def test_cvat_mask_export_copied_from_a_mac_reads_upper_case_masks_not_apple_double_files(
        tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    colours = np.zeros((30, 40, 3), np.uint8)
    colours[:5] = (250, 50, 83)
    Image.fromarray(colours).save(src / "SegmentationClass" / "a.PNG")
    (src / "SegmentationClass" / "._a.PNG").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    picture(src / "JPEGImages" / "a.jpg")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.errors == []
    assert (read_mask(tmp_path / "out", "a")[:5] == 1).all()


def test_cvat_mask_saved_as_a_palette_png_is_read_by_its_colours(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    indices = np.zeros((30, 40), np.uint8)
    indices[:5] = 3  # the editor's own palette order: car at index 3
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette([0, 0, 0] * 3 + [250, 50, 83])
    mask.save(src / "SegmentationClass" / "a.png")
    picture(src / "JPEGImages" / "a.jpg")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.errors == []
    assert (read_mask(tmp_path / "out", "a")[:5] == 1).all()
    assert (read_mask(tmp_path / "out", "a")[5:] == 0).all()


def test_a_palette_cvat_mask_is_read_upright_as_an_rgb_one(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    indices = np.zeros((30, 40), np.uint8)
    indices[:, :5] = 1  # stored 40 wide; upright (turned by 90°) 30 wide, car in its top rows
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette([0, 0, 0, 250, 50, 83])
    orientation = Image.Exif()
    orientation[0x0112] = 6  # as the photo it was drawn on, tagged by the camera
    mask.save(src / "SegmentationClass" / "a.png", exif=orientation)
    picture(src / "JPEGImages" / "a.jpg", size=(40, 30))
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.errors == []
    assert read_mask(tmp_path / "out", "a").shape == (40, 30)
    assert (read_mask(tmp_path / "out", "a")[:5] == 1).all()


def test_cvat_mask_finds_a_picture_whose_suffix_has_a_capital(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\ncar:250,50,83::\n")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(src / "SegmentationClass" / "a.png")
    picture(src / "JPEGImages" / "a.Png")
    report = import_annotations("cvat-mask", src, tmp_path / "out")
    assert report.errors == [] and report.written


@pytest.mark.parametrize("fmt", ["cvat", "labelstudio"])
def test_non_utf8_export_file_names_are_shown_as_bytes(fmt, tmp_path: Path) -> None:
    src = tmp_path / "src"
    picture(src / "a.jpg")
    odd = src / os.fsdecode(b"expor\xe9.xml" if fmt == "cvat" else b"expor\xe9.json")
    if fmt == "cvat":
        odd.write_text('<annotations><image id="0" name="a.jpg" width="40" height="30">'
                       '<polygon label="car" points="1,1;oops"/>'
                       '<polygon label="car" points="1,1;9,1;9,9"/></image></annotations>')
    else:
        odd.write_text(json.dumps([{"id": 1, "data": {"image": "a.jpg"}, "annotations": [
            {"result": [{"type": "polygonlabels", "original_width": 40, "original_height": 30,
                         "value": {"points": [[1, 1]], "polygonlabels": ["car"]}},
                        {"type": "polygonlabels", "original_width": 40, "original_height": 30,
                         "value": {"points": [[0, 0], [50, 0], [50, 50]],
                                   "polygonlabels": ["car"]}}]}]}]))
    report = import_annotations(fmt, odd, tmp_path / "out", ImportOptions(images=src))
    assert report.written == []
    [line] = report.errors
    assert line.startswith("b'") and "expor\\xe9" in line and "\n" not in line


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "labelstudio"])
def test_an_image_with_a_shape_that_cannot_be_drawn_is_left_out_in_one_line(
        fmt, tmp_path: Path) -> None:
    """Its region would otherwise be claimed as background."""
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    src = tmp_path / "src"
    picture(src / "a.jpg")
    picture(src / "b.jpg")
    good, bad = [[1, 1], [9, 1], [9, 9]], [[1, 1], [9, 1]]
    if fmt == "labelme":
        for stem, pts in (("a", bad), ("b", good)):
            (src / f"{stem}.json").write_text(json.dumps({
                "shapes": [{"label": "car", "points": good, "shape_type": "polygon"},
                           {"label": "car", "points": pts, "shape_type": "polygon"}],
                "imagePath": f"{stem}.jpg", "imageHeight": 30, "imageWidth": 40}))
        path = src
    elif fmt == "coco":
        path = src / "instances.json"
        path.write_text(json.dumps({
            "images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40},
                       {"id": 2, "file_name": "b.jpg", "height": 30, "width": 40}],
            "categories": [{"id": 1, "name": "car"}],
            "annotations": [{"id": k, "image_id": image, "category_id": 1,
                             "segmentation": [sum(pts, [])]}
                            for k, (image, pts) in enumerate(
                                [(1, good), (1, [*bad, [5]]), (2, good)])]}))
    elif fmt == "cvat":
        path = src / "annotations.xml"
        poly = '<polygon label="car" points="{}" z_order="0"/>'
        path.write_text("<annotations>" + "".join(
            f'<image id="{k}" name="{stem}.jpg" width="40" height="30">'
            + poly.format("1,1;9,1;9,9") + poly.format(";".join(f"{x},{y}" for x, y in pts))
            + "</image>" for k, (stem, pts) in enumerate((("a", bad), ("b", good))))
            + "</annotations>")
    else:
        path = src / "export.json"
        path.write_text(json.dumps([{"id": k, "data": {"image": f"{stem}.jpg"}, "annotations": [
            {"result": [{"type": "polygonlabels", "original_width": 40, "original_height": 30,
                         "value": {"points": p, "polygonlabels": ["car"]}}
                        for p in (good, pts)]}]} for k, (stem, pts) in
            enumerate((("a", [[1, 1]]), ("b", good)))]))
    report = import_annotations(fmt, path, tmp_path / "out", ImportOptions(images=src)
                                if fmt != "labelme" else ImportOptions())
    assert report.written == ["b"]
    [line] = report.errors
    assert "\n" not in line and "image left out" in line
    assert line.startswith(str(src / "a.json") if fmt == "labelme" else str(path))
    assert not (tmp_path / "out" / "masks" / "a.png").exists()


def test_coco_classes_follow_category_ids_not_file_order(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    src = tmp_path / "coco"
    picture(src / "a.jpg")
    path = src / "instances.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40}],
        "categories": [{"id": 5, "name": "tree"}, {"id": 2, "name": "car"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5,
                         "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}]}))
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.classes == ["_background_", "car", "tree"]
    assert read_mask(tmp_path / "out", "a")[5, 5] == 2


@pytest.mark.parametrize("key", ["annotations", "categories"])
def test_coco_top_level_field_of_the_wrong_type_is_one_line(key, tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40}],
           "categories": [{"id": 1, "name": "car"}], "annotations": []}
    doc[key] = "oops"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as e:
        import_annotations("coco", path, tmp_path / "out")
    assert str(e.value) == f"{path}: '{key}' must be a list, not str"


def test_cvat_point_shapes_are_reported_with_the_image_they_belong_to(tmp_path: Path) -> None:
    src = tmp_path / "cvat"
    src.mkdir()
    point = '<points label="car" source="manual" occluded="0" points="3.00,3.00" z_order="0"/>'
    xml = CVAT_XML.replace("</image>", f"{point}</image>")
    (src / "annotations.xml").write_text(xml)
    picture(src / "images" / "a.jpg")
    picture(src / "images" / "b.jpg")
    report = import_annotations("cvat", src, tmp_path / "out")
    lines = [w for w in report.warnings if "point shape(s)" in w]
    assert len(lines) == 1 and "2 point shape(s) in 2 image(s) not drawn" in lines[0]
    assert "image 'a.jpg' points" in lines[0]


def test_pictures_not_found_point_to_the_images_option(tmp_path: Path, capsys) -> None:
    path = coco_file(tmp_path, [
        {"id": 8, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 9, 0, 9, 9]]}])
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    (tmp_path / "coco" / "images" / "a.jpg").rename(elsewhere / "a.jpg")
    assert main(["import", "coco", str(path), "--out", str(tmp_path / "out")]) == 1
    assert "1 picture(s) not found" in capsys.readouterr().out
    assert main(["import", "coco", str(path), "--images", str(elsewhere), "--out",
                 str(tmp_path / "out")]) == 0
    assert "not found" not in capsys.readouterr().out


# -- CVAT: every line names the image; clipped shapes counted -----------------------------------

def cvat_source(tmp_path: Path, xml: str) -> Path:
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "annotations.xml").write_text(xml)
    picture(src / "images" / "a.jpg")
    picture(src / "images" / "b.jpg")
    return src


def test_cvat_size_mismatch_names_the_image(tmp_path: Path) -> None:
    src = cvat_source(tmp_path, CVAT_XML.replace('name="b.jpg" width="40" height="30"',
                                                 'name="b.jpg" width="128" height="96"'))
    report = import_annotations("cvat", src, tmp_path / "out",
                                ImportOptions(empty_as_background=True))
    assert report.errors == [f"{src / 'annotations.xml'}: image 'b.jpg': the annotation is for "
                             f"a 128×96 image, but the image is 40×30 (W×H)"]


def test_cvat_coordinate_that_is_not_a_number_is_one_line_naming_the_field(
        tmp_path: Path) -> None:
    src = cvat_source(tmp_path, CVAT_XML.replace(
        "5.00,5.00;15.00,5.00;15.00,15.00;5.00,15.00", "5.00,5.00;15.00,abc;15.00,15.00"
    ).replace('xtl="0.00"', 'xtl="zero"'))
    report = import_annotations("cvat", src, tmp_path / "out")
    [line] = report.errors
    assert line.startswith(f"{src / 'annotations.xml'}: image 'a.jpg' polygon 0 ('car'): "
                           f"'points' holds '15.00,abc', not an x,y pair of numbers: the shape "
                           f"cannot be drawn (and 1 more shape(s))")
    assert "could not convert" not in line


def test_cvat_shapes_partly_outside_are_counted_in_one_line(tmp_path: Path, capsys) -> None:
    partly = ('<polygon label="car" points="30,20;50,20;50,40;30,40" z_order="3"/>'
              '<polygon label="car" points="-5,0;5,0;5,5" z_order="3"/></image>')
    src = cvat_source(tmp_path, CVAT_XML.replace("</image>", partly, 1))
    assert main(["import", "cvat", str(src), "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert said.count("partly outside") == 1
    assert (f"fcnseg import: 2 shape(s) partly outside their image were clipped to it (the "
            f"first: {src / 'annotations.xml'}: image 'a.jpg' polygon 3 ('car'))") in said
    assert (read_mask(tmp_path / "out", "a")[20:, 30:] == 2).all()


# -- Label Studio: where pictures are looked for ------------------------------------------------

def label_studio_export(folder: Path, stems=("p0", "p1", "p2")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [{"id": k, "data": {"image": f"/data/upload/1/0a1b2c3d-{stem}.png"},
              "annotations": [{"result": [{
                  "type": "polygonlabels", "original_width": 40, "original_height": 30,
                  "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["cat"]}}]}]}
             for k, stem in enumerate(stems)]
    (folder / "export.json").write_text(json.dumps(tasks))
    return folder / "export.json"


def test_label_studio_pictures_not_found_are_one_line_naming_the_first_as_exported(
        tmp_path: Path, capsys) -> None:
    export = label_studio_export(tmp_path / "ls")
    assert main(["import", "labelstudio", str(export), "--out", str(tmp_path / "out")]) == 1
    said = capsys.readouterr().out
    assert "missing image file" not in said
    [line] = [ln for ln in said.splitlines() if "not found" in ln]
    ls = tmp_path / "ls"
    assert line.startswith(f"fcnseg import: error: 3 picture(s) not found, the first "
                           f"'0a1b2c3d-p0.png' of {export}, looked for in {ls}, "
                           f"{ls / 'images'}, {ls / 'upload'}, {ls / 'upload' / '1'};")
    assert line.endswith("if they are in another folder, name it with --images DIR")


def test_label_studio_pictures_in_the_upload_folder_beside_the_export_are_found(
        tmp_path: Path) -> None:
    export = label_studio_export(tmp_path / "ls")
    picture(tmp_path / "ls" / "upload" / "0a1b2c3d-p0.png")
    picture(tmp_path / "ls" / "upload" / "1" / "0a1b2c3d-p1.png")
    report = import_annotations("labelstudio", export, tmp_path / "out")
    assert report.written == ["p0", "p1"] and len(report.errors) == 1


def test_cvat_label_colours_become_the_dataset_palette(tmp_path: Path) -> None:
    src = cvat_source(tmp_path, CVAT_XML)
    import_annotations("cvat", src, tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text(encoding="utf-8"))
    assert config["classes"] == ["_background_", "road", "car"]
    assert config["palette"] == [[0, 0, 0], [170, 0, 255], [255, 0, 0]]
    shown = Image.open(tmp_path / "out" / "masks" / "a.png").getpalette()[:9]
    assert shown == [0, 0, 0, 170, 0, 255, 255, 0, 0]


def test_cvat_label_missing_from_the_task_label_list_is_one_warning(tmp_path: Path) -> None:
    bird = '<polygon label="bird" points="1,1;9,1;9,9" z_order="0"/></image>'
    src = cvat_source(tmp_path, CVAT_XML.replace("</image>", bird))
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.classes == ["_background_", "road", "car", "bird"]
    assert [w for w in report.warnings if "bird" in w] == [
        f"{src / 'annotations.xml'}: image 'a.jpg' polygon 3 ('bird'): label 'bird' is not in "
        f"the export's label list: imported as class 3"]


def test_coco_compressed_rle_whose_runs_stop_short_of_the_image_is_one_line(
        tmp_path: Path) -> None:
    # pycocotools would leave the pixels after the last run as the heap held them.
    short = mask_api.frPyObjects({"size": [1, 50], "counts": [10, 40]}, 1, 50)["counts"]
    path = coco_file(tmp_path, [{"id": 4, "image_id": 1, "category_id": 3, "iscrowd": 0,
                                 "segmentation": {"size": [30, 40], "counts": short.decode()}}])
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.errors == [
        f"{path}: image 'a.jpg' annotation 4 (category 3): RLE counts add up to 50 pixels, not "
        f"the image's 30×40: the shape cannot be drawn; image left out (fix or delete the "
        f"shape)"]


def test_coco_compressed_rle_counts_decode_as_pycocotools_encodes_them() -> None:
    from fcnseg.data.annotations.coco import compressed_rle_counts

    rng = np.random.default_rng(0)
    for shape in [(30, 40), (1, 1), (300, 4000)]:
        for mask in (rng.random(shape) < 0.5, np.ones(shape, bool), np.zeros(shape, bool)):
            flat = mask.reshape(-1, order="F")
            runs = np.diff(np.flatnonzero(np.r_[True, flat[1:] != flat[:-1], True])).tolist()
            runs = runs if not flat[0] else [0, *runs]
            encoded = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
            assert compressed_rle_counts(encoded.decode()).tolist() == runs


@pytest.mark.parametrize(("polygon", "problem"), [
    ([0, 0, 3e5, 0, 3e5, 3e5], "polygon edges run 900000 pixels, more than 100 times the "
                               "image's 40+30 (coordinates far outside the image?)"),
    ([0, 0, float("nan"), 0, 9, 9], "polygon coordinates must be finite numbers")],
    ids=["far-outside", "nan"])
def test_coco_polygons_pycocotools_cannot_draw_in_bounded_memory_are_one_line(
        tmp_path: Path, polygon: list, problem: str) -> None:
    # Coordinates of 3e8 made pycocotools ask for gigabytes and crash the process.
    path = coco_file(tmp_path, [{"id": 5, "image_id": 1, "category_id": 3, "iscrowd": 0,
                                 "segmentation": [polygon]}])
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.errors == [
        f"{path}: image 'a.jpg' annotation 5 (category 3): 'segmentation' {problem}: the shape "
        f"cannot be drawn; image left out (fix or delete the shape)"]


def test_label_studio_pictures_of_local_file_storage_are_found_by_their_file_name(
        tmp_path: Path) -> None:
    # Local storage tasks name the picture in the query: /data/local-files/?d=photos/p0.png.
    export = label_studio_export(tmp_path / "ls", stems=("p0",))
    tasks = json.loads(export.read_text())
    tasks[0]["data"]["image"] = "/data/local-files/?d=photos%2Fp0.png"
    export.write_text(json.dumps(tasks))
    picture(tmp_path / "ls" / "images" / "p0.png")
    report = import_annotations("labelstudio", export, tmp_path / "out")
    assert report.written == ["p0"] and report.errors == []


def test_a_coco_ring_of_two_points_beside_real_rings_is_left_out(tmp_path: Path) -> None:
    # COCO 2017 has annotations whose polygon list holds a ring of 4 numbers beside real ones.
    ring = [2.5, 3.0, 20.2, 4.7, 11.0, 18.9]
    path = coco_file(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentation": [ring, [30.0, 5.0, 31.0, 6.0]]}])
    report = import_annotations("coco", path, tmp_path / "out")
    assert report.written == ["a"] and report.errors == []
    expected = mask_api.decode(mask_api.merge(mask_api.frPyObjects([ring], 30, 40)))
    assert np.array_equal(read_mask(tmp_path / "out", "a") == 1, expected.astype(bool))


def test_check_data_says_once_that_the_pictures_are_missing_from_one_folder(
        tmp_path: Path, capsys) -> None:
    box = [[5, 5, 20, 5, 20, 20, 5, 20]]
    path = coco_file(tmp_path, [{"id": k, "image_id": k, "category_id": 3, "iscrowd": 0,
                                 "segmentation": box} for k in (1, 2, 3)],
                     images=("a.jpg", "b.jpg", "c.jpg"))
    (tmp_path / "coco" / "images").rename(tmp_path / "photos")  # the photos live elsewhere
    assert main(["check-data", "--dataset", "coco", "--root", str(path), "--num-workers",
                 "0"]) == 1
    lines = [x for x in capsys.readouterr().out.splitlines() if "missing" in x]
    assert len(lines) == 1, lines
    assert "3 image files missing from" in lines[0] and "--data images=DIR" in lines[0]
    assert main(["check-data", "--dataset", "coco", "--root", str(path), "--num-workers", "0",
                 "--data", f"images={tmp_path / 'photos'}"]) == 0


def test_label_studio_pictures_uploaded_under_a_cleaned_name_are_found(tmp_path: Path) -> None:
    # Label Studio stores an upload of "my photo (1).png" as "0a1b2c3d-my_photo_1.png".
    export = label_studio_export(tmp_path / "ls", stems=("my_photo_1",))
    picture(tmp_path / "photos" / "my photo (1).png")
    report = import_annotations("labelstudio", export, tmp_path / "out",
                                ImportOptions(images=tmp_path / "photos"))
    assert report.written == ["my_photo_1"] and report.errors == []
    assert (tmp_path / "out" / "images" / "my_photo_1.png").is_file()


def test_label_studio_picture_annotated_in_one_task_is_not_left_to_annotate_by_another(
        tmp_path: Path, capsys) -> None:
    # The task of an upload stays beside the task of its imported predictions.
    export = label_studio_export(tmp_path / "ls", stems=("p0", "p1"))
    tasks = json.loads(export.read_text())
    tasks += [{"id": 9, "data": {"image": "/data/upload/1/0a1b2c3d-p0.png"}, "annotations": []}]
    export.write_text(json.dumps(tasks))
    for stem in ("p0", "p1"):
        picture(tmp_path / "ls" / "images" / f"{stem}.png")
    assert main(["import", "labelstudio", str(export), "--out", str(tmp_path / "out")]) == 0
    assert "no annotations" not in capsys.readouterr().out
    assert not (tmp_path / "out" / "unannotated.txt").exists()
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").glob("*.png")) == ["p0", "p1"]


def label_studio_sites(tmp_path: Path, urls: list[str]) -> Path:
    """An export of one task per URL, each a polygon of its own label (cat, dog, ...)."""
    names = ["cat", "dog", "cow", "owl"]
    tasks = [{"id": k, "data": {"image": url}, "annotations": [{"result": [{
        "type": "polygonlabels", "original_width": 40, "original_height": 30,
        "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": [names[k]]}}]}]}
        for k, url in enumerate(urls)]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    return tmp_path / "export.json"


def test_label_studio_pictures_of_one_name_in_different_folders_import_apart(
        tmp_path: Path, capsys) -> None:
    # The document root's folders (data/) come before the folder named with --images.
    export = label_studio_sites(tmp_path, [
        "/data/local-files/?d=data/photos/site_a/IMG_0001.jpg",
        "/data/local-files/?d=data/photos/site_b/IMG_0001.jpg",
        "/data/local-files/?d=data/photos/site_a/IMG_0002.jpg"])
    for sub in ("site_a/IMG_0001", "site_b/IMG_0001", "site_a/IMG_0002"):
        picture(tmp_path / "photos" / f"{sub}.jpg")
    out = tmp_path / "out"
    assert main(["import", "labelstudio", str(export), "--out", str(out), "--images",
                 str(tmp_path / "photos"), "--val-fraction", "0"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "IMG_0002.jpg", "site_a__IMG_0001.jpg", "site_b__IMG_0001.jpg"]
    classes = yaml.safe_load((out / "dataset.yaml").read_text())["classes"]
    assert read_mask(out, "site_a__IMG_0001")[2, 15] == classes.index("cat")
    assert read_mask(out, "site_b__IMG_0001")[2, 15] == classes.index("dog")
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out), "--num-workers",
                 "0"]) == 0
    assert main(["check-data", "--dataset", "labelstudio", "--root", str(export),
                 "--num-workers", "0", "--data", f"images={tmp_path / 'photos'}"]) == 0


def test_label_studio_picture_name_of_several_is_not_matched_by_name_alone(
        tmp_path: Path) -> None:
    export = label_studio_sites(tmp_path, ["http://host/site_a/IMG_0001.jpg",
                                           "s3://bucket/site_b/IMG_0001.jpg"])
    picture(tmp_path / "photos" / "IMG_0001.jpg")  # which of the two it is, nobody knows
    picture(tmp_path / "photos" / "site_b" / "IMG_0001.jpg")
    report = import_annotations("labelstudio", export, tmp_path / "out",
                                ImportOptions(images=tmp_path / "photos"))
    assert report.written == ["site_b__IMG_0001"]
    assert [i.image_name for i in report.missing] == ["site_a/IMG_0001.jpg"]


# -- Class identity across imports ---------------------------------------------------------------

def cvat_mask_export(tmp_path: Path, labelmap: str) -> Path:
    src = tmp_path / "cvat_mask"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text(labelmap)
    colours = np.zeros((30, 40, 3), np.uint8)
    colours[:10] = (250, 50, 83)
    Image.fromarray(colours).save(src / "SegmentationClass" / "m.png")
    picture(src / "JPEGImages" / "m.jpg")
    return src


def test_background_of_any_spelling_is_class_0_across_imports(tmp_path: Path) -> None:
    out, said = tmp_path / "out", []
    import_annotations("cvat", cvat_source(tmp_path, CVAT_XML), out)  # class 0 _background_
    src = cvat_mask_export(tmp_path, "background:0,0,0::\ncar:250,50,83::\n")
    report = import_annotations("cvat-mask", src, out, report=said.append)
    assert report.classes == ["_background_", "road", "car"]
    mask = read_mask(out, "m")
    assert (mask[:10] == 2).all() and (mask[10:] == 0).all()
    assert [line for line in said if "'background'" in line] == [
        f"{src}: label 'background' imported as class 0 '_background_' of "
        f"{out / 'dataset.yaml'}: a label named like background is class 0, whatever its "
        f"spelling"]


def test_background_label_amid_a_cvat_task_label_list_is_class_0(tmp_path: Path) -> None:
    xml = CVAT_XML.replace("<labels>", "<labels><label><name>road2</name></label>"
                           "<label><name>Background</name></label>")
    report = import_annotations("cvat", cvat_source(tmp_path, xml), tmp_path / "out")
    assert report.classes == ["_background_", "road2", "road", "car"]


def test_a_background_spelling_a_labels_file_lacks_is_said_when_drawn_as_class_0(
        tmp_path: Path) -> None:
    # Refused before background spellings were merged: now class 0, and said so.
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\nroad\ncar\n")
    xml = CVAT_XML.replace('label="road"', 'label="unlabeled"')
    said: list[str] = []
    import_annotations("cvat", cvat_source(tmp_path, xml), tmp_path / "out",
                       ImportOptions(labels=tmp_path / "labels.txt"), report=said.append)
    assert (read_mask(tmp_path / "out", "a")[20:] == 0).all()
    assert [line for line in said if "'unlabeled'" in line] == [
        f"{tmp_path / 'cvat'}: label 'unlabeled' imported as class 0 '_background_': a label "
        f"named like background is class 0, whatever its spelling"]


def test_a_first_label_named_like_background_that_shapes_draw_is_said_to_join_class_0(
        tmp_path: Path) -> None:
    said: list[str] = []
    src = cvat_source(tmp_path, CVAT_XML.replace("road", "unlabeled"))
    report = import_annotations("cvat", src, tmp_path / "out", report=said.append)
    assert report.classes == ["unlabeled", "car"]
    assert [line for line in said if "'unlabeled'" in line] == [
        f"{src}: label 'unlabeled', class 0, is drawn by 1 shape(s): its pixels join class 0 "
        f"with the pixels no shape draws; to keep them apart, give it another name (import "
        f"with --rename unlabeled=NAME)"]


def test_the_background_colour_of_a_cvat_mask_export_is_not_said_to_be_drawn(
        tmp_path: Path) -> None:
    said: list[str] = []
    src = cvat_mask_export(tmp_path, "background:0,0,0::\ncar:250,50,83::\n")
    report = import_annotations("cvat-mask", src, tmp_path / "out", report=said.append)
    assert report.classes == ["background", "car"]
    assert (read_mask(tmp_path / "out", "m")[10:] == 0).all()
    assert [line for line in said if "is drawn by" in line] == []


def test_the_rename_that_keeps_class_0_apart_is_quoted_for_the_shell(tmp_path: Path) -> None:
    said: list[str] = []
    src = cvat_source(tmp_path, CVAT_XML.replace("road", "void "))
    import_annotations("cvat", src, tmp_path / "out", report=said.append)
    [line] = [line for line in said if "is drawn by" in line]
    assert line.endswith("(import with --rename 'void =NAME')")


def test_cvat_mask_labelmap_of_two_labels_of_one_colour_is_refused_in_one_line(
        tmp_path: Path) -> None:
    src = cvat_mask_export(tmp_path, "background:0,0,0::\ncar:250,50,83::\n"
                                     "lane:250,50,83::\n")
    with pytest.raises(ValueError) as err:
        import_annotations("cvat-mask", src, tmp_path / "out")
    assert str(err.value) == (f"{src / 'labelmap.txt'}: labels 'car' and 'lane' share the "
                              f"colour 250,50,83: the masks cannot tell them apart")
    assert not (tmp_path / "out").exists()


def test_coco_categories_of_one_name_are_one_class_said_in_one_line(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 33, "iscrowd": 0,
                                 "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}])
    doc = json.loads(path.read_text())
    doc["categories"].append({"id": 33, "name": "car", "supercategory": "vehicle"})
    path.write_text(json.dumps(doc))
    said: list[str] = []
    report = import_annotations("coco", path, tmp_path / "out", report=said.append)
    assert report.classes == ["_background_", "car", "dog"]
    assert read_mask(tmp_path / "out", "a")[5, 5] == 1
    assert f"warning: {path}: categories 3 and 33 are both named 'car': imported as one " \
           f"class 'car'" in said


def test_coco_import_records_each_class_category_id_and_supercategory(tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0,
                                 "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}])
    import_annotations("coco", path, tmp_path / "out")
    config = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert config["classes"] == ["_background_", "car", "dog"]
    assert config["coco_categories"] == {"car": {"id": 3, "supercategory": "vehicle"},
                                         "dog": {"id": 18, "supercategory": "animal"}}
    assert build_dataset({"name": "folder", "root": str(tmp_path / "out")}).coco_categories == \
        config["coco_categories"]
    assert build_dataset({"name": "coco", "root": str(path)}).coco_categories == \
        config["coco_categories"]


def test_coco_category_id_of_a_class_recorded_before_is_kept_with_one_line(
        tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 18, "iscrowd": 0,
                                 "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}])
    import_annotations("coco", path, tmp_path / "out")
    path.write_text(path.read_text().replace('"id": 18', '"id": 19').replace(
        '"category_id": 18', '"category_id": 19'))
    said: list[str] = []
    import_annotations("coco", path, tmp_path / "out", report=said.append)
    config = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert config["coco_categories"]["dog"] == {"id": 18, "supercategory": "animal"}
    assert f"warning: {tmp_path / 'out' / 'dataset.yaml'}: classes keep the COCO category ids " \
           f"recorded first, which predictions write: 'dog' 18 (here 19)" in said


def test_a_new_class_of_a_coco_category_id_another_class_holds_is_not_recorded_with_one_line(
        tmp_path: Path) -> None:
    path = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
                                 "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}])
    import_annotations("coco", path, tmp_path / "out")  # car 3, dog 18
    path.write_text(path.read_text().replace('"name": "car"', '"name": "truck"'))
    said: list[str] = []
    import_annotations("coco", path, tmp_path / "out", report=said.append)
    config = yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())
    assert "truck" in config["classes"] and "truck" not in config["coco_categories"]
    assert f"warning: {tmp_path / 'out' / 'dataset.yaml'}: new classes whose COCO category id " \
           f"a recorded class holds are numbered after the largest id in predictions: " \
           f"'truck' 3 (that of 'car')" in said


def test_label_studio_pictures_of_one_stem_are_named_apart_from_every_other_picture(
        tmp_path: Path) -> None:
    # IMG.jpg and IMG.png tell the files apart, not their names; site_a__IMG_0001 exists.
    export = label_studio_sites(tmp_path, ["/data/local-files/?d=a/IMG.jpg",
                                           "/data/local-files/?d=b/IMG.png",
                                           "/data/local-files/?d=site_a/IMG_0001.jpg",
                                           "/data/local-files/?d=site_b/IMG_0001.jpg"])
    tasks = json.loads(export.read_text())
    tasks.append({**tasks[0], "id": 4, "data": {
        "image": "/data/local-files/?d=other/site_a__IMG_0001.jpg"}})
    export.write_text(json.dumps(tasks))
    for sub in ("a/IMG.jpg", "b/IMG.png", "site_a/IMG_0001.jpg", "site_b/IMG_0001.jpg",
                "other/site_a__IMG_0001.jpg"):
        picture(tmp_path / "photos" / sub)
    report = import_annotations("labelstudio", export, tmp_path / "out",
                                ImportOptions(images=tmp_path / "photos"))
    assert sorted(report.written) == ["IMG_0001", "a__IMG", "b__IMG", "site_a__IMG_0001",
                                      "site_b__IMG_0001"]


def test_label_studio_uploads_of_one_name_are_found_by_their_upload_names(
        tmp_path: Path) -> None:
    export = label_studio_sites(tmp_path, ["/data/upload/3/1a2b3c4d-IMG.jpg",
                                           "/data/upload/3/5e6f7a8b-IMG.jpg"])
    for name in ("1a2b3c4d-IMG.jpg", "5e6f7a8b-IMG.jpg"):
        picture(tmp_path / "images" / name)
    report = import_annotations("labelstudio", export, tmp_path / "out")
    assert sorted(report.written) == ["1a2b3c4d-IMG", "5e6f7a8b-IMG"]


def test_label_studio_picture_whose_whole_path_ends_another_is_found_there(
        tmp_path: Path) -> None:
    export = label_studio_sites(tmp_path, ["/data/local-files/?d=IMG.jpg",
                                           "/data/local-files/?d=a/IMG.jpg"])
    picture(tmp_path / "images" / "IMG.jpg")
    picture(tmp_path / "images" / "a" / "IMG.jpg")
    report = import_annotations("labelstudio", export, tmp_path / "out")
    assert sorted(report.written) == ["IMG", "a__IMG"]


def test_classes_no_shape_of_the_import_draws_are_named_in_one_line(tmp_path: Path) -> None:
    xml = CVAT_XML.replace("<labels>", "<labels><label><name>keypoint</name></label>"
                           "<label><name>bicycle</name></label>").replace(
        '<image id="1" name="b.jpg" width="40" height="30">',
        '<image id="1" name="b.jpg" width="40" height="30"><points label="keypoint" '
        'source="manual" occluded="0" points="3,4" z_order="0"/>')
    src, said = cvat_source(tmp_path, xml), []
    report = import_annotations("cvat", src, tmp_path / "out", report=said.append)
    assert report.classes == ["_background_", "keypoint", "bicycle", "road", "car"]
    assert [line for line in said if "bicycle" in line] == [
        f"{src}: 2 class(es) that no shape of the import draws: 'keypoint' (points only), "
        f"'bicycle': a model trained on them learns outputs that never occur (evaluation leaves "
        f"them out); to leave them out, import with --labels LABELS.txt listing the classes to "
        f"keep"]


def _reimported_apart(tmp_path: Path):
    """A Label Studio project of one IMG_0001.jpg imported, then again with a second
    IMG_0001.jpg of another folder: the dataset folder and the two imports' reports."""
    urls = ["/data/local-files/?d=site_a/IMG_0001.jpg", "/data/local-files/?d=site_b/IMG_0001.jpg"]
    for sub in ("site_a", "site_b"):
        picture(tmp_path / "photos" / sub / "IMG_0001.jpg")
    options, out = ImportOptions(images=tmp_path / "photos", val_fraction=0), tmp_path / "out"
    earlier = import_annotations("labelstudio", label_studio_sites(tmp_path, urls[:1]), out,
                                 options)
    return out, earlier, import_annotations("labelstudio", label_studio_sites(tmp_path, urls),
                                            out, options)


def test_label_studio_reimport_naming_pictures_apart_sets_their_earlier_mask_aside(
        tmp_path: Path) -> None:
    out, earlier, report = _reimported_apart(tmp_path)
    assert earlier.written == ["IMG_0001"]  # its name was its own then
    assert sorted(report.written) == ["site_a__IMG_0001", "site_b__IMG_0001"]
    assert sorted(p.stem for p in (out / "masks").iterdir()) == sorted(report.written)
    assert [p.stem for p in (out / "stale_masks").iterdir()] == ["IMG_0001"]
    assert (out / "train.txt").read_text().split() == sorted(report.written)
    assert any("tells it apart" in line and "IMG_0001" in line for line in report.warnings)


def test_label_studio_reimport_naming_pictures_apart_sets_their_earlier_picture_aside(
        tmp_path: Path) -> None:
    out, _, report = _reimported_apart(tmp_path)
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(report.written)
    assert [p.name for p in (out / "stale_images").iterdir()] == ["IMG_0001.jpg"]
