"""``fcnseg evaluate`` end to end on a tiny checkpoint and the synthetic dataset."""

import json
import os
import signal
import time

import numpy as np
import pytest
import torch
from ondisk import write_folder, write_nyud, write_voc
from tiny_models import tiny_task_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data import SYNTHETIC_CLASSES, VOC_CLASSES, palette_for
from fcnseg.data.palette import voc_palette
from fcnseg.engine.evaluation import evaluate_checkpoint
from fcnseg.metrics import scores
from fcnseg.models import fcn8s
from fcnseg.pretrained.reference import NYUD_CLASSES


def _checkpoint(path, class_names, recipe=None):
    torch.manual_seed(0)
    k = len(class_names)
    model = fcn8s(num_classes=k, geometry="same", width=0.0625, fc_channels=16)
    with torch.no_grad():  # score layers start at zero; random ones give varied predictions
        for layer in (model.head.score_fr, model.head.score_pool4, model.head.score_pool3):
            layer.weight.normal_(0, 1.0)
    return save_checkpoint(path, model, class_names=class_names, palette=palette_for(k),
                           recipe=recipe)


@pytest.fixture
def synthetic_checkpoint(tmp_path):
    return _checkpoint(tmp_path / "synthetic.pt", list(SYNTHETIC_CLASSES))


def test_evaluate_prints_metrics_and_writes_report_and_plot(synthetic_checkpoint, tmp_path,
                                                            capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "3", "--size", "40x48", "--out", str(out), "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    for metric in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert metric in printed
    for name in SYNTHETIC_CLASSES:
        assert f"\n{name} " in printed

    report = json.loads((out / "report.json").read_text())
    confusion = np.asarray(report["confusion"])
    assert confusion.shape == (7, 7)
    assert confusion.sum() == 3 * 40 * 48  # every pixel of every whole image, once
    assert report["metrics"]["mean_iu"] == pytest.approx(scores(confusion)["mean_iu"])
    assert [c["class"] for c in report["per_class"]] == list(SYNTHETIC_CLASSES)
    assert [c["pixels"] for c in report["per_class"]] == confusion.sum(axis=1).tolist()
    assert report["checkpoint"]["path"] == str(synthetic_checkpoint)
    assert report["dataset"]["name"] == "synthetic"
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sliding_window_and_flip_score_every_pixel(synthetic_checkpoint, tmp_path):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "1", "--size", "48x64", "--sliding-window", "32", "--tta-flip",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert np.asarray(report["confusion"]).sum() == 48 * 64
    assert report["options"]["sliding_window"] == 32 and report["options"]["tta_flip"]


def test_class_count_mismatch_fails_with_a_clear_message(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "four.pt", ["a", "b", "c", "d"])
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--out", str(tmp_path / "eval")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"7 classes [{', '.join(SYNTHETIC_CLASSES)}]" in err and "predicts 4 [a, b, c, d]" in err
    assert str(ckpt) in err
    assert not (tmp_path / "eval" / "report.json").exists()


def test_other_class_names_are_refused_in_one_line_naming_both_lists(tmp_path, capsys):
    names = [f"other{i}" for i in range(len(SYNTHETIC_CLASSES))]
    ckpt = _checkpoint(tmp_path / "renamed.pt", names)
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--out", str(tmp_path / "eval")])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert f"[{', '.join(names)}]" in lines[0] and f"[{', '.join(SYNTHETIC_CLASSES)}]" in lines[0]
    assert not (tmp_path / "eval" / "report.json").exists()


def test_the_same_classes_in_another_order_are_matched_by_name(synthetic_checkpoint, tmp_path,
                                                                capsys):
    shuffled = [SYNTHETIC_CLASSES[i] for i in (0, 4, 2, 6, 1, 5, 3)]
    reports = {}
    for name, classes in (("same", list(SYNTHETIC_CLASSES)), ("shuffled", shuffled)):
        root = write_folder(tmp_path / name, classes)
        assert main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset",
                     "folder", "--root", str(root), "--out", str(tmp_path / f"eval_{name}")]) == 0
        reports[name] = json.loads((tmp_path / f"eval_{name}" / "report.json").read_text())
        printed = capsys.readouterr().out
        assert ("matched to them by name" in printed) == (name == "shuffled")
    assert reports["shuffled"]["confusion"] == reports["same"]["confusion"]
    assert reports["shuffled"]["metrics"] == reports["same"]["metrics"]
    assert "by name" in reports["shuffled"]["dataset"]["classes_matched_by_name"]


