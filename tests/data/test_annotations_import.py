"""fcnseg import across tools and imports: spellings of one class, labels a labels file lacks,
COCO crowd regions, and the fields of dataset.yaml kept when importing more."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.annotations import ImportOptions, RasterOptions, import_annotations
from fcnseg.data.annotations.val_split import split_of
from tests.data.test_annotations_every_format import write_source

# pycocotools 2.0 on NumPy 2 warns when it decodes (its __array__ lacks the copy keyword).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def labelme_file(folder: Path, stem: str, labels: list[str], size=(30, 40)) -> Path:
    """``stem.png`` and ``stem.json``: one 8×8 rectangle per label, side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(folder / f"{stem}.png")
    shapes = [{"label": name, "points": [[10 * k, 0], [10 * k + 7, 7]], "group_id": None,
               "shape_type": "rectangle", "flags": {}} for k, name in enumerate(labels)]
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png",
           "imageData": None, "imageHeight": size[0], "imageWidth": size[1]}
    (folder / f"{stem}.json").write_text(json.dumps(doc))
    return folder / f"{stem}.json"


def coco_file(root: Path, categories: list[str], annotations: list[dict]) -> Path:
    """A COCO file of one 30×40 picture ``c.png``, the categories numbered from 1."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / "images" / "c.png")
    doc = {"images": [{"id": 1, "file_name": "c.png", "height": 30, "width": 40}],
           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(categories)],
           "annotations": [{"id": k + 1, "image_id": 1, **a} for k, a in enumerate(annotations)]}
    (root / "instances.json").write_text(json.dumps(doc))
    return root / "instances.json"


def mask_rle(rows: slice, cols: slice) -> dict:
    """An uncompressed COCO RLE of a 30×40 mask, as CVAT writes masks."""
    mask = np.zeros((30, 40), np.uint8)
    mask[rows, cols] = 1
    flat = mask.reshape(-1, order="F")
    runs = np.diff(np.flatnonzero(np.r_[True, flat[1:] != flat[:-1], True])).tolist()
    return {"size": [30, 40], "counts": runs if flat[0] == 0 else [0, *runs]}


def read_mask(out: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / f"{stem}.png"))


SQUARE = [[0, 0, 8, 0, 8, 8, 0, 8]]


# -- one class, two spellings -------------------------------------------------------------------

def test_a_class_spelled_in_another_case_by_a_second_tool_is_refused_in_one_line(
        tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    labelme_file(tmp_path / "ls", "a", ["Nucleus"])
    assert main(["import", "labelme", str(tmp_path / "ls"), "--out", str(out)]) == 0
    before = (out / "dataset.yaml").read_text()
    src = coco_file(tmp_path / "cvat", ["nucleus"], [{"category_id": 1, "segmentation": SQUARE}])
    capsys.readouterr()
    assert main(["import", "coco", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert f"'Nucleus' ({out / 'dataset.yaml'}) and 'nucleus' ({src})" in line
    assert "--rename nucleus=Nucleus" in line and "nothing imported" in line
    assert (out / "dataset.yaml").read_text() == before
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png"]


def test_spellings_within_one_export_that_differ_only_in_case_or_spaces_are_refused(
        tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["cell"])
    labelme_file(tmp_path / "src", "b", ["Cell "])
    with pytest.raises(ValueError, match=r"'cell' \(.*\) and 'Cell ' \(.*\)"):
        import_annotations("labelme", tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rename_merges_the_second_tool_s_spelling_into_the_class_already_there(
        tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    labelme_file(tmp_path / "ls", "a", ["Membrane", "Nucleus"])
    import_annotations("labelme", tmp_path / "ls", out)
    src = coco_file(tmp_path / "cvat", ["nucleus", "membrane"], [
        {"category_id": 1, "segmentation": SQUARE},
        {"category_id": 2, "segmentation": [[20, 20, 28, 20, 28, 28, 20, 28]]}])
    assert main(["import", "coco", str(src), "--out", str(out), "--rename", "nucleus=Nucleus",
                 "--rename", " membrane =Membrane"]) == 0
    assert "(3 classes: _background_, Membrane, Nucleus)" in capsys.readouterr().out
    mask = read_mask(out, "c")
    assert mask[4, 4] == 2 and mask[24, 24] == 1 and mask[15, 15] == 0


def test_a_name_to_rename_that_no_label_has_is_one_warning(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["cell"])
    lines: list[str] = []
    import_annotations("labelme", tmp_path / "src", tmp_path / "out",
                       ImportOptions(rename={"Cel": "cell"}), report=lines.append)
    assert [ln for ln in lines if "--rename" in ln] == [
        f"warning: --rename: no label 'Cel' in {tmp_path / 'src'} (nothing renamed from it)"]


def test_a_malformed_rename_is_refused_by_the_command(tmp_path: Path, capsys) -> None:
    labelme_file(tmp_path / "src", "a", ["cell"])
    with pytest.raises(SystemExit):
        main(["import", "labelme", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
              "--rename", "cell"])
    assert "expected FROM=TO" in capsys.readouterr().err


# -- labels a labels file lacks -----------------------------------------------------------------

def test_a_label_the_labels_file_lacks_is_one_line_with_its_count_and_closest_class(
        tmp_path: Path) -> None:
    for stem in ("a", "b", "c"):
        labelme_file(tmp_path / "src", stem, ["nucleis", "nucleis", "membrane"])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nnucleus\nmembrane\n")
    lines: list[str] = []
    report = import_annotations("labelme", tmp_path / "src", tmp_path / "out",
                                ImportOptions(labels=labels), report=lines.append)
    assert [ln for ln in lines if "nucleis" in ln] == [
        f"error: label 'nucleis' is not in {labels}: 6 shape(s) in 3 image(s) refused, those "
        f"images not imported (did you mean 'nucleus'? import with --rename nucleis=nucleus)"]
    assert report.written == [] and len(report.errors) == 3


def test_a_label_like_no_class_is_told_to_be_added(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["xyz"])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nnucleus\n")
    lines: list[str] = []
    import_annotations("labelme", tmp_path / "src", tmp_path / "out",
                       ImportOptions(labels=labels), report=lines.append)
    [line] = [ln for ln in lines if "'xyz'" in ln]
    assert line.endswith("(add it to the labels file, or import with --add-unknown-labels)")


# -- COCO iscrowd -------------------------------------------------------------------------------

def test_cvat_coco_masks_marked_iscrowd_keep_their_class_and_are_counted(
        tmp_path: Path) -> None:
    src = coco_file(tmp_path / "cvat", ["nucleus", "membrane"], [
        {"category_id": 1, "segmentation": SQUARE, "iscrowd": 0},
        {"category_id": 2, "segmentation": mask_rle(slice(20, 25), slice(10, 30)),
         "iscrowd": 1, "attributes": {"occluded": False}}])
    lines: list[str] = []
    report = import_annotations("coco", src, tmp_path / "out", report=lines.append)
    mask = read_mask(tmp_path / "out", "c")
    assert (mask[20:25, 10:30] == 2).all() and mask[4, 4] == 1 and (mask != 255).all()
    assert report.ignored == {}
    [line] = [ln for ln in lines if "iscrowd" in ln]
    assert line.startswith("1 iscrowd region(s) imported as their class (1 membrane)")
    assert "--crowd-as-ignore" in line


def test_crowd_as_ignore_ignores_them_and_counts_their_pixels(tmp_path: Path) -> None:
    src = coco_file(tmp_path / "cvat", ["nucleus", "membrane"], [
        {"category_id": 2, "segmentation": mask_rle(slice(20, 25), slice(10, 30)),
         "iscrowd": 1}])
    lines: list[str] = []
    report = import_annotations("coco", src, tmp_path / "out",
                                ImportOptions(raster=RasterOptions(crowd_as_ignore=True)),
                                report=lines.append)
    assert (read_mask(tmp_path / "out", "c")[20:25, 10:30] == 255).all()
    assert report.ignored == {"iscrowd": 100}
    assert ("100 pixel(s) of the masks written are ignored (value 255): 100 in 1 iscrowd "
            "region(s) (1 membrane), as --crowd-as-ignore asks") in lines


def test_pixels_ignored_by_label_and_by_overlap_are_counted_by_why(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["__ignore__", "cell"])
    folder = tmp_path / "src"
    doc = json.loads((folder / "a.json").read_text())
    doc["shapes"].append({**doc["shapes"][1], "label": "nucleus",
                          "points": [[14, 0], [21, 7]]})  # overlaps 'cell' by 4×8 pixels
    (folder / "a.json").write_text(json.dumps(doc))
    report = import_annotations("labelme", folder, tmp_path / "out",
                                ImportOptions(raster=RasterOptions(overlap="ignore")))
    assert report.ignored == {"__ignore__": 64, "overlap": 32}


# -- dataset.yaml -------------------------------------------------------------------------------

def test_importing_more_keeps_the_fields_of_dataset_yaml_the_import_does_not_write(
        tmp_path: Path) -> None:
    out = tmp_path / "ds"
    labelme_file(tmp_path / "one", "a", ["cell"])
    import_annotations("labelme", tmp_path / "one", out)
    with (out / "dataset.yaml").open("a") as f:
        f.write("bands: [intensity]\nbackground: cell\n")
    labelme_file(tmp_path / "two", "b", ["cell", "nucleus"])
    lines: list[str] = []
    import_annotations("labelme", tmp_path / "two", out, report=lines.append)
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    assert config["bands"] == ["intensity"] and config["background"] == "cell"
    assert config["classes"] == ["_background_", "cell", "nucleus"]
    assert not [ln for ln in lines if "dataset.yaml" in ln]


def test_an_import_that_must_change_a_field_of_dataset_yaml_says_so(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    labelme_file(tmp_path / "one", "a", ["cell"])
    import_annotations("labelme", tmp_path / "one", out)
    with (out / "dataset.yaml").open("a") as f:
        f.write("bands: [intensity]\n")
    lines: list[str] = []
    import_annotations("labelme", tmp_path / "one", out, ImportOptions(ignore_index=200),
                       report=lines.append)
    assert [ln for ln in lines if "dataset.yaml" in ln] == [
        f"warning: {out / 'dataset.yaml'}: changed ignore_index 255 -> 200 (the masks imported "
        f"before hold the earlier value); kept bands"]
    assert yaml.safe_load((out / "dataset.yaml").read_text())["bands"] == ["intensity"]


def test_the_dataset_read_directly_renames_and_ignores_crowds_as_the_import_does(
        tmp_path: Path) -> None:
    src = coco_file(tmp_path / "cvat", ["nucleus", "membrane"], [
        {"category_id": 1, "segmentation": SQUARE},
        {"category_id": 2, "segmentation": mask_rle(slice(20, 25), slice(10, 30)),
         "iscrowd": 1}])
    dataset = build_dataset({"name": "coco", "root": str(src), "crowd_as_ignore": True,
                             "rename": {"nucleus": "Nucleus"}})
    _, label = dataset.load(0)
    assert dataset.classes == ("_background_", "Nucleus", "membrane")
    assert label[4, 4] == 1 and (label[20:25, 10:30] == 255).all()


def test_two_spellings_in_the_labels_file_are_told_to_be_fixed_there(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["cell"])
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\ncell\nCell\n")
    with pytest.raises(ValueError, match=f"spell each class one way in {labels} "):
        import_annotations("labelme", tmp_path / "src", tmp_path / "out",
                           ImportOptions(labels=labels))


# -- one-channel images deeper than 8 bits ------------------------------------------------------

def labelme_tiff(folder: Path, stem: str, image: np.ndarray) -> Path:
    """``stem.tif`` (``image`` as it is) and ``stem.json``: one 8×8 'cell' rectangle."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{stem}.tif", image)
    shapes = [{"label": "cell", "points": [[0, 0], [7, 7]], "group_id": None,
               "shape_type": "rectangle", "flags": {}}]
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.tif",
           "imageData": None, "imageHeight": image.shape[0], "imageWidth": image.shape[1]}
    (folder / f"{stem}.json").write_text(json.dumps(doc))
    return folder / f"{stem}.json"


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_one_channel_images_deeper_than_8_bits_are_declared_one_band(
        tmp_path: Path, dtype) -> None:
    for stem in ("a", "b"):
        labelme_tiff(tmp_path / "src", stem, np.full((30, 40), 3000, dtype))
    lines: list[str] = []
    out = tmp_path / "out"
    import_annotations("labelme", tmp_path / "src", out, report=lines.append)
    assert yaml.safe_load((out / "dataset.yaml").read_text())["bands"] == ["intensity"]
    assert [ln for ln in lines if "bands" in ln] == [
        f"{out / 'dataset.yaml'}: wrote bands: [intensity]: the 2 image(s) are one channel of "
        f"{np.dtype(dtype).name} samples, which training then reads as they are (without it, "
        f"as 8-bit RGB, value / 257)"]
    image, _ = build_dataset({"name": "folder", "root": str(out)}).load(0)
    assert image.shape == (30, 40, 1) and image.max() == 3000


