"""``fcnseg predict --format`` (polygons to correct in labelme, COCO tools, CVAT or Label
Studio) and
``--rank uncertainty`` / ``--top K`` (which images to label next)."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data.annotations import LabelSet, import_annotations, rasterise
from fcnseg.data.annotations.importer import ImportOptions
from fcnseg.data.annotations.labelme import read_labelme_file
from fcnseg.inference import Prediction, Segmenter
from fcnseg.inference.annotate import PreAnnotations, image_uncertainty
from fcnseg.inference.calibration import save_with_temperature
from fcnseg.inference.visualize import read_label_png


@pytest.fixture
def photos(tmp_path, smooth_image):
    root = tmp_path / "photos"
    root.mkdir()
    for k in range(3):
        Image.fromarray(np.ascontiguousarray(np.roll(smooth_image, 9 * k, axis=1))).save(
            root / f"p{k}.png")
    return root


def predict(checkpoint, photos, out, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(out),
                 "--no-progress", "--precision", "fp32", "--io-workers", "0", *extra])


def exported(path: Path) -> Path:
    """The tool's export of the reviewed predictions of ``path`` (here unchanged), a file of
    its own beside it: the file predict wrote, nobody having saved it since, is no label."""
    export = path.with_name(f"reviewed_{path.name}")
    shutil.copyfile(path, export)
    return export


def iou_per_class(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [float(((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum())
            for c in np.union1d(np.unique(a), np.unique(b))]


def test_labelme_files_lead_to_their_images_and_import_to_the_predictions(
        make_checkpoint, photos, tmp_path, class_names) -> None:
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelme") == 0
    for k in range(3):
        doc = json.loads((out / f"p{k}.json").read_text())
        assert (out / doc["imagePath"]).resolve() == (photos / f"p{k}.png").resolve()
        item = read_labelme_file(out / f"p{k}.json", f"p{k}")
        labels = LabelSet(["__ignore__", "_background_", *class_names[1:]])
        back, _ = rasterise(item, labels, doc["imageHeight"], doc["imageWidth"])
        predicted = read_label_png(out / f"p{k}_label.png")
        assert min(iou_per_class(predicted, back)) >= 0.99
        # reviewed: saved in labelme (unchanged), else the import leaves it out
        (out / f"p{k}.json").write_text(json.dumps(doc, indent=2))
    report = import_annotations("labelme", out, tmp_path / "imported")
    assert sorted(report.written) == ["p0", "p1", "p2"] and not report.errors


def _predicted_file(fmt: str, checkpoint: Path, photos: Path, out: Path) -> Path:
    """The COCO or CVAT file ``fcnseg predict --format fmt`` writes for ``photos`` in ``out``."""
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    assert predict(checkpoint, photos, out, "--format", fmt) == 0
    return out / ("annotations.coco.json" if fmt == "coco" else "annotations.xml")


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_coco_and_cvat_files_import_to_the_predictions(fmt, make_checkpoint, photos,
                                                       tmp_path) -> None:
    out = tmp_path / "out"
    written = _predicted_file(fmt, make_checkpoint(), photos, out)
    report = import_annotations(fmt, exported(written), tmp_path / "imported")
    assert not report.errors and len(report.written) == 3
    for stem in report.written:
        imported = np.asarray(Image.open(tmp_path / "imported" / "masks" / f"{stem}.png"))
        predicted = read_label_png(out / f"{stem.split('__')[-1]}_label.png")
        # class indices follow the names: the same up to the imported order of classes
        names = report.classes
        model = ["_background_", "cat", "dog", "potted plant"]
        remapped = np.array([names.index(n) for n in model])[predicted]
        assert min(iou_per_class(remapped, imported)) >= 0.99


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_coco_and_cvat_files_nobody_reviewed_are_left_out_of_an_import(
        fmt, make_checkpoint, photos, tmp_path) -> None:
    written = _predicted_file(fmt, make_checkpoint(), photos, tmp_path / "out")
    report = import_annotations(fmt, written, tmp_path / "imported")
    assert report.written == [] and not report.errors
    assert sorted(p.name for p in report.unreviewed) == ["p0.png", "p1.png", "p2.png"]
    assert any("fcnseg predict wrote and nobody saved since left out as not reviewed" in w
               for w in report.warnings)


def test_cvat_labels_carry_the_checkpoint_colours_which_an_import_keeps(
        make_checkpoint, photos, tmp_path) -> None:
    import yaml

    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "cvat") == 0
    palette = Segmenter.from_checkpoint(make_checkpoint()).palette[:4].tolist()
    xml = (out / "annotations.xml").read_text()
    assert [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in palette[1:]] == \
        [line.strip()[7:14] for line in xml.splitlines() if "<color>" in line]
    assert "_background_" not in xml  # no label of the task: never uploaded
    report = import_annotations("cvat", exported(out / "annotations.xml"), tmp_path / "imported")
    assert report.classes == ["_background_", "cat", "dog", "potted plant"]
    assert yaml.safe_load((tmp_path / "imported" / "dataset.yaml").read_text())["palette"] == \
        palette


def test_rank_orders_images_by_mean_entropy_with_the_calibrated_temperature(
        make_checkpoint, photos, tmp_path) -> None:
    calibrated = save_with_temperature(make_checkpoint(), tmp_path / "calibrated.pt", 3.0)
    out = tmp_path / "out"
    assert predict(calibrated, photos, out, "--rank", "uncertainty") == 0
    rows = list(csv.DictReader((out / "ranking.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    entropies = [float(r["mean_entropy"]) for r in rows]
    assert entropies == sorted(entropies, reverse=True)
    segmenter = Segmenter.from_checkpoint(calibrated, precision="fp32")
    assert segmenter.temperature == 3.0
    for row in rows:
        probs = segmenter.predict(photos / f"{row['name']}.png", return_probs=True).probs
        mean_entropy, share = image_uncertainty(probs)
        assert float(row["mean_entropy"]) == pytest.approx(mean_entropy, rel=1e-4, abs=1e-6)
        assert float(row["uncertain_share"]) == pytest.approx(share, abs=0.02)
    plain = Segmenter.from_checkpoint(make_checkpoint(), precision="fp32")
    raw = image_uncertainty(plain.predict(photos / "p0.png", return_probs=True).probs)[0]
    assert raw < image_uncertainty(
        segmenter.predict(photos / "p0.png", return_probs=True).probs)[0]


def test_top_k_exports_only_the_most_uncertain(make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--rank", "uncertainty", "--format",
                   "labelme", "--top", "1") == 0
    first = next(csv.DictReader((out / "ranking.csv").open()))["name"]
    assert sorted(p.name for p in out.glob("*.json")) == [f"{first}.json"]


def test_top_needs_rank_and_format(make_checkpoint, photos, tmp_path, capsys) -> None:
    assert predict(make_checkpoint(), photos, tmp_path / "out", "--top", "2") == 2
    assert "--top" in capsys.readouterr().err


def test_an_annotation_file_it_did_not_write_is_never_replaced(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    (photos / "p0.json").write_text('{"shapes": []}')
    assert predict(make_checkpoint(), photos, photos, "--format", "labelme") == 1
    assert (photos / "p0.json").read_text() == '{"shapes": []}'
    assert "p0.json: exists and was not written by fcnseg predict" in capsys.readouterr().err
    # a second run replaces the files the first one wrote
    assert predict(make_checkpoint(), photos, photos, "--format", "labelme") == 1
    assert (photos / "p1.json").is_file()


def test_a_prediction_the_user_corrected_is_kept_with_one_line(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelme") == 0
    corrected = json.loads((out / "p0.json").read_text())
    corrected["shapes"] = corrected["shapes"][:1]
    (out / "p0.json").write_text(json.dumps(corrected))
    untouched = (out / "p1.json").read_bytes()
    (out / "p1.json").unlink()  # a removed prediction is written again
    capsys.readouterr()
    assert predict(make_checkpoint(), photos, out, "--format", "labelme") == 0
    assert json.loads((out / "p0.json").read_text()) == corrected
    assert (out / "p1.json").read_bytes() == untouched
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "p0.json" in ln]
    assert len(lines) == 1 and "edited since fcnseg predict wrote it; kept" in lines[0]


@pytest.mark.parametrize("fmt", ["coco", "cvat"])
def test_coco_and_cvat_name_images_by_their_file_name_and_import_under_their_stem(
        fmt, make_checkpoint, photos, tmp_path) -> None:
    written = _predicted_file(fmt, make_checkpoint(), photos, tmp_path / "out")
    if fmt == "coco":
        doc = json.loads(written.read_text())
        assert sorted(i["file_name"] for i in doc["images"]) == ["p0.png", "p1.png", "p2.png"]
    else:
        xml = written.read_text()
        assert 'name="p0.png"' in xml and "../" not in xml.split('name="p0.png"')[0][-60:]
    report = import_annotations(fmt, exported(written), tmp_path / "imported")
    assert sorted(report.written) == ["p0", "p1", "p2"] and not report.errors


def test_cvat_ids_of_predicted_video_frames_are_their_numbers_and_the_file_imports(
        make_checkpoint, smooth_image, tmp_path) -> None:
    import xml.etree.ElementTree as ET

    frames = tmp_path / "frames"
    frames.mkdir()
    for number in (12, 3, 40):
        Image.fromarray(np.ascontiguousarray(np.roll(smooth_image, number, axis=1))).save(
            frames / f"street__frame_{number:06d}.png")
    written = _predicted_file("cvat", make_checkpoint(), frames, tmp_path / "out")
    ids = {i.get("name"): i.get("id") for i in ET.parse(written).getroot().iter("image")}
    assert ids == {f"street__frame_{n:06d}.png": str(n) for n in (12, 3, 40)}
    report = import_annotations("cvat", exported(written), tmp_path / "imported")
    assert not report.errors
    assert sorted(report.written) == [f"street__frame_{n:06d}" for n in (3, 12, 40)]


def test_sample_name_drops_paths_that_leave_the_images_folder() -> None:
    from fcnseg.data.annotations.shapes import sample_name

    assert sample_name("../photos/img00.jpg") == "img00"
    assert sample_name("train/a.jpg") == "train__a"
    assert sample_name("./img01.png") == "img01"


def test_labelme_files_are_written_flat_by_basename_and_a_clash_is_refused(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    (photos / "sub").mkdir()
    Image.open(photos / "p1.png").save(photos / "sub" / "p3.png")
    Image.open(photos / "p2.png").save(photos / "sub" / "p0.png")
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelme") == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "p0.json", "p1.json", "p2.json", "p3.json"]
    doc = json.loads((out / "p3.json").read_text())
    assert (out / doc["imagePath"]).resolve() == (photos / "sub" / "p3.png").resolve()
    assert json.loads((out / "p0.json").read_text())["imagePath"].endswith("photos/p0.png")
    err = [ln for ln in capsys.readouterr().err.splitlines() if "sub/p0.png" in ln]
    assert len(err) == 1 and "has the name 'p0'" in err[0]


def test_pre_annotations_keep_input_order_whatever_order_the_writers_finish_in(tmp_path) -> None:
    names = ("im0", "im1", "im2", "im3")
    pre = PreAnnotations(tmp_path, "coco", class_names=("background", "thing"), order=names)
    label = np.zeros((4, 4), dtype=np.uint8)
    label[1:3, 1:3] = 1
    for name in ("im2", "im3", "im1", "im0"):  # as writer threads might finish
        pre.add(tmp_path / f"{name}.png", name, Prediction(label, np.zeros((4, 4, 3), np.uint8)))
    assert [e.name for e in pre.ranked()] == list(names)


def speckled_label() -> np.ndarray:
    """A region of class 1 holding 33 one-pixel specks of class 2."""
    label = np.zeros((40, 60), np.uint8)
    label[5:35, 5:55] = 1
    label[8:32:8, 8:52:4] = 2
    return label


def polygons_written(out, fmt: str) -> int:
    if fmt == "labelme":
        return len(json.loads((out / "p.json").read_text())["shapes"])
    if fmt == "coco":
        return len(json.loads((out / "annotations.coco.json").read_text())["annotations"])
    if fmt == "labelstudio":
        tasks = json.loads((out / "tasks.labelstudio.json").read_text())
        return len(tasks[0]["predictions"][0]["result"])
    return (out / "annotations.xml").read_text().count("<polygon ")


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "labelstudio"])
def test_min_area_fills_specks_in_every_format(fmt, tmp_path) -> None:
    counts = []
    for min_area in (0, 20):
        out = tmp_path / f"out{min_area}"
        out.mkdir()
        pre = PreAnnotations(out, fmt, min_area=min_area, class_names=("background", "a", "b"))
        pre.add(tmp_path / "p.png", "p", Prediction(speckled_label(), np.zeros((40, 60, 3))))
        pre.write()
        counts.append(polygons_written(out, fmt))
    assert counts == [34, 1]


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat", "labelstudio"])
def test_specks_written_without_min_area_are_counted_in_one_line(fmt, tmp_path) -> None:
    pre = PreAnnotations(tmp_path, fmt, class_names=("background", "a", "b"))
    pre.add(tmp_path / "p.png", "p", Prediction(speckled_label(), np.zeros((40, 60, 3))))
    assert pre.speck_line() == ("33 of the 34 polygons outlined cover under 20 pixels each: "
                                "--min-area 20 leaves out regions and outline patches of fewer "
                                "pixels, filling them into the class around them")


def test_predict_min_area_fills_specks_and_skips_small_patches(
        make_checkpoint, photos, tmp_path, class_names) -> None:
    from fcnseg.data.annotations.export import fill_small_regions, labelme_document

    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelme", "--min-area", "40") == 0
    predicted = read_label_png(out / "p0_label.png")
    assert not np.array_equal(fill_small_regions(predicted, 40, 255), predicted)  # has specks
    shapes = json.loads((out / "p0.json").read_text())["shapes"]
    assert shapes == labelme_document(predicted, class_names, "p0.png", min_area=40)["shapes"]
    assert len(shapes) < len(labelme_document(predicted, class_names, "p0.png")["shapes"])


@pytest.mark.parametrize("fmt", ["labelme", "coco", "cvat"])
def test_no_annotation_file_when_every_input_is_a_raster_segmented_by_tiles(
        fmt, make_checkpoint, smooth_image, tmp_path, capsys) -> None:
    rasterio = pytest.importorskip("rasterio")
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=smooth_image.shape[0],
                       width=smooth_image.shape[1], count=3, dtype="uint8", crs="EPSG:32631",
                       transform=rasterio.Affine(1, 0, 500000, 0, -1, 4000000)) as dst:
        dst.write(np.moveaxis(smooth_image, -1, 0))
    out = tmp_path / "out"
    assert predict(make_checkpoint(), scene, out, "--format", fmt, "--rank",
                   "uncertainty") == 0
    captured = capsys.readouterr()
    written = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert written == {"scene.tif", "scene.tif.done.json", "scene_overlay.png"}
    assert "annotation file" not in captured.out
    [line] = [x for x in captured.err.splitlines() if "apply to images" in x]
    assert "no annotation or ranking file is written" in line


MODEL_CLASSES = ["_background_", "cat", "dog", "potted plant"]


def _labelstudio_tasks(checkpoint: Path, photos: Path, out: Path, *extra: str) -> list[dict]:
    assert predict(checkpoint, photos, out, "--format", "labelstudio", *extra) == 0
    return json.loads((out / "tasks.labelstudio.json").read_text())


def _assert_imported_as_predicted(report, imported: Path, out: Path) -> None:
    """Each imported mask is the predicted label map, up to rasterising its polygons."""
    assert not report.errors and sorted(report.written) == ["p0", "p1", "p2"]
    for stem in report.written:
        mask = np.asarray(Image.open(imported / "masks" / f"{stem}.png"))
        predicted = read_label_png(out / f"{stem}_label.png")
        remapped = np.array([report.classes.index(n) for n in MODEL_CLASSES])[predicted]
        assert min(iou_per_class(remapped, mask)) >= 0.99


def test_labelstudio_tasks_hold_percent_polygons_of_the_upright_image(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out)
    assert [(out / t["data"]["image"]).resolve() for t in tasks] == \
        [(photos / f"p{k}.png").resolve() for k in range(3)]
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["model_version"].startswith("fcnseg ")
        assert "score" not in prediction  # no probabilities computed for it alone
        assert prediction["result"]
        for r in prediction["result"]:
            assert (r["type"], r["from_name"], r["to_name"]) == ("polygonlabels", "label", "image")
            assert (r["original_width"], r["original_height"], r["image_rotation"]) == (64, 48, 0)
            points = np.asarray(r["value"]["points"])
            assert points.shape[1] == 2 and len(points) >= 3
            assert points.min() >= 0 and points.max() <= 100
            assert r["value"]["polygonlabels"][0] in MODEL_CLASSES


def test_labelstudio_predictions_score_the_mean_top_probability_where_computed(
        make_checkpoint, photos, tmp_path) -> None:
    tasks = _labelstudio_tasks(make_checkpoint(), photos, tmp_path / "out",
                               "--rank", "uncertainty")
    for task in tasks:
        (prediction,) = task["predictions"]
        assert 0 < prediction["score"] <= 1  # the mean top class probability


def test_labelstudio_config_names_the_results_and_carries_the_checkpoint_colours(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    _labelstudio_tasks(make_checkpoint(), photos, out)
    view = ET.fromstring((out / "labelstudio-config.xml").read_text())
    assert view.tag == "View" and view.find("Image").attrib == {"name": "image",
                                                                "value": "$image"}
    polygons = view.find("PolygonLabels")
    assert (polygons.get("name"), polygons.get("toName")) == ("label", "image")
    palette = Segmenter.from_checkpoint(make_checkpoint()).palette[:4].tolist()
    assert [(lab.get("value"), lab.get("background")) for lab in polygons] == \
        [(n, f"#{r:02x}{g:02x}{b:02x}")
         for n, (r, g, b) in zip(MODEL_CLASSES, palette, strict=True)]


def test_labelstudio_export_of_the_accepted_predictions_imports_to_the_predictions(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out)
    # Label Studio's JSON export once each prediction was accepted as the task's annotation
    export = [{"id": k + 1, "data": t["data"], "predictions": t["predictions"],
               "annotations": [{"id": k + 1, "result": t["predictions"][0]["result"]}]}
              for k, t in enumerate(tasks)]
    (out / "project-1-export.json").write_text(json.dumps(export))
    report = import_annotations("labelstudio", out / "project-1-export.json",
                                tmp_path / "imported")
    _assert_imported_as_predicted(report, tmp_path / "imported", out)


def test_labelstudio_predictions_nobody_accepted_are_no_labels_in_an_export(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out)
    export = [{**t, "annotations": []} for t in tasks]
    (out / "project-1-export.json").write_text(json.dumps(export))
    report = import_annotations("labelstudio", out / "project-1-export.json",
                                tmp_path / "imported")
    assert report.written == []
    assert sorted(p.name for p in report.unannotated) == ["p0.png", "p1.png", "p2.png"]


def test_labelstudio_export_saved_over_the_tasks_file_takes_no_prediction_as_a_label(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out)
    export = [{"id": k + 1, **t, "annotations": []} for k, t in enumerate(tasks)]
    (out / "tasks.labelstudio.json").write_text(json.dumps(export))  # the export, same name
    report = import_annotations("labelstudio", out / "tasks.labelstudio.json",
                                tmp_path / "imported")
    assert report.written == []
    assert sorted(p.name for p in report.unannotated) == ["p0.png", "p1.png", "p2.png"]


def test_labelstudio_tasks_nobody_reviewed_are_left_out_of_an_import(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    _labelstudio_tasks(make_checkpoint(), photos, out)
    report = import_annotations("labelstudio", out / "tasks.labelstudio.json",
                                tmp_path / "imported")
    assert report.written == [] and not report.errors
    assert sorted(p.name for p in report.unreviewed) == ["p0.png", "p1.png", "p2.png"]
    assert any("Label Studio tasks file(s) fcnseg predict wrote and nobody saved since left "
               "out as not reviewed" in w for w in report.warnings)


def test_labelstudio_tasks_saved_since_import_their_predictions(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out)
    (out / "tasks.labelstudio.json").write_text(json.dumps(tasks, indent=2))  # saved: reviewed
    report = import_annotations("labelstudio", out / "tasks.labelstudio.json",
                                tmp_path / "imported")
    _assert_imported_as_predicted(report, tmp_path / "imported", out)


def test_labelstudio_image_url_names_the_pictures_as_the_project_reaches_them(
        make_checkpoint, photos, tmp_path) -> None:
    (photos / "p1.png").rename(photos / "p 1.png")
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out,
                               "--image-url", "/data/local-files/?d=photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=photos/p%201.png", "/data/local-files/?d=photos/p0.png",
        "/data/local-files/?d=photos/p2.png"]
    (out / "tasks.labelstudio.json").write_text(json.dumps(tasks))  # reviewed
    report = import_annotations("labelstudio", out / "tasks.labelstudio.json",
                                tmp_path / "imported", ImportOptions(images=photos))
    assert not report.errors and sorted(report.written) == ["p 1", "p0", "p2"]


def test_image_url_needs_format_labelstudio(make_checkpoint, photos, tmp_path, capsys) -> None:
    assert predict(make_checkpoint(), photos, tmp_path / "out", "--format", "coco",
                   "--image-url", "http://host/photos/") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image-url" in err[0] and "--format labelstudio" in err[0]


def test_labelstudio_polygons_drawn_in_order_give_the_label_map_back_exactly(tmp_path) -> None:
    label = speckled_label()
    label[0:3, 0:60] = 255  # ignored: left out
    label[15:25, 20:40] = 0  # a background hole inside class 1, with a region of 2 inside
    label[18:22, 25:30] = 2
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "p.png")
    out = tmp_path / "out"
    pre = PreAnnotations(out, "labelstudio", tolerance=0.0, class_names=("background", "a", "b"))
    pre.add(tmp_path / "p.png", "p", Prediction(label, np.zeros((40, 60, 3), np.uint8)))
    pre.write()
    tasks = out / "tasks.labelstudio.json"
    tasks.write_text(tasks.read_text() + "\n")  # saved since: reviewed
    report = import_annotations("labelstudio", tasks, tmp_path / "imported")
    assert report.written == ["p"] and report.classes == ["_background_", "a", "b"]
    mask = np.asarray(Image.open(tmp_path / "imported" / "masks" / "p.png"))
    assert np.array_equal(mask[3:], label[3:]) and (mask[:3] == 0).all()


def test_labelstudio_tasks_name_uploaded_pictures_as_the_project_export_does(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    export = tmp_path / "project-3-export.json"
    export.write_text(json.dumps([
        {"id": 7, "data": {"image": "/data/upload/3/0a1b2c3d-p0.png"}, "annotations": []},
        {"id": 8, "data": {"image": "/data/upload/3/4e5f6a7b-p2.png"}, "annotations": []}]))
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out, "--image-urls-from", str(export),
                               "--image-url", "/data/local-files/?d=photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=photos/p1.png", "/data/upload/3/0a1b2c3d-p0.png",
        "/data/upload/3/4e5f6a7b-p2.png"]
    err = capsys.readouterr().err
    assert "1 picture(s) not in the Label Studio export of --image-urls-from (the first: " \
           "p1.png)" in err


def test_labelstudio_tasks_name_a_picture_uploaded_under_its_cleaned_name(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    # Label Studio stores an upload of "p 1 (b).png" as "0a1b2c3d-p_1_b.png".
    (photos / "p1.png").rename(photos / "p 1 (b).png")
    export = tmp_path / "project-3-export.json"
    export.write_text(json.dumps([
        {"id": 7, "data": {"image": "/data/upload/3/0a1b2c3d-p_1_b.png"}, "annotations": []}]))
    tasks = _labelstudio_tasks(make_checkpoint(), photos, tmp_path / "out",
                               "--image-urls-from", str(export),
                               "--image-url", "/data/local-files/?d=photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=photos/p0.png", "/data/local-files/?d=photos/p2.png",
        "/data/upload/3/0a1b2c3d-p_1_b.png"]
    assert "(the first: p0.png)" in capsys.readouterr().err


def test_image_urls_from_a_missing_export_is_one_line_before_anything_is_written(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelstudio",
                   "--image-urls-from", str(tmp_path / "nope.json")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.json: no such file (Label Studio JSON export)" in err[0]
    assert not out.exists()


def test_image_urls_from_a_folder_is_one_line_before_anything_is_written(
        make_checkpoint, photos, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelstudio",
                   "--image-urls-from", str(photos)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "photos: a folder, not a Label Studio JSON export" in err[0]
    assert not out.exists()


@pytest.fixture
def flights(photos):
    """One folder per flight, the camera's numbering starting again in each."""
    for k, flight in enumerate(("day1", "day2")):
        (photos / flight).mkdir()
        (photos / f"p{k}.png").rename(photos / flight / "DJI_0001.png")
    return photos


