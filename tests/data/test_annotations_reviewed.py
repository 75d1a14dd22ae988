"""Pre-annotations ``fcnseg predict`` wrote (CVAT XML, COCO JSON; labelme's in
test_annotations_labelme.py) that nobody saved since are left out of an import as not
reviewed; the tool's export after review (another file, or the same path rewritten) imports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.inference.files import content_digest, record_outputs
from tests.data.test_annotations_every_format import write_source
from tests.data.test_annotations_formats import picture

# The file each format's source is, as fcnseg predict would have written it.
FILES = {"cvat": "annotations.xml", "coco": "coco.json"}


def predicted(fmt: str, root: Path) -> Path:
    """:func:`write_source`'s annotations of three images, recorded in the folder's
    ``.fcnseg-outputs.txt`` as fcnseg predict records the file it writes; the path to import."""
    if fmt == "coco":
        pytest.importorskip("pycocotools")
    src = write_source(fmt, root)
    file = root / FILES[fmt]
    record_outputs(root, [file])
    record_outputs(root, [file], [content_digest(file.read_bytes())])
    return src


def import_args(src: Path, fmt: str, out: Path) -> list[str]:
    images = src / "images" if src.is_dir() else src.parent / "images"
    return ["import", fmt, str(src), "--out", str(out), "--images", str(images)]


@pytest.mark.parametrize("fmt", ["cvat", "coco"])
def test_a_prediction_nobody_edited_is_left_out_as_not_reviewed(fmt, tmp_path: Path,
                                                                capsys) -> None:
    src = predicted(fmt, tmp_path / "preds")
    out = tmp_path / "out"
    assert main(import_args(src, fmt, out)) == 1  # no image imported: a script stops here
    said = capsys.readouterr().out
    kind = {"cvat": "CVAT XML", "coco": "COCO JSON"}[fmt]
    first = f" (the first: {tmp_path / 'preds' / FILES[fmt]})" if src.is_dir() else ""
    assert (f"fcnseg import: warning: {src}: 1 {kind} file(s) fcnseg predict wrote and nobody "
            f"saved since left out as not reviewed{first}: ") in said
    assert "no annotations" not in said and "not yet annotated" not in said
    assert said.splitlines()[-1] == (f"imported no image, so no dataset was written to {out}; "
                                     f"3 not reviewed (listed in {out / 'unannotated.txt'})")
    assert not (out / "masks").exists()
    assert sorted((out / "unannotated.txt").read_text().splitlines()) == [
        str(tmp_path / "preds" / "images" / f"i{k}.png") for k in range(3)]


@pytest.mark.parametrize("fmt", ["cvat", "coco"])
def test_the_same_path_rewritten_after_review_imports(fmt, tmp_path: Path, capsys) -> None:
    src = predicted(fmt, tmp_path / "preds")
    file = tmp_path / "preds" / FILES[fmt]
    file.write_bytes(file.read_bytes() + b"\n")  # the tool's export saved over it
    assert main(import_args(src, fmt, tmp_path / "out")) == 0
    said = capsys.readouterr().out
    assert "not reviewed" not in said and "imported 3 image(s)" in said


@pytest.mark.parametrize("fmt", ["cvat", "coco"])
def test_another_file_beside_the_prediction_imports(fmt, tmp_path: Path, capsys) -> None:
    predicted(fmt, tmp_path / "preds")
    file = tmp_path / "preds" / FILES[fmt]
    exported = file.with_name(f"reviewed{file.suffix}")
    shutil.copyfile(file, exported)  # an export of the reviewed task, unchanged or not
    assert main(import_args(exported, fmt, tmp_path / "out")) == 0
    assert "imported 3 image(s)" in capsys.readouterr().out


def test_a_prediction_read_directly_as_a_dataset_has_no_sample(tmp_path: Path) -> None:
    src = predicted("cvat", tmp_path / "preds")
    direct = build_dataset({"name": "cvat", "root": str(src),
                            "images": str(src / "images")})
    assert len(direct) == 0


def predicted_tasks(folder: Path, stems=("p0", "p1", "p2"), **task) -> list[dict]:
    """Label Studio tasks as fcnseg predict writes them (predictions, no ``annotations``),
    with ``task``'s fields added, and their pictures in ``folder / "images"``."""
    for stem in stems:
        picture(folder / "images" / f"{stem}.png")
    result = [{"type": "polygonlabels", "original_width": 40, "original_height": 30,
               "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["cat"]}}]
    return [{"data": {"image": f"images/{stem}.png"},
             "predictions": [{"model_version": "fcn", "result": result}], **task}
            for stem in stems]


def label_studio_import(tasks: list[dict], src: Path, out: Path) -> int:
    src.write_text(json.dumps(tasks))
    return main(["import", "labelstudio", str(src), "--out", str(out)])


def test_label_studio_tasks_with_predictions_only_are_one_line_saying_what_to_do(
        tmp_path: Path, capsys) -> None:
    # predict's tasks file, edited and saved under another name: predictions are no labels
    src, out = tmp_path / "edited_tasks.json", tmp_path / "out"
    assert label_studio_import(predicted_tasks(tmp_path), src, out) == 1
    said = capsys.readouterr().out
    assert "no annotations" not in said
    [line] = [ln for ln in said.splitlines() if "warning" in ln]
    assert line.startswith(f"fcnseg import: warning: {src}: 3 task(s) with predictions only "
                           f"(pre-annotations are not labels; the first: p0.png): accept or "
                           f"correct them in Label Studio and import its export, or edit ")
    assert said.splitlines()[-1] == (f"imported no image, so no dataset was written to {out}; "
                                     f"3 with predictions only (listed in "
                                     f"{out / 'unannotated.txt'})")
    assert sorted((out / "unannotated.txt").read_text().splitlines()) == [
        str(tmp_path / "images" / f"p{k}.png") for k in range(3)]


def test_an_import_of_predictions_only_names_no_classes(tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "edited_tasks.json", tmp_path / "out"
    assert label_studio_import(predicted_tasks(tmp_path), src, out) == 1
    assert "labels found" not in capsys.readouterr().out


def test_a_label_studio_export_task_with_predictions_only_names_its_picture(
        tmp_path: Path, capsys) -> None:
    tasks = predicted_tasks(tmp_path, stems=("p0",), annotations=[])
    assert label_studio_import(tasks, tmp_path / "export.json", tmp_path / "out") == 1
    said = capsys.readouterr().out
    assert (f"fcnseg import: warning: {tmp_path / 'export.json'}: p0.png: predictions only "
            f"(pre-annotations are not labels): accept or correct them in Label Studio and "
            f"import its export") in said
    assert "no annotations" not in said


def test_an_import_with_some_images_written_exits_0(tmp_path: Path, capsys) -> None:
    tasks = predicted_tasks(tmp_path, stems=("p0", "p1"), annotations=[])
    tasks[0]["annotations"] = [{"result": tasks[0]["predictions"][0]["result"]}]  # accepted
    assert label_studio_import(tasks, tmp_path / "export.json", tmp_path / "out") == 0
    said = capsys.readouterr().out.splitlines()
    assert said[-1].startswith("imported 1 image(s)") and "1 with predictions only" in said[-1]


def test_an_import_of_tasks_nobody_annotated_exits_1_keeping_the_list(tmp_path: Path,
                                                                       capsys) -> None:
    tasks = [{"data": {"image": f"images/p{k}.png"}, "annotations": []} for k in range(2)]
    for k in range(2):
        picture(tmp_path / "images" / f"p{k}.png")
    out = tmp_path / "out"
    assert label_studio_import(tasks, tmp_path / "export.json", out) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"imported no image, so no dataset was written to {out}; 2 without annotations "
        f"(listed in {out / 'unannotated.txt'})")
    assert len((out / "unannotated.txt").read_text().splitlines()) == 2