@pytest.mark.parametrize("year", ["2012", "2011"])
def test_the_report_names_the_voc_year_and_folder_it_scored(tmp_path, capsys, year):
    root = tmp_path / "data"
    write_voc(root, "2012", {"val": ["a"]})
    write_voc(root, "2011", {"val": ["b"]})
    ckpt = _checkpoint(tmp_path / "voc.pt", list(VOC_CLASSES))
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "voc", "--root", str(root),
                 "--year", year, "--split", "val", "--out", str(out)]) == 0
    folder = root / "VOCdevkit" / f"VOC{year}"
    dataset = json.loads((out / "report.json").read_text())["dataset"]
    assert (dataset["name"], dataset["year"], dataset["split"], dataset["root"],
            dataset["folder"]) == ("voc", year, "val", str(root), str(folder))
    assert f"{ckpt} on voc {year} val at {folder} (1 images" in capsys.readouterr().out


def test_dataset_root_is_required_for_voc(synthetic_checkpoint, capsys):
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "voc"])
    assert rc == 2
    assert "--root: required for --dataset voc" in capsys.readouterr().err


def test_default_dataset_is_the_validation_set_of_the_checkpoints_recipe(tmp_path):
    val = {"name": "synthetic", "num_images": 2, "size": 32, "seed": 5, "split": "val"}
    ckpt = _checkpoint(tmp_path / "run.pt", list(SYNTHETIC_CLASSES),
                       recipe={"name": "tiny", "data": {"val": val}})
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {k: report["dataset"][k] for k in val} == val
    assert np.asarray(report["confusion"]).sum() == 2 * 32 * 32


def test_no_dataset_and_no_recipe_asks_for_one(synthetic_checkpoint, capsys):
    assert main(["evaluate", "--checkpoint", str(synthetic_checkpoint)]) == 2
    assert "records no validation dataset" in capsys.readouterr().err