def test_labelstudio_gives_same_named_pictures_of_subfolders_a_task_each(
        make_checkpoint, flights, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), flights, out,
                               "--image-url", "/data/local-files/?d=my%20photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=my%20photos/day1/DJI_0001.png",
        "/data/local-files/?d=my%20photos/day2/DJI_0001.png",
        "/data/local-files/?d=my%20photos/p2.png"]
    assert "has the name" not in capsys.readouterr().err


def test_labelstudio_default_urls_of_same_named_pictures_lead_to_each(
        make_checkpoint, flights, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), flights, out)
    assert sorted((out / t["data"]["image"]).resolve() for t in tasks) == sorted(
        p.resolve() for p in flights.rglob("*.png"))


def test_image_urls_from_matches_same_named_pictures_by_their_folders(
        make_checkpoint, flights, tmp_path, capsys) -> None:
    export = tmp_path / "project-3-export.json"
    export.write_text(json.dumps([
        {"id": 7, "data": {"image": f"/data/local-files/?d=drone/{d}/DJI_0001.png"}}
        for d in ("day2", "day1")]))
    tasks = _labelstudio_tasks(make_checkpoint(), flights, tmp_path / "out",
                               "--image-urls-from", str(export))
    images = {t["data"]["image"] for t in tasks}
    assert {"/data/local-files/?d=drone/day1/DJI_0001.png",
            "/data/local-files/?d=drone/day2/DJI_0001.png"} <= images
    assert "several" not in capsys.readouterr().err


