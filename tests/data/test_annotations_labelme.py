"""labelme JSON files read and imported as labelme writes them (labelme itself is not used)."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.annotations import ImportOptions, RasterOptions, import_annotations
from fcnseg.data.folder import FolderSegmentation


def shape(label, points, kind="polygon", **extra):
    return {"label": label, "points": points, "group_id": None, "description": "",
            "shape_type": kind, "flags": {}, "mask": None, **extra}


def write_labelme(folder: Path, stem: str, shapes: list, size=(40, 60), *, embed=False,
                  image=True) -> Path:
    """``stem.jpg`` (unless not ``image``) and ``stem.json`` as labelme 5 saves them."""
    h, w = size
    picture = np.full((h, w, 3), 90, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    if image:
        (folder / f"{stem}.png").write_bytes(buf.getvalue())
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png",
           "imageData": base64.b64encode(buf.getvalue()).decode() if embed else None,
           "imageHeight": h, "imageWidth": w}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def read_mask(out: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / f"{stem}.png"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "labelme"
    folder.mkdir()
    return folder


def test_every_shape_kind_is_drawn_as_labelme_draws_it(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [
        shape("road", [[0, 30], [59, 30], [59, 39], [0, 39]]),
        shape("car", [[5, 5], [15, 12]], "rectangle"),
        shape("sign", [[40, 10], [40, 14]], "circle"),
        shape("wire", [[0, 20], [59, 20]], "line"),
        shape("wire", [[20, 0], [20, 8], [30, 8]], "linestrip"),
        shape("car", [[50, 2]], "point"),
    ])
    report = import_annotations("labelme", src, tmp_path / "out",
                                ImportOptions(raster=RasterOptions(line_width=3)))
    classes = report.classes
    assert classes == ["_background_", "car", "road", "sign", "wire"]
    mask = read_mask(tmp_path / "out", "a")
    assert (mask[30:40] == classes.index("road")).all()
    assert (mask[5:13, 5:16] == classes.index("car")).all() and mask[4, 5] == 0
    assert mask[10, 40] == mask[14, 40] == mask[6, 40] == classes.index("sign")
    assert mask[5, 40] == 0  # radius 4 about (40, 10)
    assert (mask[19:22, 0:60] == classes.index("wire")).all() and mask[23, 10] == 0
    assert (mask[0:9, 20] == classes.index("wire")).all()
    assert mask[2, 50] == 0  # points mark no region
    assert any("1 point shape(s) in 1 image(s) not drawn" in w for w in report.warnings)


def test_point_shapes_of_many_files_are_one_line(src: Path, tmp_path: Path, capsys) -> None:
    for stem in ("a", "b", "c"):
        write_labelme(src, stem, [shape("car", [[0, 0], [9, 9]], "rectangle"),
                                  shape("dent", [[5, 5]], "point"),
                                  shape("dent", [[6, 6]], "point")])
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "out")]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "point shape" in line]
    assert said == [f"fcnseg import: warning: 6 point shape(s) in 3 image(s) not drawn: points "
                    f"mark no region, so the masks leave them out (the first: "
                    f"{src / 'a.json'}: shape 1 (point 'dent'))"]


def test_later_shapes_are_drawn_on_top(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("a", [[0, 0], [30, 30]], "rectangle"),
                             shape("b", [[20, 20], [50, 35]], "rectangle")])
    import_annotations("labelme", src, tmp_path / "out")
    assert read_mask(tmp_path / "out", "a")[25, 25] == 2


def test_overlap_ignore_marks_pixels_of_two_classes(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("a", [[0, 0], [30, 30]], "rectangle"),
                             shape("b", [[20, 20], [50, 35]], "rectangle"),
                             shape("a", [[0, 0], [5, 5]], "rectangle")])
    import_annotations("labelme", src, tmp_path / "out",
                       ImportOptions(raster=RasterOptions(overlap="ignore")))
    mask = read_mask(tmp_path / "out", "a")
    assert mask[25, 25] == 255 and mask[10, 10] == 1 and mask[33, 45] == 2
    assert mask[2, 2] == 1  # two shapes of one class are no conflict


def test_labels_file_follows_labelme2voc(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle"),
                             shape("dog", [[20, 0], [29, 9]], "rectangle"),
                             shape("blur", [[40, 0], [49, 9]], "rectangle"),
                             shape("_background_", [[2, 2], [4, 4]], "rectangle")])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ndog\ncat\nblur\n")
    report = import_annotations("labelme", src, tmp_path / "out", ImportOptions(labels=labels))
    assert report.classes == ["_background_", "dog", "cat", "blur"]
    mask = read_mask(tmp_path / "out", "a")
    assert mask[5, 5] == 2 and mask[5, 25] == 1 and mask[5, 45] == 3 and mask[3, 3] == 0
    (src / "b.json").unlink(missing_ok=True)
    write_labelme(src, "b", [shape("__ignore__", [[0, 0], [9, 9]], "rectangle")])
    import_annotations("labelme", src, tmp_path / "out", ImportOptions(labels=labels))
    assert read_mask(tmp_path / "out", "b")[5, 5] == 255


def test_a_label_not_in_the_list_is_refused_in_one_line(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle"),
                             shape("cow", [[20, 0], [29, 9]], "rectangle")])
    write_labelme(src, "b", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncat\n")
    report = import_annotations("labelme", src, tmp_path / "out", ImportOptions(labels=labels))
    assert report.written == ["b"]
    [error] = report.errors
    assert "\n" not in error
    assert str(src / "a.json") in error and "shape 1 (rectangle 'cow')" in error
    assert "not in the label list" in error


def test_unknown_labels_can_be_added_after_the_listed_ones(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cow", [[20, 0], [29, 9]], "rectangle")])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncat\n")
    report = import_annotations("labelme", src, tmp_path / "out",
                                ImportOptions(labels=labels, add_unknown=True))
    assert report.classes == ["_background_", "cat", "cow"] and report.written == ["a"]


def test_a_shape_outside_the_image_is_skipped_in_one_line(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[100, 100], [120, 100], [120, 130]]),
                             shape("cat", [[0, 0], [9, 9]], "rectangle")])
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == ["a"]
    [warning] = [w for w in report.warnings if w.startswith(str(src))]
    assert warning.startswith(str(src / "a.json")) and "shape 0 (polygon 'cat')" in warning
    assert "60×40 image" in warning


def test_a_missing_image_file_is_one_line(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")], image=False)
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == []
    assert report.errors == [f"{src / 'a.json'}: missing image file {src / 'a.png'}"]


def test_embedded_image_data_is_used_without_the_file(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")], embed=True,
                  image=False)
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == ["a"]
    assert Image.open(tmp_path / "out" / "images" / "a.png").size == (60, 40)


def test_a_file_name_that_is_not_utf8_is_one_line(src: Path, tmp_path: Path) -> None:
    path = write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    bad = src / os.fsdecode(b"caf\xe9.json")
    path.rename(bad)
    report = import_annotations("labelme", src, tmp_path / "out")
    [error] = report.errors
    assert "caf\\xe9" in error and "not UTF-8" in error and "\n" not in error


def test_a_malformed_shape_leaves_its_image_out_in_one_line(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9]]),
                             shape("cat", [[0, 0], [9, 9]], "rectangle")])
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == []
    [line] = report.errors
    assert line.startswith(f"{src / 'a.json'}: shape 0 (polygon 'cat')")
    assert "image left out" in line


def test_images_without_annotations_are_warned_about_and_listed(src: Path,
                                                                tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    Image.new("RGB", (8, 8)).save(src / "lonely.jpg")
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.unannotated == [src / "lonely.jpg"]
    assert (tmp_path / "out" / "unannotated.txt").read_text() == f"{src / 'lonely.jpg'}\n"


def test_the_unannotated_list_holds_absolute_paths_usable_from_anywhere(
        src: Path, tmp_path: Path, monkeypatch) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    Image.new("RGB", (8, 8)).save(src / "IMG 0002.jpg")
    monkeypatch.chdir(tmp_path)
    import_annotations("labelme", Path("labelme"), Path("out"))
    listed = (tmp_path / "out" / "unannotated.txt").read_text(encoding="utf-8")
    assert listed == f"{src / 'IMG 0002.jpg'}\n" and Path(listed.strip()).is_absolute()


def _correction_of_b(src: Path, tmp_path: Path) -> Path:
    """A folder holding a labelme file for picture b of ``src`` (a correction made elsewhere)."""
    corrections = tmp_path / "corrections"
    corrections.mkdir()
    doc = json.loads(write_labelme(corrections, "b", [shape("cat", [[0, 0], [5, 5]],
                                                            "rectangle")], image=False)
                     .read_text())
    doc["imagePath"] = os.path.relpath(src / "b.png", corrections)
    (corrections / "b.json").write_text(json.dumps(doc))
    return corrections


def test_importing_corrections_keeps_the_earlier_unannotated_list_less_them(
        src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    for stem in ("b", "c"):
        Image.new("RGB", (60, 40)).save(src / f"{stem}.png")
    out = tmp_path / "out"
    import_annotations("labelme", src, out)
    assert (out / "unannotated.txt").read_text() == f"{src / 'b.png'}\n{src / 'c.png'}\n"
    assert import_annotations("labelme", _correction_of_b(src, tmp_path), out).written == ["b"]
    assert (out / "unannotated.txt").read_text() == f"{src / 'c.png'}\n"


def test_importing_corrections_of_every_listed_image_leaves_the_list_empty(
        src: Path, tmp_path: Path) -> None:
    # A labelling loop reads the list again each round: it stays, empty, once all is done.
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    Image.new("RGB", (60, 40)).save(src / "b.png")
    out = tmp_path / "out"
    import_annotations("labelme", src, out)
    assert (out / "unannotated.txt").read_text() == f"{src / 'b.png'}\n"
    assert import_annotations("labelme", _correction_of_b(src, tmp_path), out).written == ["b"]
    assert (out / "unannotated.txt").read_text() == ""


def test_a_label_only_points_use_is_no_class_and_needs_no_labels_entry(
        src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle"),
                             shape("eye", [[4, 4]], "point")])
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.classes == ["_background_", "cat"] and report.written == ["a"]
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncat\n")
    report = import_annotations("labelme", src, tmp_path / "out2",
                                ImportOptions(labels=labels))
    assert report.written == ["a"] and not report.errors


def test_import_command_writes_a_folder_that_check_data_passes(src: Path, tmp_path: Path,
                                                               capsys) -> None:
    for k in range(5):
        write_labelme(src, f"img{k}", [shape("cat", [[0, 0], [9, 9 + k]], "rectangle"),
                                       shape("dog", [[30, 5], [50, 5], [40, 30]])])
    out = tmp_path / "out"
    assert main(["import", "labelme", str(src), "--out", str(out)]) == 0
    ds = FolderSegmentation(out, "train")
    assert ds.classes == ("_background_", "cat", "dog")
    assert sorted((out / "train.txt").read_text().split() + (out / "val.txt").read_text()
                  .split()) == [f"img{k}" for k in range(5)]
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out), "--num-workers",
                 "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_import_command_exits_1_when_an_image_is_left_out(src: Path, tmp_path: Path,
                                                          capsys) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")], image=False)
    assert main(["import", "labelme", str(src), "--out", str(tmp_path / "out")]) == 1
    assert (f"fcnseg import: error: 1 picture(s) not found, the first 'a.png' of {src / 'a.json'}, "
            f"looked for in {src}; if they") in capsys.readouterr().out


def test_labelme_folder_is_a_dataset(src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    ds = build_dataset({"name": "labelme", "root": str(src), "overlap": "ignore"})
    image, label = ds[0]
    assert image.shape == (40, 60, 3) and label.dtype == np.int64
    assert ds.classes == ("_background_", "cat") and label[5, 5] == 1 and label[20, 20] == 0


def test_importing_more_keeps_the_classes_and_lists_every_image(src: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_labelme(src, "a", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    import_annotations("labelme", src, out)
    more = tmp_path / "more"
    more.mkdir()
    write_labelme(more, "b", [shape("cat", [[0, 0], [9, 9]], "rectangle"),
                              shape("dog", [[20, 0], [29, 9]], "rectangle")])
    report = import_annotations("labelme", more, out)
    assert report.classes == ["_background_", "dog", "cat"]
    assert read_mask(out, "a")[5, 5] == 1 and read_mask(out, "b")[5, 25] == 1
    listed = (out / "train.txt").read_text().split() + (out / "val.txt").read_text().split()
    assert sorted(listed) == ["a", "b"]


def test_files_written_by_predict_are_not_images_to_annotate(src: Path,
                                                             tmp_path: Path) -> None:
    from fcnseg.data.annotations.labelme import PREDICT_MANIFEST
    from fcnseg.inference.files import MANIFEST_NAME

    assert PREDICT_MANIFEST == MANIFEST_NAME
    write_labelme(src, "a", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    Image.new("P", (4, 4)).save(src / "a_label.png")
    (src / MANIFEST_NAME).write_text("a_label.png\n")
    assert import_annotations("labelme", src, tmp_path / "out").unannotated == []


def test_a_mask_shape_holding_postscript_never_reaches_ghostscript(
        src: Path, tmp_path: Path, fake_ghostscript: Path, postscript_bytes: bytes) -> None:
    mask = base64.b64encode(postscript_bytes).decode()
    write_labelme(src, "a", [shape("cat", [[2, 2], [17, 17]], "mask", mask=mask),
                             shape("cat", [[0, 0], [9, 9]], "rectangle")])
    report = import_annotations("labelme", src, tmp_path / "out")
    assert not fake_ghostscript.exists(), "Ghostscript was run on an untrusted file"
    assert report.written == []
    [line] = report.errors
    assert line.startswith(f"{src / 'a.json'}: shape 0") and "not a base64 PNG" in line


def test_import_command_options(src: Path, tmp_path: Path, capsys) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [30, 30]], "rectangle"),
                             shape("cow", [[20, 20], [50, 35]], "rectangle")])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncat\n")
    out = tmp_path / "out"
    assert main(["import", "labelme", str(src), "--out", str(out), "--labels", str(labels),
                 "--add-unknown-labels", "--overlap", "ignore"]) == 0
    assert read_mask(out, "a")[25, 25] == 255 and read_mask(out, "a")[30, 45] == 2
    assert main(["import", "labelme", str(src), "--out", str(out), "--add-unknown-labels"]) == 2
    assert "--add-unknown-labels needs --labels" in capsys.readouterr().err
    assert main(["import", "labelme", str(src), "--out", str(out), "--labels",
                 str(tmp_path / "none.txt")]) == 2
    assert f"{tmp_path / 'none.txt'}: no such labels file" in capsys.readouterr().err


def test_an_import_whose_validation_split_is_empty_says_so(src: Path, tmp_path: Path) -> None:
    # By the hash of their names, "a" and "b" both fall into train at the default 0.2.
    for stem in ("a", "b"):
        write_labelme(src, stem, [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    report = import_annotations("labelme", src, tmp_path / "out")
    assert (tmp_path / "out" / "val.txt").read_text() == ""
    assert any("val.txt: no image fell into the validation split" in w and "--val-fraction" in w
               for w in report.warnings)
    assert len(report.written) == 2


def test_an_import_whose_training_split_is_empty_says_so(src: Path, tmp_path: Path) -> None:
    # By the hash of their names, "c" and "d" both fall into val at 0.9.
    for stem in ("c", "d"):
        write_labelme(src, stem, [shape("cat", [[0, 0], [9, 9]], "rectangle")])
    report = import_annotations("labelme", src, tmp_path / "out",
                                ImportOptions(val_fraction=0.9))
    assert (tmp_path / "out" / "train.txt").read_text() == ""
    assert [w for w in report.warnings if "train.txt: no image fell into the training split"
            in w and "smaller --val-fraction" in w and "\n" not in w] != []
    assert len(report.written) == 2


def test_check_data_reads_labelme_with_the_class_order_of_a_labels_file(
        src: Path, tmp_path: Path, capsys) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle"),
                             shape("dog", [[20, 0], [29, 9]], "rectangle")])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ndog\ncat\n")
    capsys.readouterr()
    assert main(["check-data", "--dataset", "labelme", "--root", str(src), "--labels",
                 str(labels), "--num-workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert 0 < printed.index("dog") < printed.index("cat")


def test_check_data_labels_is_refused_for_a_dataset_without_annotations(tmp_path: Path,
                                                                        capsys) -> None:
    assert main(["check-data", "--dataset", "synthetic", "--labels",
                 str(tmp_path / "labels.txt")]) == 2
    assert "--labels: only for cityscapes and the annotation datasets" in capsys.readouterr().err


def test_a_prediction_nobody_edited_is_left_out_as_not_reviewed(src: Path, tmp_path: Path,
                                                                capsys) -> None:
    """``fcnseg predict --format labelme`` pre-annotations are corrected in labelme, then
    imported: one that nobody saved since is the model's guess, not a label."""
    from fcnseg.inference.files import content_digest, record_outputs

    unreviewed = write_labelme(src, "a", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    corrected = write_labelme(src, "b", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    record_outputs(src, [unreviewed, corrected],
                   [content_digest(unreviewed.read_bytes()), "sha256=" + "0" * 64])
    out = tmp_path / "out"
    assert main(["import", "labelme", str(src), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert (f"fcnseg import: warning: {src}: 1 labelme file(s) fcnseg predict wrote and nobody "
            f"saved since left out as not reviewed (the first: {unreviewed}): correct them in "
            "labelme and save (saving one unchanged accepts it)\n") in said
    assert not (out / "masks" / "a.png").exists() and (out / "masks" / "b.png").exists()
    assert (out / "unannotated.txt").read_text() == f"{src / 'a.png'}\n"


def test_an_image_left_out_as_not_reviewed_is_reported_once(src: Path, tmp_path: Path,
                                                            capsys) -> None:
    from fcnseg.inference.files import content_digest, record_outputs

    photos = tmp_path / "photos"
    photos.mkdir()
    beside = write_labelme(src, "a", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    apart = write_labelme(photos, "b", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    moved = src / "b.json"
    moved.write_text(apart.read_text().replace('"b.png"', '"../photos/b.png"'))
    apart.unlink()
    write_labelme(src, "c", [shape("dog", [[0, 0], [9, 9]], "rectangle")])
    record_outputs(src, [beside, moved],
                   [content_digest(beside.read_bytes()), content_digest(moved.read_bytes())])
    out = tmp_path / "out"
    assert main(["import", "labelme", str(src), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "2 labelme file(s) fcnseg predict wrote and nobody saved since" in said
    assert "no annotations" not in said
    assert f"imported 1 image(s) into {out} (2 classes: _background_, dog); 2 not reviewed\n" \
        in said
    assert set((out / "unannotated.txt").read_text().splitlines()) == {
        str(photos / "b.png"), str(src / "a.png")}


def test_an_annotation_of_a_rotated_photos_stored_size_names_its_exif_orientation(
        src: Path, tmp_path: Path) -> None:
    write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")], size=(40, 60),
                  image=False)
    exif = Image.Exif()
    exif[0x0112] = 6  # a portrait photo stored sideways: 60×40 stored, 40×60 upright (W×H)
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(src / "a.png", exif=exif.tobytes())
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == []
    (line,) = report.errors
    assert line.startswith(f"{src / 'a.json'}: the annotation is for a 60×40 image, but the "
                           f"image is 40×60 (W×H) upright: its EXIF orientation tag (6) turns "
                           f"the stored 60×40 pixels upright")
    assert "the annotation has the stored (sideways) size" in line
    assert "set the annotation's image size to 40×60" in line and "\n" not in line


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_avif_photo_is_imported_and_read_by_the_folder_dataset(src: Path,
                                                                    tmp_path: Path) -> None:
    path = write_labelme(src, "a", [shape("cat", [[0, 0], [9, 9]], "rectangle")], image=False)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "imagePath": "a.avif"}))
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(src / "a.avif")
    report = import_annotations("labelme", src, tmp_path / "out")
    assert report.written == ["a"] and report.errors == []
    image, label = FolderSegmentation(tmp_path / "out")[0]
    assert image.shape == (40, 60, 3) and label.shape == (40, 60)
    assert label[5, 5] == 1 and label[30, 50] == 0