def test_the_missing_dataset_line_names_the_options_that_evaluate(synthetic_checkpoint,
                                                                   tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(synthetic_checkpoint)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--dataset folder --root DIR" in lines[0]
    root = write_folder(tmp_path / "mine", list(SYNTHETIC_CLASSES))
    suggested = ["--dataset", "folder", "--root", str(root)]
    assert main(["evaluate", "--checkpoint", str(synthetic_checkpoint), *suggested,
                 "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "report.json").is_file()


def test_tta_scales_take_spaces_or_commas_like_predict(synthetic_checkpoint, tmp_path):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "1", "--size", "40", "--tta-scales", "0.75,1", "1.25",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["tta_scales"] == [0.75, 1.0, 1.25]
    assert np.asarray(report["confusion"]).sum() == 40 * 40


@pytest.mark.parametrize("options, message", [
    (["--sliding-window", "0"], "--sliding-window/--stride: window must be a positive int"),
    (["--stride", "8"], "--stride: only meaningful with --sliding-window"),
    (["--sliding-window", "16", "--stride", "20"], "larger than the window 16 would skip"),
    (["--tta-scales", "1,0"], "--tta-scales: scales must be positive"),
])
def test_bad_inference_options_are_refused_not_ignored(synthetic_checkpoint, tmp_path, capsys,
                                                       options, message):
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--out", str(tmp_path / "eval"), *options])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_config_names_the_folder_datasets_yaml_as_in_check_data() -> None:
    from fcnseg.cli.main import build_parser
    from fcnseg.cli.options import dataset_spec

    args = build_parser().parse_args(["evaluate", "--checkpoint", "m.pt", "--dataset", "folder",
                                      "--root", "data/mine", "--config", "classes.yaml"])
    assert dataset_spec(args, {}) == {"name": "folder", "split": "val", "root": "data/mine",
                                      "config": "classes.yaml"}


def _evaluate(checkpoint, *extra):
    return main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic",
                 "--num-images", "2", "--size", "32x40", "--device", "cpu", "--no-calibration",
                 *extra])


def test_default_output_is_beside_the_checkpoint_and_never_overwritten(
        synthetic_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _evaluate(synthetic_checkpoint) == 0
    first = synthetic_checkpoint.parent / "eval" / "report.json"
    assert first.is_file() and not (tmp_path / "runs").exists()
    before = first.read_bytes()
    capsys.readouterr()
    assert _evaluate(synthetic_checkpoint) == 0
    printed = capsys.readouterr().out
    second = synthetic_checkpoint.parent / "eval-2" / "report.json"
    assert second.is_file() and first.read_bytes() == before
    assert "holds an earlier evaluation; writing to" in printed and "eval-2" in printed


def test_an_explicit_out_holding_a_report_is_replaced_with_a_note(synthetic_checkpoint, tmp_path,
                                                                  capsys):
    out = tmp_path / "mine"
    assert _evaluate(synthetic_checkpoint, "--out", str(out)) == 0
    capsys.readouterr()
    assert _evaluate(synthetic_checkpoint, "--out", str(out)) == 0
    assert f"replacing the earlier evaluation in {out}" in capsys.readouterr().out


@pytest.mark.parametrize(("amp", "expected"), [("none", "fp32"), ("bf16", "bf16")])
def test_default_precision_is_the_one_training_validated_at(tmp_path, capsys, amp, expected):
    recipe = None if amp is None else {"name": "synthetic-fcn8s", "amp": amp}
    checkpoint = _checkpoint(tmp_path / "m.pt", list(SYNTHETIC_CLASSES), recipe=recipe)
    out = tmp_path / "eval"
    assert _evaluate(checkpoint, "--out", str(out)) == 0
    assert f"precision {expected}, as training validated" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["precision"] == expected
    assert report["options"]["precision_from"] == "as training validated"


def test_python_with_its_defaults_scores_what_the_command_scores(tmp_path, capsys):
    # A bf16 recipe: the command evaluates at the precision training validated at, and so
    # must evaluate_checkpoint; both score the val split unless told otherwise.
    checkpoint = _checkpoint(tmp_path / "m.pt", list(SYNTHETIC_CLASSES),
                             recipe={"name": "synthetic-fcn8s", "precision": "bf16"})
    out = tmp_path / "eval"
    assert _evaluate(checkpoint, "--out", str(out)) == 0
    assert f"{checkpoint} on synthetic val (2 images" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    result = evaluate_checkpoint(checkpoint, {"name": "synthetic", "num_images": 2,
                                              "size": [32, 40]})
    assert (result["precision"], result["dataset"]["split"]) == ("bf16", "val")
    assert (report["precision"], report["dataset"]["split"]) == ("bf16", "val")
    assert result["confusion"] == report["confusion"]


def test_strips_writes_titled_image_truth_prediction_strips(synthetic_checkpoint, tmp_path):
    from PIL import Image

    out = tmp_path / "eval"
    assert _evaluate(synthetic_checkpoint, "--out", str(out), "--strips", "2") == 0
    strips = sorted((out / "strips").glob("*.png"))
    assert len(strips) == 2
    width, height = Image.open(strips[0]).size
    assert width > 3 * 32  # three panels (enlarged) side by side, titled, with a legend


def test_strips_are_said_among_the_files_written(synthetic_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert _evaluate(synthetic_checkpoint, "--out", str(out), "--strips", "2") == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"wrote 2 image | ground truth | prediction strips to {out / 'strips'}" in printed


def test_a_limit_records_the_images_scored_and_the_images_of_the_split(
        synthetic_checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert _evaluate(synthetic_checkpoint, "--out", str(out), "--limit", "1") == 0
    dataset = json.loads((out / "report.json").read_text())["dataset"]
    assert (dataset["num_images"], dataset["images_in_split"]) == (1, 2)


def test_evaluate_and_check_data_offer_the_same_datasets() -> None:
    from fcnseg.cli.main import build_parser

    def choices(command: str) -> list[str]:
        sub = next(a for a in build_parser()._actions if hasattr(a, "choices")
                   and isinstance(a.choices, dict)).choices[command]
        return list(next(a for a in sub._actions if a.dest == "dataset").choices)

    assert choices("evaluate") == choices("check-data") == choices("calibrate")
    assert {"cityscapes", "ade20k", "pascal_context", "nyud", "siftflow", "labelme",
            "coco"} <= set(choices("evaluate"))


def _spec(*argv: str, ckpt=None) -> dict:
    from fcnseg.cli.main import build_parser
    from fcnseg.cli.options import dataset_spec

    args = build_parser().parse_args(["evaluate", "--checkpoint", "m.pt", *argv])
    return dataset_spec(args, ckpt or {})


def test_data_name_replaces_the_recipes_dataset_without_its_fields() -> None:
    recipe = {"recipe": {"data": {"val": {"name": "synthetic", "num_images": 20, "size": 64}}}}
    assert _spec("--data", "name=cityscapes", "--root", "data/cs", ckpt=recipe) == {
        "name": "cityscapes", "split": "val", "root": "data/cs"}
    assert _spec("--dataset", "cityscapes", "--root", "data/cs") == {
        "name": "cityscapes", "split": "val", "root": "data/cs"}


def test_data_name_needs_the_datasets_own_fields_and_agrees_with_dataset() -> None:
    with pytest.raises(ValueError, match="--root: required for --dataset ade20k"):
        _spec("--data", "name=ade20k")
    with pytest.raises(ValueError, match="name two datasets"):
        _spec("--dataset", "voc", "--data", "name=cityscapes", "--root", "x")
    with pytest.raises(ValueError, match="unknown dataset"):
        _spec("--data", "name=kitti", "--root", "x")


def test_data_name_left_empty_takes_and_says_the_recipes_dataset(capsys) -> None:
    val = {"name": "synthetic", "num_images": 2, "size": 32}
    assert _spec("--data", "name=", ckpt={"recipe": {"data": {"val": val}}}) == val
    assert f"dataset from the checkpoint's recipe: {val}" in capsys.readouterr().out


def test_a_library_warning_is_one_line_naming_the_command(synthetic_checkpoint, tmp_path,
                                                          capsys, monkeypatch):
    import warnings

    import fcnseg.cli.evaluate as command

    def warning_then_score(*args, **kwargs):
        warnings.warn("a library's warning\nover two lines", UserWarning, stacklevel=2)
        return evaluate_checkpoint(*args, **kwargs)

    monkeypatch.setattr(command, "evaluate_checkpoint", warning_then_score)
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "1", "--size", "32", "--out", str(tmp_path / "eval")])
    assert rc == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert lines == ["fcnseg evaluate: warning: a library's warning over two lines"]


def _six_band_folder(root):
    import tifffile
    from PIL import Image
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    tifffile.imwrite(root / "images" / "s0.tif", np.full((32, 32, 6), 900, np.uint16),
                     photometric="minisblack", planarconfig="contig")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "masks" / "s0.png")
    (root / "dataset.yaml").write_text("classes: [other, water, crops]\n"
                                       "bands: [red, green, blue, nir, swir1, swir2]\n")
    (root / "val.txt").write_text("s0\n")
    return root


def test_an_rgb_model_on_a_band_dataset_is_one_line_naming_both(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "rgb.pt", ["other", "water", "crops"])
    root = _six_band_folder(tmp_path / "bands")
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "folder", "--root", str(root),
               "--out", str(tmp_path / "eval")])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert str(root) in lines[0] and str(ckpt) in lines[0]
    assert "6 bands (red, green, blue, nir, swir1, swir2)" in lines[0]
    assert "RGB colour" in lines[0]
    assert not (tmp_path / "eval" / "report.json").exists()