def test_image_urls_from_says_in_one_line_which_name_is_ambiguous(
        make_checkpoint, flights, tmp_path, capsys) -> None:
    export = tmp_path / "project-3-export.json"
    export.write_text(json.dumps([  # two uploads of one name: which is which is unknown
        {"id": 7, "data": {"image": "/data/upload/3/0a1b2c3d-DJI_0001.png"}},
        {"id": 8, "data": {"image": "/data/upload/3/4e5f6a7b-DJI_0001.png"}}]))
    tasks = _labelstudio_tasks(make_checkpoint(), flights, tmp_path / "out",
                               "--image-urls-from", str(export),
                               "--image-url", "/data/local-files/?d=photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=photos/day1/DJI_0001.png",
        "/data/local-files/?d=photos/day2/DJI_0001.png", "/data/local-files/?d=photos/p2.png"]
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "several" in ln]
    assert len(lines) == 1 and "2 picture(s)" in lines[0] and "day1/DJI_0001.png" in lines[0]


def test_closing_line_counts_an_annotation_left_out_apart_from_failed_inputs(
        make_checkpoint, flights, tmp_path, capsys) -> None:
    assert predict(make_checkpoint(), flights, tmp_path / "out", "--format", "labelme") == 1
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    assert "wrote outputs for 3 of 3 input(s)" in closing and "failed" not in closing
    assert "1 problem writing annotations" in closing


