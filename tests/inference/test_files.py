"""Segmenting files into a folder: inputs found, outputs named, written and never re-read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.inference import ImageError
from fcnseg.inference.files import (
    MANIFEST_NAME,
    OutputOptions,
    OwnOutputs,
    PictureStyle,
    collect_inputs,
    output_files,
    outputs_job,
    parse_classes,
    record_outputs,
    record_written,
    write_prediction,
    write_predictions,
    written_by,
)
from fcnseg.inference.pipeline import segment_files
from fcnseg.inference.visualize import read_label_png

CLASSES = ["background", "cat", "dog", "potted plant"]


def test_an_output_folder_inside_the_input_folder_is_not_scanned(tmp_path) -> None:
    (tmp_path / "photos" / "preds").mkdir(parents=True)
    for rel in ("photos/a.png", "photos/preds/b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / rel)
    inputs, problems = collect_inputs([str(tmp_path / "photos")], tmp_path / "photos" / "preds")
    assert [p.name for p, _ in inputs] == ["a.png"] and not problems
    # the same folder as --out is still scanned (its own images are the inputs)
    inputs, _ = collect_inputs([str(tmp_path / "photos")], tmp_path / "photos")
    assert sorted(p.name for p, _ in inputs) == ["a.png", "b.png"]


def test_hidden_files_and_folders_of_a_folder_are_not_inputs(tmp_path) -> None:
    (tmp_path / ".thumbnails").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "IMG_0001.JPG")
    Image.new("RGB", (4, 4)).save(tmp_path / ".thumbnails" / "IMG_0001.png")
    (tmp_path / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # AppleDouble
    inputs, problems = collect_inputs([str(tmp_path)])
    assert [p.name for p, _ in inputs] == ["IMG_0001.JPG"] and not problems


def test_a_picture_of_a_folder_that_is_a_link_to_nothing_is_named(tmp_path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    inputs, problems = collect_inputs([str(tmp_path)])
    assert [p.name for p, _ in inputs] == ["a.png"]
    assert problems == [(str(tmp_path / "loop.jpg"),
                         "not segmented: a link to no file, or a loop of links")]


def test_files_listed_in_a_manifest_above_them_are_not_inputs(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    for rel in ("a.png", "a_label.png", "sub/b_overlay.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / rel)
    (tmp_path / MANIFEST_NAME).write_text("sub/b_overlay.png\n")
    own = OwnOutputs()
    assert tmp_path / "sub" / "b_overlay.png" in own
    assert tmp_path / "a_label.png" not in own  # same suffix, but not written by fcnseg
    inputs, problems = collect_inputs([str(tmp_path), str(tmp_path / "sub" / "*.png")])
    assert sorted(p.name for p, _ in inputs) == ["a.png", "a_label.png"]
    assert problems == [(str(tmp_path / "sub" / "*.png"), "pattern matches no files")]


def test_a_folders_other_files_are_not_looked_up_among_earlier_outputs(tmp_path,
                                                                       monkeypatch) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    for name in ("a.json", "notes.txt", "shot.CR2"):
        (tmp_path / name).write_bytes(b"x")
    looked_up: list[str] = []
    contains = OwnOutputs.__contains__
    monkeypatch.setattr(OwnOutputs, "__contains__",
                        lambda self, path: looked_up.append(path.name) or contains(self, path))
    inputs, _ = collect_inputs([str(tmp_path)], tmp_path / "preds", notes=[])
    assert [p.name for p, _ in inputs] == ["a.png"]
    assert sorted(looked_up) == ["a.png", "shot.CR2"]  # the pictures, read or named


def test_output_files_are_named_after_the_input_and_the_classes(tmp_path) -> None:
    files = output_files(tmp_path, "sub/x", CLASSES, heatmap_classes=[3], probs=True)
    assert [p.relative_to(tmp_path).as_posix() for p in files.all()] == [
        "sub/x_label.png", "sub/x_overlay.png", "sub/x_heatmap_potted_plant.png",
        "sub/x_probs.npz"]
    assert output_files(tmp_path, "x", CLASSES).probs is None


def _prediction(segmenter, smooth_image):
    return segmenter.predict(smooth_image, return_probs=True)


def test_write_prediction_writes_and_lists_every_file(segmenter, smooth_image, tmp_path) -> None:
    pred = _prediction(segmenter, smooth_image)
    files = write_prediction(tmp_path, "x", pred, segmenter.palette,
                             OutputOptions(heatmap_classes=(1,), probs=True))
    assert all(p.is_file() for p in files.all())
    np.testing.assert_array_equal(read_label_png(files.label), pred.label)
    with np.load(files.probs) as npz:
        np.testing.assert_array_equal(npz["probs"], pred.probs)
        assert list(npz["class_names"]) == CLASSES
    listed = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    assert listed == [p.name for p in files.all()]


def test_write_prediction_never_replaces_a_protected_file(segmenter, smooth_image,
                                                          tmp_path) -> None:
    truth = tmp_path / "x_label.png"
    truth.write_bytes(b"ground truth")
    pred = _prediction(segmenter, smooth_image)
    with pytest.raises(FileExistsError, match="x_label.png"):
        write_prediction(tmp_path, "x", pred, segmenter.palette,
                         OutputOptions(protected=frozenset({truth.resolve()})))
    assert truth.read_bytes() == b"ground truth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_label.png"], "nothing written"


def test_heatmaps_need_probabilities(segmenter, smooth_image, tmp_path) -> None:
    pred = segmenter.predict(smooth_image)
    with pytest.raises(ValueError, match="return_probs=True"):
        write_prediction(tmp_path, "x", pred, segmenter.palette,
                         OutputOptions(heatmap_classes=(1,)))


def test_segment_files_yields_each_input_in_order_with_its_error(segmenter, smooth_image,
                                                                 tmp_path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(smooth_image).save(good)
    bad.write_bytes(b"not an image")
    results = list(segment_files(segmenter, [(good, "a"), (bad, "b"), (good, "c")],
                                 batch_size=2))
    assert [(path.name, name) for path, name, _ in results] == [
        ("good.png", "a"), ("bad.png", "b"), ("good.png", "c")]
    assert isinstance(results[1][2], ImageError) and "bad.png" in str(results[1][2])
    assert all(r[2].label.shape == smooth_image.shape[:2] for r in (results[0], results[2]))


@pytest.mark.parametrize(("items", "expected"), [
    (["cat,3"], [1, 3]),
    (["dog", "cat, dog"], [2, 1]),
    ("potted plant", [3]),
    (["all"], [0, 1, 2, 3]),
])
def test_parse_classes_takes_names_indices_and_commas(items, expected) -> None:
    assert parse_classes(items, CLASSES) == expected


@pytest.mark.parametrize("bad", ["zebra", "4", "-1", "²", "①"])
def test_parse_classes_names_the_unknown_class(bad) -> None:
    with pytest.raises(ValueError, match=f"unknown class '{bad}'.*'potted plant'"):
        parse_classes([bad], CLASSES)


def test_parse_classes_names_a_number_of_thousands_of_digits_shortly() -> None:
    with pytest.raises(ValueError, match=r"unknown class '99999.*…99999999'; the model's") as e:
        parse_classes(["9" * 5_000], CLASSES)
    assert len(str(e.value)) < 300


def test_segment_files_is_one_function_in_its_earlier_and_current_homes() -> None:
    from fcnseg.inference import files, pipeline, prefetch

    assert files.segment_files is pipeline.segment_files is prefetch.segment_files


def test_written_by_names_the_run_that_last_wrote_each_output(tmp_path) -> None:
    a, b = tmp_path / "a_label.png", tmp_path / "sub" / "b_label.png"
    record_outputs(tmp_path, [a, b])
    record_written(tmp_path, "sha256=one", [a, b])
    # a later run listed b before writing it, and stopped: b is no longer known to be one's
    record_outputs(tmp_path, [b])
    assert written_by(tmp_path) == {a: "sha256=one", b: None}
    assert a in OwnOutputs() and b in OwnOutputs()  # still never taken for inputs


def test_an_older_manifest_records_no_run(tmp_path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("a_label.png\na_overlay.png\n")
    assert written_by(tmp_path) == {tmp_path / "a_label.png": None,
                                    tmp_path / "a_overlay.png": None}
    assert written_by(tmp_path / "nothing here") == {}


def test_write_predictions_records_the_run_of_each_written_prediction(
        segmenter, smooth_image, tmp_path) -> None:
    pred = _prediction(segmenter, smooth_image)
    outcomes = list(write_predictions([(tmp_path / "x.png", "x", pred)], tmp_path,
                                      segmenter.palette, OutputOptions(job="sha256=run"),
                                      workers=0))
    files = output_files(tmp_path, "x", CLASSES)
    assert outcomes[0].problem is None
    assert written_by(tmp_path) == {p: "sha256=run" for p in files.all()}


def test_the_run_record_changes_with_the_model_the_palette_and_the_pictures(segmenter) -> None:
    palette = segmenter.palette
    base = outputs_job("sha256=model", palette, PictureStyle())
    assert base == outputs_job("sha256=model", palette.copy(), PictureStyle())
    other_palette = palette.copy()
    other_palette[1] = 255 - other_palette[1]
    assert len({base, outputs_job("sha256=other", palette, PictureStyle()),
                outputs_job("sha256=model", other_palette, PictureStyle()),
                outputs_job("sha256=model", palette, PictureStyle(alpha=0.3))}) == 4


def test_full_size_pictures_keep_the_run_record_of_earlier_versions(segmenter) -> None:
    """--skip-complete finds the outputs of a run before --picture-max-side and --no-overlay
    complete."""
    import json
    from dataclasses import asdict

    from fcnseg.inference.files import content_digest

    palette = segmenter.palette
    style = asdict(PictureStyle())
    del style["max_side"], style["overlay"]
    earlier = content_digest(json.dumps({"model": "sha256=model", "palette": palette.tolist(),
                                         "style": style}, sort_keys=True, default=str).encode())
    assert outputs_job("sha256=model", palette, PictureStyle()) == earlier
    assert outputs_job("sha256=model", palette, PictureStyle(max_side=512)) != earlier
    assert outputs_job("sha256=model", palette, PictureStyle(overlay=False)) != earlier


def test_input_folders_are_the_folders_given_and_the_folder_part_of_patterns(tmp_path) -> None:
    from fcnseg.inference.files import input_folders

    (tmp_path / "photos").mkdir()
    (tmp_path / "one.png").write_bytes(b"")
    specs = [str(tmp_path / "photos"), str(tmp_path / "drone" / "*" / "*.JPG"),
             str(tmp_path / "one.png"), "*.png"]
    assert input_folders(specs) == (tmp_path / "photos", tmp_path / "drone", Path("."))


def test_outputs_written_since_the_manifests_were_read_are_known_by_one_read_more(
        segmenter, smooth_image, tmp_path, monkeypatch) -> None:
    from fcnseg.inference import files

    pred = segmenter.predict(smooth_image)
    monkeypatch.setattr(files, "_OWN", files.OwnOutputs())
    for _ in range(2):  # the manifests are read, holding x0's outputs
        write_prediction(tmp_path, "x0", pred, segmenter.palette)
    names = [f"x{k}" for k in range(1, 6)]
    for name in names:  # written since
        write_prediction(tmp_path, name, pred, segmenter.palette)
    reads, original = [], files.read_manifest
    monkeypatch.setattr(files, "read_manifest", lambda folder: reads.append(folder) or
                        original(folder))
    for name in names:  # replaced: each output is known as predict's
        write_prediction(tmp_path, name, pred, segmenter.palette)
    assert reads.count(tmp_path) == 1 and len(reads) == len(set(reads))  # none read twice