def test_the_header_says_sliding_windows_and_tta_not_as_training_validated(
        synthetic_checkpoint, tmp_path, capsys):
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "1", "--size", "48x64", "--sliding-window", "32", "--tta-flip",
               "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert rc == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "as training validated" not in header
    assert "32×32 sliding windows at stride 21" in header
    assert "test-time augmentation: flips" in header


def _cityscapes_test_split(tmp_path):  # -> a Cityscapes checkpoint; cs/ holds a test split
    from PIL import Image

    from fcnseg.data.cityscapes import CITYSCAPES_CLASSES

    for kind, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
        folder = tmp_path / "cs" / kind / "test" / "berlin"
        folder.mkdir(parents=True)
        picture = Image.new("RGB" if kind == "leftImg8bit" else "L", (32, 32))  # masks all void
        picture.save(folder / f"berlin_000000_000019_{suffix}.png")
    return _checkpoint(tmp_path / "cs.pt", list(CITYSCAPES_CLASSES))


def test_the_cityscapes_test_split_is_refused_in_one_line_saying_its_labels_are_withheld(
        tmp_path, capsys):
    ckpt = _cityscapes_test_split(tmp_path)
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "cityscapes", "--root",
               str(tmp_path / "cs"), "--split", "test", "--out", str(tmp_path / "eval")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "test labels are withheld (all void)" in err
    assert "nothing to score" in err and "benchmark server" in err
    assert not (tmp_path / "eval" / "report.json").exists()