def test_an_exported_picture_is_only_the_one_whose_folders_match_it_best(tmp_path) -> None:
    from fcnseg.inference.annotate import exported_pictures

    day1, day2 = tmp_path / "day1" / "DJI_0001.png", tmp_path / "day2" / "DJI_0001.png"
    chosen, ambiguous = exported_pictures(
        [day1, day2], {"drone/day1/DJI_0001.png": "/data/local-files/?d=drone/day1/DJI_0001.png"})
    assert chosen == {day1: "/data/local-files/?d=drone/day1/DJI_0001.png"} and not ambiguous


def test_labelstudio_image_url_of_a_pattern_follows_its_folder_part(
        make_checkpoint, flights, tmp_path) -> None:
    tasks = _labelstudio_tasks(make_checkpoint(), flights / "*" / "*.png", tmp_path / "out",
                               "--image-url", "/data/local-files/?d=photos/")
    assert sorted(t["data"]["image"] for t in tasks) == [
        "/data/local-files/?d=photos/day1/DJI_0001.png",
        "/data/local-files/?d=photos/day2/DJI_0001.png"]


def test_coco_predictions_carry_the_category_ids_the_classes_were_imported_with(
        make_checkpoint, photos, tmp_path) -> None:
    import torch

    ckpt = torch.load(make_checkpoint(), weights_only=True)
    ckpt["classes"]["coco_categories"] = {"cat": {"id": 17, "supercategory": "animal"},
                                          "dog": {"id": 90, "supercategory": "animal"}}
    torch.save(ckpt, tmp_path / "coco.pt")
    written = _predicted_file("coco", tmp_path / "coco.pt", photos, tmp_path / "out")
    doc = json.loads(written.read_text())
    assert doc["categories"] == [{"id": 17, "name": "cat", "supercategory": "animal"},
                                 {"id": 90, "name": "dog", "supercategory": "animal"},
                                 {"id": 91, "name": "potted plant", "supercategory": ""}]
    assert {a["category_id"] for a in doc["annotations"]} <= {17, 90, 91}
    assert len({a["category_id"] for a in doc["annotations"]}) > 1