def test_images_of_8_bits_or_of_several_channels_are_declared_no_bands(tmp_path: Path) -> None:
    labelme_tiff(tmp_path / "src", "a", np.full((30, 40), 3000, np.uint16))
    labelme_tiff(tmp_path / "src", "b", np.full((30, 40, 3), 3000, np.uint16))
    labelme_file(tmp_path / "src", "c", ["cell"])
    import_annotations("labelme", tmp_path / "src", tmp_path / "out")
    assert "bands" not in yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())


def test_bands_a_dataset_yaml_declares_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset.yaml").write_text("classes: [_background_, cell]\nbands: [dapi]\n")
    labelme_tiff(tmp_path / "src", "a", np.full((30, 40), 3000, np.uint16))
    import_annotations("labelme", tmp_path / "src", out)
    assert yaml.safe_load((out / "dataset.yaml").read_text())["bands"] == ["dapi"]


def test_a_dataset_yaml_without_bands_over_such_images_is_told_the_line_to_add(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset.yaml").write_text("classes: [_background_, cell]\n")
    labelme_tiff(tmp_path / "src", "a", np.full((30, 40), 3000, np.uint16))
    lines: list[str] = []
    import_annotations("labelme", tmp_path / "src", out, report=lines.append)
    assert "bands" not in yaml.safe_load((out / "dataset.yaml").read_text())
    assert [ln for ln in lines if "bands" in ln] == [
        f"warning: {out / 'dataset.yaml'}: declares no bands, so its 1 image(s) of one channel "
        f"of uint16 samples are read as 8-bit RGB (value / 257); to keep their depth add "
        f"`bands: [intensity]`"]


# -- the package's public names ------------------------------------------------------------------

def test_the_import_report_and_the_reader_are_importable_from_the_annotations_package(
        tmp_path: Path) -> None:
    from fcnseg.data.annotations import ImportReport, read_annotations

    src = labelme_file(tmp_path / "ls", "a", ["cat"])
    assert [i.name for i in read_annotations("labelme", src.parent).items] == ["a"]
    report = import_annotations("labelme", src.parent, tmp_path / "ds")
    assert isinstance(report, ImportReport) and report.written == ["a"]


def _label_studio_task(k: int, image: str, labelled: bool) -> dict:
    result = [{"type": "polygonlabels", "original_width": 40, "original_height": 30,
               "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["cat"]}}]
    return {"id": k, "data": {"image": f"/data/upload/1/{image}"},
            "annotations": [{"result": result}] if labelled else []}


def _label_studio_project(folder: Path, unannotated: str, labelled: str = "a.jpg") -> Path:
    """An export of a task with a polygon on ``labelled`` and one nobody annotated."""
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "export.json"
    export.write_text(json.dumps([_label_studio_task(1, labelled, True),
                                  _label_studio_task(2, unannotated, False)]))
    return export


def test_a_picture_left_to_annotate_that_is_not_found_is_not_listed(tmp_path: Path) -> None:
    export = _label_studio_project(tmp_path / "ls", "gone.jpg")
    Image.new("RGB", (40, 30)).save(tmp_path / "ls" / "a.jpg")
    report = import_annotations("labelstudio", export, tmp_path / "out")
    assert report.written == ["a"] and report.unannotated == []
    assert not (tmp_path / "out" / "unannotated.txt").exists()
    assert report.warnings[0] == (f"{tmp_path / 'ls' / 'gone.jpg'}: no annotations, and no "
                                  f"such picture (not listed in unannotated.txt)")


def test_a_photo_found_again_in_another_folder_is_listed_once(tmp_path: Path) -> None:
    """Label Studio's media layout holds a copy of each upload, named with a prefix."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photos / "a.jpg")
    Image.new("RGB", (40, 30), (10, 200, 10)).save(photos / "b.jpg")
    out = tmp_path / "out"
    first = _label_studio_project(tmp_path / "ls", "b.jpg")
    import_annotations("labelstudio", first, out, ImportOptions(images=photos))
    media = tmp_path / "media"
    (media / "upload" / "1").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (media / "upload" / "1" / f"0a1b2c3d-{name}").write_bytes((photos / name).read_bytes())
    again = _label_studio_project(media, "0a1b2c3d-b.jpg", "0a1b2c3d-a.jpg")
    assert import_annotations("labelstudio", again, out).written == ["a"]
    assert (out / "unannotated.txt").read_text() == f"{photos / 'b.jpg'}\n"
    # Another picture of that name (same size, other bytes) is listed too.
    other = tmp_path / "other"
    other.mkdir()
    data = bytearray((photos / "b.jpg").read_bytes())
    data[-3] ^= 0xFF
    (other / "b.jpg").write_bytes(bytes(data))
    third = _label_studio_project(tmp_path / "ls3", "b.jpg")
    import_annotations("labelstudio", third, out, ImportOptions(images=other))
    assert (out / "unannotated.txt").read_text() == f"{photos / 'b.jpg'}\n{other / 'b.jpg'}\n"


# -- Exports downloaded as a zip archive ----------------------------------------------------------

def zipped(folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    """``folder``'s files in ``folder``.zip, at its root as CVAT's "Export task dataset" puts
    them, plus ``extra`` members (name: bytes)."""
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    shutil.rmtree(folder)
    return archive


@pytest.mark.parametrize("fmt", ["cvat", "cvat-mask"])
def test_an_export_zip_is_unpacked_beside_it_and_imported(fmt, tmp_path: Path) -> None:
    write_source(fmt, tmp_path / "direct")
    import_annotations(fmt, tmp_path / "direct", tmp_path / "want")
    archive = zipped(write_source(fmt, tmp_path / "task"))
    said: list[str] = []
    report = import_annotations(fmt, archive, tmp_path / "out", report=said.append)
    assert report.written == ["i0", "i1", "i2"] and not report.errors
    for k in range(3):
        assert (read_mask(tmp_path / "out", f"i{k}") == read_mask(tmp_path / "want", f"i{k}")
                ).all()
    assert f"warning: {archive}: unpacked into {tmp_path / 'task'}" in said
    again: list[str] = []
    import_annotations(fmt, archive, tmp_path / "out", report=again.append)
    assert f"warning: {archive}: read from {tmp_path / 'task'}, unpacked before (remove it " \
           f"to unpack the archive again)" in again


def test_an_export_zip_whose_member_leaves_its_folder_is_refused_in_one_line(
        tmp_path: Path) -> None:
    archive = zipped(write_source("cvat", tmp_path / "deep" / "task"),
                     {"../../escape.txt": b"out"})
    with pytest.raises(ValueError) as err:
        import_annotations("cvat", archive, tmp_path / "out")
    assert str(err.value) == f"{archive}: refusing unsafe member path '../../escape.txt'"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "task").exists()
    assert not (tmp_path / "out").exists()


def test_an_export_zip_that_unpacks_to_far_more_than_its_size_is_refused_in_one_line(
        tmp_path: Path) -> None:
    archive = zipped(write_source("cvat", tmp_path / "task"), {"images/big.png": bytes(10**7)})
    with pytest.raises(ValueError, match=r"more than 100 times what it holds \(a decompression "
                                         r"bomb\?\)"):
        import_annotations("cvat", archive, tmp_path / "out")
    assert not (tmp_path / "task").exists()


def test_an_export_zip_that_fails_to_unpack_leaves_no_folder_read_later(tmp_path: Path) -> None:
    archive = zipped(write_source("cvat", tmp_path / "task"))
    data = bytearray(archive.read_bytes())
    start = 30 + len("annotations.xml")  # its local header, then its deflated bytes
    data[start + 5:start + 40] = bytes(b ^ 0x55 for b in data[start + 5:start + 40])
    archive.write_bytes(bytes(data))
    for _ in range(2):  # the second time alike: no half-unpacked folder read as unpacked
        with pytest.raises(ValueError, match=f"^{archive} could not be extracted: "):
            import_annotations("cvat", archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.zip"]


def test_an_interrupted_unpacking_leaves_no_folder_read_later(tmp_path: Path,
                                                              monkeypatch) -> None:
    from fcnseg.data.annotations import importer

    def interrupted(archive: Path, into: Path) -> None:
        (into / "images").mkdir(parents=True)
        raise KeyboardInterrupt

    archive = zipped(write_source("cvat", tmp_path / "task"))
    monkeypatch.setattr(importer, "extract_archive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_annotations("cvat", archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.zip"]


def test_an_export_zip_beside_which_nothing_can_be_written_is_one_line_naming_it(
        tmp_path: Path, monkeypatch) -> None:
    from fcnseg.data.annotations import importer

    def read_only(archive: Path, into: Path) -> None:
        raise PermissionError(13, "Permission denied", str(into))

    archive = zipped(write_source("cvat", tmp_path / "task"))
    monkeypatch.setattr(importer, "extract_archive", read_only)
    with pytest.raises(ValueError) as err:
        import_annotations("cvat", archive, tmp_path / "out")
    assert str(err.value) == (f"{archive}: cannot unpack it into {tmp_path / 'task'} (Permission "
                              f"denied): unpack it where files can be written and give that "
                              f"folder")


def test_an_export_zip_unpacked_meanwhile_by_another_process_is_read(tmp_path: Path,
                                                                     monkeypatch) -> None:
    from fcnseg.data.annotations import importer

    def racing(archive: Path, into: Path) -> None:
        extract_archive(archive, into)
        extract_archive(archive, tmp_path / "task")  # another rank of the training, faster

    extract_archive = importer.extract_archive
    archive = zipped(write_source("cvat", tmp_path / "task"))
    monkeypatch.setattr(importer, "extract_archive", racing)
    report = import_annotations("cvat", archive, tmp_path / "out")
    assert report.written == ["i0", "i1", "i2"] and not report.errors


@pytest.mark.parametrize("fmt", ["coco", "labelstudio"])
def test_a_zip_given_for_a_json_format_is_one_line_and_nothing_is_unpacked(
        fmt, tmp_path: Path) -> None:
    write_source(fmt, tmp_path / "task")
    archive = zipped(tmp_path / "task")
    with pytest.raises(ValueError) as err:
        import_annotations(fmt, archive, tmp_path / "out")
    assert str(err.value) == (f"{archive}: a zip archive, not a JSON file: unpack it and give "
                              f"the JSON file it holds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.zip"]


def test_a_folder_unpacked_from_another_export_zip_of_that_name_is_refused(
        tmp_path: Path) -> None:
    archive = zipped(write_source("cvat", tmp_path / "task"))
    import_annotations("cvat", archive, tmp_path / "out")
    (tmp_path / "new").mkdir()
    newer = zipped(write_source("cvat", tmp_path / "new" / "task", stem="j"))
    shutil.move(newer, archive)  # the export downloaded again, over the first
    with pytest.raises(ValueError) as err:
        import_annotations("cvat", archive, tmp_path / "out2")
    assert str(err.value) == (f"{archive}: {tmp_path / 'task'} beside it holds another "
                              f"'annotations.xml' than the archive (unpacked from another "
                              f"archive, or changed since): remove it to unpack the archive "
                              f"again, or give the folder to read it")
    assert not (tmp_path / "out2").exists()


def test_an_export_zipped_with_its_folder_is_read_below_that_folder(tmp_path: Path) -> None:
    write_source("cvat", tmp_path / "direct")
    import_annotations("cvat", tmp_path / "direct", tmp_path / "want")
    write_source("cvat", tmp_path / "zipped" / "my task")
    archive = zipped(tmp_path / "zipped")  # members 'my task/annotations.xml', ...
    report = import_annotations("cvat", archive, tmp_path / "out")
    assert report.written == ["i0", "i1", "i2"] and not report.errors
    for k in range(3):
        assert (read_mask(tmp_path / "out", f"i{k}") == read_mask(tmp_path / "want", f"i{k}")
                ).all()

# -- Importing into a folder imported into before -------------------------------------------------


def test_masks_an_import_replaces_are_counted_in_one_line(tmp_path: Path) -> None:
    for stem in "abc":
        labelme_file(tmp_path / "src", stem, ["car"])
    import_annotations("labelme", tmp_path / "src", tmp_path / "out")
    labelme_file(tmp_path / "src", "b", ["car", "person"])  # corrected since
    labelme_file(tmp_path / "src", "c", ["person"])
    said: list[str] = []
    import_annotations("labelme", tmp_path / "src", tmp_path / "out", report=said.append)
    assert f"warning: 2 image(s) imported replaced another mask of that name in " \
           f"{tmp_path / 'out' / 'masks'} (the first: b)" in said


def test_masks_an_import_writes_again_unchanged_are_not_counted_as_replaced(
        tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["car"])
    import_annotations("labelme", tmp_path / "src", tmp_path / "out")
    said: list[str] = []
    import_annotations("labelme", tmp_path / "src", tmp_path / "out", report=said.append)
    assert not any("replaced" in line for line in said)


def test_an_image_not_imported_again_has_its_earlier_mask_moved_aside(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["car"])
    broken = labelme_file(tmp_path / "src", "b", ["car"])
    out = tmp_path / "out"
    import_annotations("labelme", tmp_path / "src", out)
    earlier = (out / "masks" / "b.png").read_bytes()
    doc = json.loads(broken.read_text())
    doc["shapes"][0].update(shape_type="polygon", points=[[0, 0], [5, 5]])
    broken.write_text(json.dumps(doc))
    said: list[str] = []
    report = import_annotations("labelme", tmp_path / "src", out, report=said.append)
    assert report.written == ["a"] and len(report.errors) == 1
    assert not (out / "masks" / "b.png").exists()
    assert (out / "stale_masks" / "b.png").read_bytes() == earlier
    listed = (out / "train.txt").read_text() + (out / "val.txt").read_text()
    assert listed.split() == ["a"]
    assert f"warning: 1 image(s) not imported had a mask from an earlier import, moved to " \
           f"{out / 'stale_masks'} and its picture to stale_images so that training does not " \
           f"use it (the first: b): fix the annotations and import again, or move a mask back " \
           f"to masks/ and its picture to images/ to train on it" in said


def test_the_picture_of_a_mask_moved_aside_moves_too_and_the_folder_checks_clean(
        tmp_path: Path, capsys) -> None:
    labelme_file(tmp_path / "src", "a", ["car"])
    broken = labelme_file(tmp_path / "src", "b", ["car"])
    out = tmp_path / "out"
    import_annotations("labelme", tmp_path / "src", out)
    picture = next((out / "images").glob("b.*"))
    earlier = picture.read_bytes()
    doc = json.loads(broken.read_text())
    doc["shapes"][0].update(shape_type="polygon", points=[[0, 0], [5, 5]])
    broken.write_text(json.dumps(doc))
    import_annotations("labelme", tmp_path / "src", out)
    assert (out / "stale_images" / picture.name).read_bytes() == earlier
    assert sorted(p.stem for p in (out / "images").iterdir()) == ["a"]
    assert main(["check-data", "--dataset", "folder", "--root", str(out),
                 "--num-workers", "0"]) == 0
    assert "missing mask" not in capsys.readouterr().out


def test_the_import_takes_the_cvat_mask_format_in_either_spelling(tmp_path: Path) -> None:
    root = write_source("cvat-mask", tmp_path / "export")
    for spelling in ("cvat-mask", "cvat_mask"):
        assert main(["import", spelling, str(root), "--out", str(tmp_path / spelling)]) == 0
        assert read_mask(tmp_path / spelling, "i1").max() == 2


def test_an_unknown_import_format_is_named_as_it_was_typed(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["import", "coco_json", "x", "--out", str(tmp_path / "out")])
    assert "argument FORMAT: invalid choice: 'coco_json' (choose from 'labelme', 'coco', " \
           "'cvat-mask', 'cvat', 'labelstudio')" in capsys.readouterr().err


def test_writing_an_image_keeps_the_picture_of_a_name_it_begins(tmp_path: Path) -> None:
    labelme_file(tmp_path / "src", "a", ["car"])
    labelme_file(tmp_path / "src", "a.b", ["car"])
    import_annotations("labelme", tmp_path / "src", tmp_path / "out")
    assert sorted(p.stem for p in (tmp_path / "out" / "images").iterdir()) == ["a", "a.b"]


def _imported_at_half(tmp_path: Path) -> Path:
    """Eight labelme images imported with --val-fraction 0.5; the dataset folder."""
    out = tmp_path / "ds"
    for k in range(8):
        labelme_file(tmp_path / "src", f"img{k}", ["cell"])
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out),
                 "--val-fraction", "0.5"]) == 0
    return out


def test_importing_more_without_a_val_fraction_keeps_the_one_the_split_was_made_with(
        tmp_path: Path, capsys) -> None:
    out = _imported_at_half(tmp_path)
    val = (out / "val.txt").read_text()
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out)]) == 0
    assert "changed split" not in capsys.readouterr().out
    assert (out / "val.txt").read_text() == val


def test_importing_more_with_another_val_fraction_splits_again_with_a_warning(
        tmp_path: Path, capsys) -> None:
    out = _imported_at_half(tmp_path)
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out),
                 "--val-fraction", "0.2"]) == 0
    assert "changed split" in capsys.readouterr().out
    assert "val_fraction" not in yaml.safe_load((out / "dataset.yaml").read_text())  # default


def _recorded_by_an_earlier_release(tmp_path: Path) -> Path:
    """The folder of _imported_at_half whose dataset.yaml records no val_fraction, as fcnseg
    wrote it before recording one, and four more images to import into it."""
    out = _imported_at_half(tmp_path)
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    del config["val_fraction"]
    (out / "dataset.yaml").write_text(yaml.safe_dump(config))
    for k in range(8, 12):
        labelme_file(tmp_path / "src", f"img{k}", ["cell"])
    return out


def test_importing_without_a_val_fraction_into_a_folder_that_records_none_keeps_its_split(
        tmp_path: Path, capsys) -> None:
    out = _recorded_by_an_earlier_release(tmp_path)
    capsys.readouterr()
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "changed split" not in said and "--val-fraction 0.5 splits train.txt" in said
    assert sorted((out / "val.txt").read_text().split()) == sorted(
        f"img{k}" for k in range(12) if split_of(f"img{k}", 0.5) == "val")


def test_importing_with_a_val_fraction_into_a_folder_that_records_none_splits_again(
        tmp_path: Path, capsys) -> None:
    out = _recorded_by_an_earlier_release(tmp_path)
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out),
                 "--val-fraction", "0.2"]) == 0
    assert "changed split" in capsys.readouterr().out


def test_lists_saved_with_a_byte_order_mark_keep_their_split_as_training_reads_them(
        tmp_path: Path, capsys) -> None:
    out = _recorded_by_an_earlier_release(tmp_path)
    for name in ("train", "val"):  # saved again in Windows' Notepad, a space left after a name
        text = (out / f"{name}.txt").read_text().replace("\n", " \n", 1)
        (out / f"{name}.txt").write_text(f"\ufeff{text}", encoding="utf-8")
    capsys.readouterr()
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "changed split" not in said and "--val-fraction 0.5 splits train.txt" in said


def test_lists_no_val_fraction_splits_as_they_are_are_said_to_be_split_again_at_the_default(
        tmp_path: Path, capsys) -> None:
    out = _recorded_by_an_earlier_release(tmp_path)
    val = (out / "val.txt").read_text()
    (out / "val.txt").write_text(f"{val}img1\n")  # by hand: its hash is above img2's, in train
    (out / "train.txt").write_text((out / "train.txt").read_text().replace("img1\n", ""))
    capsys.readouterr()
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out)]) == 0
    assert (f"{out / 'dataset.yaml'} records no val_fraction, and no --val-fraction splits "
            f"train.txt and val.txt as they are: split at 0.2") in capsys.readouterr().out


def test_a_folder_an_earlier_release_imported_with_no_val_images_keeps_none(
        tmp_path: Path) -> None:
    for k in range(8):
        labelme_file(tmp_path / "src", f"img{k}", ["cell"])
    out = tmp_path / "ds"
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out),
                 "--val-fraction", "0"]) == 0
    config = yaml.safe_load((out / "dataset.yaml").read_text())
    del config["val_fraction"]  # as fcnseg wrote it before recording one
    (out / "dataset.yaml").write_text(yaml.safe_dump(config))
    labelme_file(tmp_path / "src", "img8", ["cell"])
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out)]) == 0
    assert yaml.safe_load((out / "dataset.yaml").read_text())["val_fraction"] == 0


def test_the_default_val_fraction_is_not_written_so_earlier_releases_read_the_folder(
        tmp_path: Path) -> None:
    for k in range(4):
        labelme_file(tmp_path / "src", f"img{k}", ["cell"])
    assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(tmp_path / "ds")]) == 0
    assert "val_fraction" not in yaml.safe_load((tmp_path / "ds" / "dataset.yaml").read_text())


def test_frames_of_one_video_moved_by_another_val_fraction_are_said_to_move_by_it(
        tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    for k in range(8):
        labelme_file(tmp_path / "src", f"clipA__frame_{k:06d}", ["cell"])
    for fraction in ("0.5", "0.2"):
        assert main(["import", "labelme", str(tmp_path / "src"), "--out", str(out),
                     "--val-fraction", fraction]) == 0
    moved = [line for line in capsys.readouterr().out.splitlines() if "changed split" in line]
    assert len(moved) == 1 and "as --val-fraction 0.2 chose them" in moved[0]


def test_a_labelme_picture_that_is_a_link_loop_leaves_out_its_image_alone(tmp_path: Path):
    labelme_file(tmp_path / "photos", "a", ["car"])
    labelme_file(tmp_path / "photos", "b", ["car"])
    (tmp_path / "photos" / "b.png").unlink()
    (tmp_path / "photos" / "b.png").symlink_to("b.png")  # a link to itself
    report = import_annotations("labelme", tmp_path / "photos", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["a.png"]
    assert len(report.errors) == 1 and "b.png" in report.errors[0]


@pytest.mark.parametrize("taken", ["out", "out/masks"])
def test_an_out_that_cannot_be_written_is_one_line_before_anything_is_read(
        taken: str, tmp_path: Path, capsys) -> None:
    labelme_file(tmp_path / "photos", "a", ["car"])
    if taken == "out/masks":
        (tmp_path / "out").mkdir()
    (tmp_path / taken).write_text("a file, not a folder")
    rc = main(["import", "labelme", str(tmp_path / "photos"), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert capsys.readouterr().err == (f"fcnseg import: error: output folder {tmp_path / taken}: "
                                       f"exists and is not a folder\n")


@pytest.mark.parametrize("beside", [True, False])
def test_a_labelme_picture_named_by_a_path_of_another_machine_is_found_by_its_name(
        beside: bool, tmp_path: Path) -> None:
    labelme_file(tmp_path / "photos", "a", ["car"])
    doc = json.loads((tmp_path / "photos" / "a.json").read_text())
    doc["imagePath"] = "C:\\Users\\bob\\Pictures\\a.png"  # saved on a colleague's Windows
    (tmp_path / "photos" / "a.json").write_text(json.dumps(doc))
    images = None
    if not beside:  # the pictures in a folder of their own, given with --images
        (tmp_path / "pictures").mkdir()
        (tmp_path / "photos" / "a.png").rename(tmp_path / "pictures" / "a.png")
        images = tmp_path / "pictures"
    report = import_annotations("labelme", tmp_path / "photos", tmp_path / "out",
                                ImportOptions(images=images))
    assert report.errors == [] and (tmp_path / "out" / "images" / "a.png").is_file()