@pytest.mark.parametrize(("recipe", "source"), [
    (None, "the default, as the checkpoint records no training precision"),
    ({"converted_from": "fcn8s-heavy-pascal.caffemodel", "reference": "fcn8s-heavy-pascal"},
     "the default for a converted model, never validated in training"),
])
def test_an_untrained_or_converted_checkpoint_is_not_said_to_be_as_training_validated(
        tmp_path, capsys, recipe, source):
    checkpoint = _checkpoint(tmp_path / "m.pt", list(SYNTHETIC_CLASSES), recipe=recipe)
    out = tmp_path / "eval"
    assert _evaluate(checkpoint, "--out", str(out)) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(f"precision fp32, {source})")
    report = json.loads((out / "report.json").read_text())
    assert (report["precision"], report["options"]["precision_from"]) == ("fp32", source)


@pytest.fixture
def nyud_val(tmp_path):
    write_nyud(tmp_path, {"val": ["1", "2"]}, size=(32, 32))
    return tmp_path / "nyud"


def _nyud_checkpoint(path, arch):
    return save_checkpoint(path, tiny_task_model(arch), class_names=list(NYUD_CLASSES),
                           palette=voc_palette())


@pytest.mark.parametrize(("arch", "modalities"), [("nyud_fcn32s_color_hha", ["color", "hha"]),
                                                  ("nyud_fcn32s_hha", ["hha"])])
def test_evaluate_on_nyud_reads_the_modalities_the_model_takes(nyud_val, tmp_path, capsys,
                                                                arch, modalities):
    checkpoint = _nyud_checkpoint(tmp_path / "m.pt", arch)
    args = ["evaluate", "--checkpoint", str(checkpoint), "--dataset", "nyud", "--root",
            str(nyud_val), "--device", "cpu", "--no-calibration"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["dataset"]["modalities"] == modalities
    listed = f"modalities=[{', '.join(modalities)}]"
    assert main([*args, "--out", str(tmp_path / "given"), "--data", listed]) == 0
    given = json.loads((tmp_path / "given" / "report.json").read_text())
    assert report["confusion"] == given["confusion"]


def test_modalities_the_model_lacks_are_refused_naming_its_inputs_and_how_to_give_them(
        nyud_val, tmp_path, capsys):
    checkpoint = _nyud_checkpoint(tmp_path / "m.pt", "nyud_fcn32s_color_hha")
    rc = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "nyud", "--root",
               str(nyud_val), "--data", "modalities=[color]", "--out", str(tmp_path / "eval"),
               "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "the model takes the inputs ['color', 'hha']; the dataset gives ['color']" in err
    assert '--data "modalities=[color, hha]"' in err
    assert not (tmp_path / "eval").exists()


def test_evaluate_checkpoint_gives_a_nyud_spec_the_models_modalities(nyud_val, tmp_path):
    checkpoint = _nyud_checkpoint(tmp_path / "m.pt", "nyud_fcn32s_color_d")
    result = evaluate_checkpoint(checkpoint, {"name": "nyud", "root": str(nyud_val)},
                                 calibration=False)
    assert result["dataset"]["modalities"] == ["color", "depth"]


def _relative_root_checkpoint(tmp_path):
    """A checkpoint as training wrote them before it recorded absolute roots: the recipe
    keeps data/mine and runs/r1 as typed in ``tmp_path``."""
    classes = list(SYNTHETIC_CLASSES)
    write_folder(tmp_path / "data" / "mine", classes, {"val": 2})
    val = {"name": "folder", "root": "data/mine", "split": "val"}
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    return _checkpoint(tmp_path / "runs" / "r1" / "best.pt", classes,
                       recipe={"name": "tiny", "out": "runs/r1", "data": {"val": val}})


def test_an_older_checkpoint_with_a_relative_root_evaluates_where_it_was_trained(
        tmp_path, monkeypatch) -> None:
    ckpt = _relative_root_checkpoint(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--checkpoint", "runs/r1/best.pt", "--out", "eval"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # found beside the run folder that holds it
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", "eval"]) == 0


def test_a_recipe_root_found_nowhere_is_one_line_naming_it_the_folder_and_the_option(
        tmp_path, monkeypatch, capsys) -> None:
    ckpt = _relative_root_checkpoint(tmp_path)
    moved = tmp_path / "moved" / "best.pt"
    moved.parent.mkdir()
    ckpt.rename(moved)
    monkeypatch.chdir(tmp_path / "moved")
    assert main(["evaluate", "--checkpoint", str(moved), "--out", "eval"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"fcnseg evaluate: error: root from {moved}'s recipe: data/mine is not in "
        f"{tmp_path / 'moved'}, the folder relative paths are taken from; pass "
        f"--data root=DIR with the dataset's folder")
    assert "writing to" not in captured.out and not (tmp_path / "moved" / "eval").exists()


@pytest.mark.parametrize("flags", [["--amp", "bf16", "--precision", "fp32"],
                                   ["--precision", "fp32", "--amp", "bf16"]])
def test_evaluate_refuses_amp_and_precision_that_disagree_in_one_line(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), *flags])
    assert e.value.code == 2
    *notes, error = capsys.readouterr().err.splitlines()  # --amp first: its note comes first
    assert error == ("fcnseg evaluate: error: --amp (read as bf16) contradicts --precision fp32 "
                     "(--amp is the older spelling of --precision; keep only --precision)")
    assert notes in ([], ["fcnseg evaluate: note: --amp is now spelled --precision"])


def test_a_refused_split_is_refused_before_an_output_folder_is_named(tmp_path, capsys):
    ckpt = _cityscapes_test_split(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text("{}")  # eval-2 would be next
    assert main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "cityscapes", "--root",
                 str(tmp_path / "cs"), "--split", "test"]) == 2
    assert capsys.readouterr().out == "" and not (tmp_path / "eval-2").exists()