def test_coco_predictions_of_a_model_without_coco_categories_number_the_classes(
        make_checkpoint, photos, tmp_path) -> None:
    written = _predicted_file("coco", make_checkpoint(), photos, tmp_path / "out")
    assert [(c["id"], c["name"]) for c in json.loads(written.read_text())["categories"]] == [
        (1, "cat"), (2, "dog"), (3, "potted plant")]


def test_coco_names_pictures_of_subfolders_by_their_path_below_the_input_and_imports_them(
        make_checkpoint, flights, tmp_path, capsys) -> None:
    written = _predicted_file("coco", make_checkpoint(), flights, tmp_path / "out")
    assert sorted(i["file_name"] for i in json.loads(written.read_text())["images"]) == [
        "day1/DJI_0001.png", "day2/DJI_0001.png", "p2.png"]
    assert "has the name" not in capsys.readouterr().err
    report = import_annotations("coco", exported(written), tmp_path / "imported")
    assert sorted(report.written) == ["day1__DJI_0001", "day2__DJI_0001", "p2"]


def test_coco_names_pictures_given_one_by_one_below_the_folder_they_share(
        make_checkpoint, flights, tmp_path) -> None:
    out = tmp_path / "out"
    pictures = [str(p) for p in sorted(flights.rglob("DJI_0001.png"))]
    assert main(["predict", "--checkpoint", str(make_checkpoint()), *pictures, "--out",
                 str(out), "--no-progress", "--io-workers", "0", "--format", "coco"]) == 0
    doc = json.loads((out / "annotations.coco.json").read_text())
    assert sorted(i["file_name"] for i in doc["images"]) == [
        "day1/DJI_0001.png", "day2/DJI_0001.png"]


def test_coco_names_pictures_given_by_paths_through_a_parent_folder_below_it(
        make_checkpoint, flights, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(flights / "day2")  # ../day1/DJI_0001.png beside DJI_0001.png
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(make_checkpoint()), "../day1/DJI_0001.png",
                 "DJI_0001.png", "--out", str(out), "--no-progress", "--io-workers", "0",
                 "--format", "coco"]) == 0
    doc = json.loads((out / "annotations.coco.json").read_text())
    assert sorted(i["file_name"] for i in doc["images"]) == [
        "day1/DJI_0001.png", "day2/DJI_0001.png"]


def holed_label() -> np.ndarray:
    """Class 1 around a background hole holding a ring of class 2, and a one-pixel line of 2."""
    label = np.zeros((40, 60), np.uint8)
    label[5:35, 5:45] = 1
    label[12:28, 12:30] = 0
    label[15:25, 15:27] = 2
    label[18:22, 18:24] = 0
    label[2:38, 50] = 2
    label[0, :] = 255  # ignored: no brush
    return label


def test_labelstudio_brushes_decode_to_each_class_exactly_holes_included(tmp_path) -> None:
    from fcnseg.data.annotations.labelstudio import decode_brush_rle

    label = holed_label()
    pre = PreAnnotations(tmp_path, "labelstudio", tolerance="mask",
                         class_names=("background", "a", "b"))
    pre.add(tmp_path / "p.png", "p", Prediction(label, np.zeros((40, 60, 3), np.uint8)))
    pre.write()
    (task,) = json.loads((tmp_path / "tasks.labelstudio.json").read_text())
    results = task["predictions"][0]["result"]
    assert [(r["type"], r["value"]["brushlabels"]) for r in results] == [
        ("brushlabels", ["a"]), ("brushlabels", ["b"])]
    for r, c in zip(results, (1, 2), strict=True):
        assert r["value"]["format"] == "rle"
        np.testing.assert_array_equal(decode_brush_rle(r["value"]["rle"], 40, 60), label == c)