def test_a_sigterm_while_the_checkpoint_loads_says_so_and_exits_by_it(
        synthetic_checkpoint, tmp_path, capsys, monkeypatch):
    import fcnseg.cli.evaluate as evaluate_cli

    def slow_loading(path):  # the signal comes while the checkpoint is read
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler acts before this returns
        raise AssertionError("the checkpoint was read in full")

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM not handled: the process would end silently")

    monkeypatch.setattr(evaluate_cli, "load_checkpoint", slow_loading)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset",
                   "synthetic", "--out", str(tmp_path / "eval")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (rc, capsys.readouterr().err.strip().splitlines()) == (128 + signal.SIGTERM, [
        "fcnseg evaluate: stopped by signal 15 before the scores were complete; nothing "
        "written; run the same command to evaluate"])
    assert not (tmp_path / "eval").exists()


def test_an_out_that_is_a_file_is_one_line_before_scoring(synthetic_checkpoint, tmp_path,
                                                         monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    import fcnseg.cli.evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "load_checkpoint", lambda *a, **k: pytest.fail("loaded"))
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "2", "--out", str(tmp_path / "notes.txt"), "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == (f"fcnseg evaluate: error: output folder {tmp_path / 'notes.txt'}: exists "
                   f"and is not a folder\n")


def test_a_default_out_that_cannot_be_a_folder_is_one_line_before_scoring(
        synthetic_checkpoint, tmp_path, monkeypatch, capsys):
    # the report goes beside the checkpoint, where a file (a read-only folder alike) stops it
    (synthetic_checkpoint.parent / "eval").write_text("a file, not a folder")
    import fcnseg.cli.evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "load_checkpoint", lambda *a, **k: pytest.fail("loaded"))
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "synthetic",
               "--num-images", "2", "--device", "cpu"])
    assert rc == 2
    assert capsys.readouterr().err == (f"fcnseg evaluate: error: output folder "
                                       f"{synthetic_checkpoint.parent / 'eval'}: exists and is "
                                       f"not a folder\n")


def test_a_bad_sample_says_to_fix_it_as_evaluation_skips_none(synthetic_checkpoint, tmp_path,
                                                              capsys):
    root = write_folder(tmp_path / "data", list(SYNTHETIC_CLASSES), {"val": 2})
    (root / "masks" / "val1.png").write_bytes(b"")
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset", "folder",
               "--root", str(root), "--split", "val", "--out", str(tmp_path / "eval")])
    assert rc == 2
    assert capsys.readouterr().err == (
        f"fcnseg evaluate: error: {root / 'masks' / 'val1.png'}: unreadable mask: an empty file "
        f"(0 bytes): nothing to read; evaluation scores every image of the split: fix or remove "
        f"it ('fcnseg check-data' lists every bad sample)\n")