def test_labelstudio_brush_tasks_are_written_compact(make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out, "--tolerance", "mask")
    written = (out / "tasks.labelstudio.json").read_text()
    assert len(written) == len(json.dumps(tasks, ensure_ascii=False))  # not a byte a line


def test_labelstudio_brush_config_holds_brush_labels(make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    _labelstudio_tasks(make_checkpoint(), photos, out, "--tolerance", "mask")
    view = ET.fromstring((out / "labelstudio-config.xml").read_text())
    assert view.find("PolygonLabels") is None
    brushes = view.find("BrushLabels")
    assert (brushes.get("name"), brushes.get("toName")) == ("label", "image")
    assert [lab.get("value") for lab in brushes] == MODEL_CLASSES


def test_labelstudio_brush_tasks_import_to_the_predictions_exactly(
        make_checkpoint, photos, tmp_path) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out, "--tolerance", "mask")
    (out / "tasks.labelstudio.json").write_text(json.dumps(tasks, indent=2))  # saved: reviewed
    report = import_annotations("labelstudio", out / "tasks.labelstudio.json",
                                tmp_path / "imported")
    assert not report.errors and sorted(report.written) == ["p0", "p1", "p2"]
    for stem in report.written:
        mask = np.asarray(Image.open(tmp_path / "imported" / "masks" / f"{stem}.png"))
        predicted = read_label_png(out / f"{stem}_label.png")
        names = np.array([report.classes.index(n) for n in MODEL_CLASSES])
        np.testing.assert_array_equal(names[predicted], mask)


def test_info_counts_the_predicted_brushes_by_label(make_checkpoint, photos, tmp_path,
                                                    capsys) -> None:
    out = tmp_path / "out"
    tasks = _labelstudio_tasks(make_checkpoint(), photos, out, "--tolerance", "mask")
    capsys.readouterr()
    assert main(["info", str(out / "tasks.labelstudio.json")]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    brushes = [r["value"]["brushlabels"][0] for t in tasks for r in t["predictions"][0]["result"]]
    assert lines["contents"].strip().endswith(f"0 shape(s), {len(brushes)} predicted shape(s)")
    assert all(f"{n} ×{brushes.count(n)}" in lines["labels"] for n in set(brushes))


def test_tolerance_mask_needs_format_labelstudio(make_checkpoint, photos, tmp_path,
                                                 capsys) -> None:
    assert predict(make_checkpoint(), photos, tmp_path / "out", "--format", "coco",
                   "--tolerance", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tolerance mask" in err[0] and "--format labelstudio" in err[0]


def test_a_rerun_replacing_its_labelme_files_reads_the_output_list_once_for_them(
        make_checkpoint, photos, tmp_path, monkeypatch) -> None:
    from fcnseg.inference import files

    out = tmp_path / "out"
    assert predict(make_checkpoint(), photos, out, "--format", "labelme") == 0
    reads, original = [], files.read_manifest
    monkeypatch.setattr(files, "read_manifest", lambda folder: reads.append(folder) or
                        original(folder))
    entries = PreAnnotations(out, "labelme", class_names=("a", "b", "c", "d"))
    pred = Prediction(np.zeros((8, 8), np.uint8), np.zeros((0, 0, 3), np.uint8),
                      class_names=("a", "b", "c", "d"))
    for k in range(3):
        entries.add(photos / f"p{k}.png", f"p{k}", pred)
    written, problems = entries.write()
    assert len(written) == 3 and problems == []
    assert reads.count(out) == 1
