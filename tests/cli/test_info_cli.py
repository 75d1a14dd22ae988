"""``fcnseg info``: a short summary for people, the full record with --json."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.inference.calibration import save_with_temperature
from fcnseg.models import fcn8s

CLASSES = ["background", "cat", "dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16)
    path = tmp_path_factory.mktemp("info") / "model.pt"
    save_checkpoint(path, model, class_names=CLASSES, palette=voc_palette(),
                    recipe={"name": "synthetic-fcn8s"}, iteration=1200, epoch=3,
                    metrics={"mean_iu": 0.8123, "pixel_acc": 0.95, "iu": [0.9, 0.8, 0.7]})
    return path, sum(p.numel() for p in model.state_dict().values())


def test_summary_names_model_geometry_classes_convention_metrics_and_size(checkpoint,
                                                                           capsys) -> None:
    path, parameters = checkpoint
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert "fcn8s, geometry same" in lines["model"]
    # What model(x) takes: raw RGB pixels, which the model normalises itself.
    assert "N×3×H×W float32 RGB pixel values 0-255 (normalisation inside the model, per " \
           "caffe_bgr" in lines["input"]
    assert lines["classes"].strip() == "3: background, cat, dog; ignore value 255"
    assert "iteration 1200, epoch 3, recipe synthetic-fcn8s" in lines["trained"]
    # Percent, as every other command prints scores.
    assert "mean IU 81.23" in lines["metrics"] and "pixel acc 95.00" in lines["metrics"]
    assert f"{parameters / 1e6:.2f} M parameters" in lines["size"]
    assert len(out.splitlines()) <= 10, "a summary, not the whole record"


#: A ResNet checkpoint's record as ``fcnseg train`` writes it (recipe shortened).
RESNET_RECORD = {
    "kind": "checkpoint", "path": "runs/r1/best.pt", "file_bytes": 44_800_000,
    "parameters": 11_190_000, "iteration": 30, "epoch": 14, "metrics": {"mean_iu": 0.7724},
    "model": {"arch": "fcn8s_resnet18",
              "build_kwargs": {"num_classes": 3, "replace_stride_with_dilation": None,
                               "base_channels": 64},
              "input_convention": {"name": "torchvision_rgb", "channel_order": "RGB",
                                   "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                                   "std": [0.229, 0.224, 0.225]}},
    "classes": {"names": ["background", "disc", "square"], "ignore_index": 255},
    "recipe": {"name": "folder-cpu", "model": {"arch": "fcn8s_resnet18", "geometry": "caffe"},
               "data": {"train": {"name": "folder", "root": "mydata", "split": "train"},
                        "batch_size": 8, "crop_size": 64},
               "loss": {"name": "ce", "class_weights": "none"},
               "optim": {"name": "sgd", "lr": 0.01}, "schedule": {"name": "poly"},
               "train": {"iterations": 30}},
}


def test_a_checkpoint_of_a_0_1_convention_says_model_x_takes_pixels_0_255(capsys) -> None:
    from fcnseg.cli.info import summary

    lines = dict(line.split(":", 1) for line in summary(RESNET_RECORD).splitlines())
    assert "RGB pixel values 0-255 (normalisation inside the model, per torchvision_rgb" in \
        lines["input"]
    assert "0-1" not in lines["input"] and "over the std" not in lines["input"]


def test_summary_leaves_builder_internals_out(capsys) -> None:
    from fcnseg.cli.info import summary

    lines = dict(line.split(":", 1) for line in summary(RESNET_RECORD).splitlines())
    assert lines["model"].strip() == "fcn8s_resnet18"
    assert "None" not in summary(RESNET_RECORD)


def test_summary_shows_the_builder_arguments_a_recipe_changed(checkpoint, capsys) -> None:
    path, _ = checkpoint
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["model"].strip() == "fcn8s, geometry same, width 0.0625, fc_channels 16"


def test_summary_sums_up_the_training_recipe(capsys) -> None:
    from fcnseg.cli.info import summary

    lines = dict(line.split(":", 1) for line in summary(RESNET_RECORD).splitlines())
    assert lines["recipe"].strip() == ("folder mydata (split train); 30 iterations, batch 8, "
                                       "crop 64; sgd lr 0.01, poly schedule; loss ce")


def test_json_gives_the_full_record(checkpoint, capsys) -> None:
    path, parameters = checkpoint
    assert main(["info", "--checkpoint", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"]["arch"] == "fcn8s"
    assert record["classes"]["names"] == CLASSES and len(record["classes"]["palette"]) == 3
    assert record["metrics"]["iu"] == [0.9, 0.8, 0.7]
    assert record["recipe"] == {"name": "synthetic-fcn8s"}
    assert record["parameters"] == parameters and record["file_bytes"] == path.stat().st_size


def test_no_checkpoint_is_a_clear_error(capsys) -> None:
    assert main(["info"]) == 2
    assert "no checkpoint given" in capsys.readouterr().err


def test_a_stored_temperature_is_shown_and_recorded(checkpoint, tmp_path, capsys) -> None:
    path, _ = checkpoint
    calibrated = save_with_temperature(path, tmp_path / "calibrated.pt", 1.75)
    assert main(["info", str(calibrated)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "temperature 1.75" in lines["calibrated"]
    assert main(["info", str(calibrated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["temperature"] == 1.75


def test_an_uncalibrated_checkpoint_shows_no_temperature(checkpoint, capsys) -> None:
    path, _ = checkpoint
    assert main(["info", str(path)]) == 0
    assert "calibrated" not in capsys.readouterr().out


def test_a_converted_reference_model_shows_its_published_score_not_iteration_0(
        tmp_path, capsys) -> None:
    model = fcn8s(num_classes=3, width=0.0625, fc_channels=16)
    path = tmp_path / "fcn8s-voc.pt"
    save_checkpoint(path, model, class_names=CLASSES, palette=voc_palette(),
                    metrics={"published_mean_iu": 65.5},
                    recipe={"converted_from": "fcn8s-heavy-pascal.caffemodel",
                            "reference": "fcn8s-heavy-pascal"})
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "published mean IU 65.5" in lines["metrics"]
    assert "iteration" not in lines["trained"]
    assert "converted from fcn8s-heavy-pascal.caffemodel" in lines["trained"]


def test_a_model_saved_without_training_says_so(tmp_path, capsys) -> None:
    path = tmp_path / "plain.pt"
    save_checkpoint(path, fcn8s(num_classes=3, width=0.0625, fc_channels=16),
                    class_names=CLASSES, palette=voc_palette())
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["trained"].strip() == "no training recorded"


def test_the_backbone_file_convert_writes_is_described(tmp_path, capsys) -> None:
    from fcnseg.conventions import CAFFE_BGR
    from fcnseg.models.weights import save_backbone_weights, vgg16_torchvision_keys

    trunk = fcn8s(num_classes=3, width=0.0625, fc_channels=16).state_dict()
    sd = {file_key: trunk[key].flatten(1) if key in ("fc6.weight", "fc7.weight") else trunk[key]
          for key, file_key in vgg16_torchvision_keys().items()}
    path = save_backbone_weights(sd, tmp_path / "vgg16.pth", CAFFE_BGR)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not a checkpoint" not in out
    assert "VGG16 backbone weights" in out and "caffe_bgr" in out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "backbone"


def test_an_onnx_export_is_described(checkpoint, tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint[0]), "--format", "onnx",
                 "--out", str(path), "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not a checkpoint" not in out and "3: background, cat, dog" in out


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    """A tiny model of torchvision's convention (RGB 0-1, ImageNet mean and std), as the
    ResNet recipes train."""
    torch.manual_seed(0)
    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16,
                  input_convention="torchvision_rgb")
    path = tmp_path_factory.mktemp("info_tv") / "model.pt"
    return save_checkpoint(path, model, class_names=CLASSES, palette=voc_palette())


def _input_line(path, capsys) -> str:
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    return lines["input"].strip()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_taking_pixels_says_its_graph_takes_0_255_normalised_inside(
        fmt, torchvision_checkpoint, tmp_path, capsys) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "model.bin"
    assert main(["export", "--checkpoint", str(torchvision_checkpoint), "--format", fmt,
                 "--out", str(out), "--height", "32", "--width", "32"]) == 0
    line = _input_line(out, capsys)
    assert line == ("N×3×H×W float32 RGB pixel values 0-255 (normalisation inside the graph, "
                    "per torchvision_rgb: do not normalise them)")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_of_the_bare_network_states_the_normalisation_the_caller_applies(
        fmt, torchvision_checkpoint, tmp_path, capsys) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "bare.bin"
    assert main(["export", "--checkpoint", str(torchvision_checkpoint), "--format", fmt,
                 "--out", str(out), "--height", "32", "--width", "32",
                 "--input", "normalized"]) == 0
    line = _input_line(out, capsys)
    assert line == ("N×3×H×W float32 normalised by the caller: RGB pixel values 0-255, "
                    "divided by 255, minus the mean (0.485, 0.456, 0.406), over the std "
                    "(0.229, 0.224, 0.225)")


def test_a_run_folders_other_files_are_described(tmp_path, capsys) -> None:
    (tmp_path / "metrics.jsonl").write_text(
        '{"iteration": 10, "epoch": 1, "loss": 0.5, "lr": 0.01, "images_per_s": 3.0}\n'
        '{"iteration": 10, "epoch": 1, "split": "val", "mean_iu": 0.8804}\n')
    (tmp_path / "report.json").write_text(json.dumps({
        "metrics": {"mean_iu": 0.8804, "pixel_acc": 0.95}, "per_class": [],
        "num_images": 5, "checkpoint": {"path": "runs/demo/best.pt"},
        "dataset": {"name": "synthetic"}, "precision": "fp32"}))
    (tmp_path / "recipe.yaml").write_text("name: mine\nmodel: {arch: fcn8s}\n"
                                          "data: {train: {name: folder}}\n")
    assert main(["info", str(tmp_path / "metrics.jsonl")]) == 0
    assert "training log" in (out := capsys.readouterr().out) and "88.04" in out
    assert main(["info", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "evaluation report of runs/demo/best.pt on synthetic" in out and "88.04" in out
    assert main(["info", str(tmp_path / "recipe.yaml")]) == 0
    assert "training recipe mine: fcn8s on folder" in capsys.readouterr().out


def test_a_predicted_label_png_is_described_not_called_corrupt(tmp_path, capsys) -> None:
    import numpy as np

    from fcnseg.inference.visualize import save_label_png

    label = np.zeros((6, 8), np.uint8)
    label[:, 6:] = 3
    save_label_png(tmp_path / "scene_label.png", label, voc_palette())
    assert main(["info", str(tmp_path / "scene_label.png")]) == 0
    out = capsys.readouterr().out
    assert "label map" in out and "8×6" in out
    assert "2: 0 (75.0%), 3 (25.0%)" in out


@pytest.mark.parametrize("after_magic", [b"\n", b"\r\n", b"\t"])
def test_a_netpbm_image_is_described_whatever_whitespace_follows_its_magic(
        after_magic, tmp_path, capsys) -> None:
    path = tmp_path / "mask.pgm"  # as written on Windows (CR LF) or by hand (a tab)
    path.write_bytes(b"P5" + after_magic + b"3 2\n255\n" + bytes([0, 0, 1, 0, 1, 1]))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PPM image, 3×2" in out and "2: 0 (50.0%), 1 (50.0%)" in out


def test_a_csv_table_is_described_by_its_rows(tmp_path, capsys) -> None:
    (tmp_path / "ranking.csv").write_text("rank,name,mean_entropy\n1,img05,1.1\n2,img07,1.0\n")
    assert main(["info", str(tmp_path / "ranking.csv")]) == 0
    assert "CSV table, 2 rows; columns: rank, name, mean_entropy" in capsys.readouterr().out


def test_a_georeferenced_tiff_is_described_with_bands_and_crs(tmp_path, capsys) -> None:
    import numpy as np

    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    path = tmp_path / "out.tif"
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4e6, 10, 10)) as ds:
        ds.write(np.array([[0, 0, 1, 1, 2]] * 4, np.uint8), 1)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "raster, 5×4, 1 band(s) of uint8" in out and "EPSG:32633" in out
    assert "3: 0 (40.0%), 1 (40.0%), 2 (20.0%)" in out


def test_a_float_raster_with_nan_nodata_is_described_and_its_json_is_valid(tmp_path,
                                                                          capsys) -> None:
    import numpy as np

    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    path = tmp_path / "scene_uncertainty.tif"  # as fcnseg predict --uncertainty writes it
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=1, dtype="float32",
                       nodata=float("nan"), crs="EPSG:32633",
                       transform=Affine(10, 0, 500000, 0, -10, 4e6)) as ds:
        ds.write(np.full((4, 5), 0.5, np.float32), 1)
    assert main(["info", str(path)]) == 0
    assert "nodata:      nan" in capsys.readouterr().out
    assert main(["info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out, parse_constant=pytest.fail)["nodata"] == "nan"


def test_a_labelme_file_fcnseg_wrote_is_described(tmp_path, capsys) -> None:
    import numpy as np

    from fcnseg.data.annotations.export import labelme_document

    label = np.zeros((16, 16), np.uint8)
    label[2:8, 2:8] = 1
    label[10:14, 9:15] = 2
    document = labelme_document(label, CLASSES, "img07.jpg")
    (tmp_path / "img07.json").write_text(json.dumps(document))
    assert main(["info", str(tmp_path / "img07.json")]) == 0
    out = capsys.readouterr().out
    assert "labelme annotations: 1 image(s), 2 shape(s)" in out and "cat ×1" in out


def test_a_file_of_another_kind_is_not_called_corrupt(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["info", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "not a file fcnseg info describes" in err and "corrupt" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_damaged_checkpoint_is_still_called_so(checkpoint, tmp_path, capsys) -> None:
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint[0].read_bytes()[:2000])
    assert main(["info", str(damaged)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_a_multi_band_model_is_described_by_its_bands_not_as_rgb(tmp_path, capsys) -> None:
    from fcnseg.conventions import band_convention
    from fcnseg.models import build_model

    convention = band_convention(["red", "green", "blue", "nir", "swir1"], [8000.0] * 5,
                                 [300.0] * 5)
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    path = save_checkpoint(tmp_path / "bands.pt", model, class_names=CLASSES, palette=voc_palette())
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "RGB" not in lines["input"] and "0-255" not in lines["input"]
    assert "5 bands (red, green, blue, nir, swir1): raw values, N×5×H×W float32, each band " \
           "minus its mean, over its std inside the model" in lines["input"]


def test_a_bare_multi_band_export_states_each_bands_mean_and_std(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    from fcnseg.conventions import band_convention
    from fcnseg.models import build_model

    convention = band_convention(["red", "nir"], [8000.0, 7000.0], [300.0, 250.0])
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    path = save_checkpoint(tmp_path / "bands.pt", model, class_names=CLASSES)
    out = tmp_path / "bare.onnx"
    assert main(["export", "--checkpoint", str(path), "--format", "onnx", "--out", str(out),
                 "--height", "32", "--width", "32", "--input", "normalized"]) == 0
    assert _input_line(out, capsys) == (
        "2 bands (red, nir): N×2×H×W float32 normalised by the caller: the raw values of the "
        "bands red, nir, in that order, each minus the mean (8000, 7000), over the std (300, "
        "250)")


def _nodata_band_checkpoint(tmp_path):
    from fcnseg.conventions import band_convention
    from fcnseg.models import build_model

    convention = band_convention(["red", "nir"], [8000.0, 7000.0], [300.0, 250.0], nodata=0)
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    return save_checkpoint(tmp_path / "bands.pt", model, class_names=CLASSES)


def test_info_says_a_band_model_takes_its_nodata_pixels_for_the_band_means(tmp_path,
                                                                          capsys) -> None:
    assert main(["info", str(_nodata_band_checkpoint(tmp_path))]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["input"].endswith(
        "; nodata 0: pixels whose every band is 0, or any band NaN, are taken for the band "
        "means inside the model (do not fill them)")


@pytest.mark.parametrize(("input_kind", "said"), [
    ("pixels", "are taken for the band means inside the graph (do not fill them)"),
    ("normalized", "; nodata 0: set pixels whose every band is 0, or any band NaN, to 0 after "
                   "normalising")])
def test_info_says_what_becomes_of_an_exports_nodata_pixels(tmp_path, capsys, input_kind,
                                                            said) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bands.onnx"
    assert main(["export", "--checkpoint", str(_nodata_band_checkpoint(tmp_path)), "--format",
                 "onnx", "--out", str(out), "--height", "32", "--width", "32", "--input",
                 input_kind]) == 0
    assert _input_line(out, capsys).endswith(said)


def test_a_one_band_model_is_one_band_not_one_bands(tmp_path, capsys) -> None:
    from fcnseg.conventions import band_convention
    from fcnseg.models import build_model

    convention = band_convention(["intensity"], [250.0], [330.0], sample_types=["uint16"])
    model = build_model("fcn8s", num_classes=3, width=0.0625, fc_channels=16, geometry="same",
                        input_convention=convention)
    path = save_checkpoint(tmp_path / "grey.pt", model, class_names=CLASSES)
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["input"].strip().startswith("1 band (intensity): raw values")
    assert lines["input"].endswith("; trained on uint16 images")  # what predict takes


def test_a_label_studio_export_is_described_with_its_labels(tmp_path, capsys) -> None:
    def result(kind: str, label: str) -> dict:
        return {"type": kind, "from_name": "label", "to_name": "image",
                "original_width": 40, "original_height": 30,
                "value": {"points": [[0, 0], [50, 0], [50, 50]], kind: [label]}}

    tasks = [{"id": 1, "data": {"image": "/data/upload/1/1a2b3c4d-a.jpg"},
              "annotations": [{"id": 1, "result": [result("polygonlabels", "dog"),
                                                   result("rectanglelabels", "car")]}]},
             {"id": 2, "data": {"image": "/data/upload/1/5e6f7a8b-b.jpg"},
              "annotations": [{"id": 2, "result": [result("polygonlabels", "dog")]}]}]
    path = tmp_path / "project-1-at-2024-05-01-10-00-abcdef12.json"
    path.write_text(json.dumps(tasks))
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "Label Studio annotations: 2 image(s), 3 shape(s)" in lines["contents"]
    assert lines["labels"].strip() == "dog ×2, car ×1"


def test_label_studio_tasks_holding_predictions_count_them_as_predicted(tmp_path,
                                                                        capsys) -> None:
    # What fcnseg predict --format labelstudio writes: predictions, no annotations.
    def prediction(*labels: str) -> list[dict]:
        return [{"model_version": "fcnseg", "result": [
            {"type": "polygonlabels", "from_name": "label", "to_name": "image",
             "original_width": 40, "original_height": 30,
             "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": [label]}}
            for label in labels]}]

    tasks = [{"data": {"image": "/data/local-files/?d=a.jpg"},
              "predictions": prediction("disc", "box")},
             {"data": {"image": "/data/local-files/?d=b.jpg"}, "predictions": prediction("disc")}]
    path = tmp_path / "tasks.labelstudio.json"
    path.write_text(json.dumps(tasks))
    assert main(["info", str(path)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["contents"].strip() == ("Label Studio annotations: 2 image(s), 0 shape(s), "
                                         "3 predicted shape(s)")
    assert lines["labels"].strip() == "predicted: disc ×2, box ×1"


def test_invalid_json_names_the_file_and_the_error(tmp_path, capsys) -> None:
    (tmp_path / "broken.json").write_text('{"shapes": [')
    assert main(["info", str(tmp_path / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'broken.json'}: not valid JSON (" in err
    assert len(err.strip().splitlines()) == 1


def test_a_coco_file_is_described_with_its_categories(tmp_path, capsys) -> None:
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": [{"id": 1}], "annotations": [{"id": 1}, {"id": 2}],
        "categories": [{"name": "cat"}, {"name": "dog"}]}))
    assert main(["info", str(tmp_path / "instances.json")]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "COCO annotations: 1 image(s), 2 shape(s)" in lines["contents"]
    assert lines["labels"].strip() == "cat, dog"


def test_predicted_probabilities_npz_are_described_not_called_corrupt(tmp_path, capsys) -> None:
    import numpy as np

    path = tmp_path / "p1_probs.npz"
    np.savez_compressed(path, probs=np.zeros((3, 4, 5), np.float32),
                        label=np.zeros((4, 5), np.uint8), class_names=np.array(CLASSES))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "probs 3x4x5 float32; label 4x5 uint8" in out
    assert "3: background, cat, dog" in out and "corrupt" not in out


def test_a_raster_resume_record_says_which_raster_how_far_and_model(tmp_path, capsys) -> None:
    import numpy as np
    import tifffile

    scene = tmp_path / "scene.tif"
    tifffile.imwrite(scene, np.zeros((600, 8, 3), np.uint8))
    path = tmp_path / "out.tif.partial.json"
    path.write_text(json.dumps({"job": {"input": str(scene), "model": "mb.pt",
                                        "classes": ["other", "water"], "settings": {}},
                                "rows_done": 512, "complete": False}))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"raster prediction of {scene}" in out and "512 of 600 rows written" in out
    assert "mb.pt, classes other, water" in out


def test_a_resume_record_naming_the_checkpoint_path_is_said_to_start_again(tmp_path,
                                                                          capsys) -> None:
    """fcnseg predict before digests of the weights recorded the checkpoint's path, which
    today's predict does not resume from."""
    path = tmp_path / "scene.tif.partial.json"
    path.write_text(json.dumps({"job": {"input": "/data/scene.tif", "model": "runs/x/best.pt",
                                        "classes": ["other"], "settings": {}},
                                "rows_done": 144, "complete": False}))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "progress:    144 rows written; recorded by an earlier fcnseg by the checkpoint's " \
           "path, so the same command predicts it again from the start" in out


def test_a_raster_resume_record_names_the_checkpoint_not_its_digest(tmp_path, capsys) -> None:
    path = tmp_path / "scene.tif.partial.json"
    path.write_text(json.dumps({"job": {"input": "/data/scene.tif", "model": "sha256=0123",
                                        "classes": ["other"], "settings": {}},
                                "rows_done": 512, "complete": True, "model_name": "mb.pt"}))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mb.pt, classes other" in out and "sha256" not in out


def test_a_finished_raster_record_says_the_prediction_is_finished(tmp_path, capsys) -> None:
    path = tmp_path / "scene.tif.done.json"
    path.write_text(json.dumps({"job": {"input": "/data/scene.tif", "model": "sha256=0123",
                                        "classes": ["other"], "settings": {}},
                                "rows_done": 600, "complete": True, "model_name": "mb.pt"}))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "record of a finished tiled raster prediction of /data/scene.tif" in out
    assert "progress:    finished" in out


def test_an_imported_dataset_yaml_lists_classes_bands_and_splits(tmp_path, capsys) -> None:
    (tmp_path / "dataset.yaml").write_text("classes: [other, water]\nignore_index: 255\n"
                                           "bands: [red, nir]\nnodata: 0\n")
    (tmp_path / "train.txt").write_text("a\n")
    assert main(["info", str(tmp_path / "dataset.yaml")]) == 0
    out = capsys.readouterr().out
    assert "2: other, water; ignore value 255" in out
    assert "red, nir; nodata 0" in out and "train (train.txt)" in out


def test_a_dataset_folder_is_described_by_its_dataset_yaml(tmp_path, capsys) -> None:
    (tmp_path / "dataset.yaml").write_text("classes: [background, road]\n")
    (tmp_path / "train.txt").write_text("a\n")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"file:        {tmp_path / 'dataset.yaml'}\n" in out
    assert "2: background, road; ignore value 255" in out


def test_a_dataset_yaml_without_an_ignore_value_says_the_default_it_takes(tmp_path,
                                                                         capsys) -> None:
    (tmp_path / "dataset.yaml").write_text("classes: [background, road, car]\n")
    assert main(["info", str(tmp_path / "dataset.yaml")]) == 0
    assert "3: background, road, car; ignore value 255\n" in capsys.readouterr().out


def test_an_imported_dataset_yaml_does_not_take_unannotated_txt_for_a_split(tmp_path,
                                                                            capsys) -> None:
    (tmp_path / "dataset.yaml").write_text("classes: [other, cell]\n")
    for name in ("train", "val"):
        (tmp_path / f"{name}.txt").write_text("a\n")
    (tmp_path / "unannotated.txt").write_text(f"{tmp_path / 'pictures' / 'b.tif'}\n")
    assert main(["info", str(tmp_path / "dataset.yaml")]) == 0
    assert "splits:      train (train.txt), val (val.txt)\n" in capsys.readouterr().out


def test_a_bench_report_names_the_machine_and_the_fastest_inference(tmp_path, capsys) -> None:
    row = {"device": "cpu", "model": "fcn8s", "size": [64, 64], "batch": 1,
           "dtype": "float32"}
    (tmp_path / "bench.json").write_text(json.dumps({
        "config": {}, "machine": {"cpu": "AMD EPYC", "threads": 2, "torch": "2.13.0"},
        "inference": [{**row, "images_per_s": 8.0}, {**row, "images_per_s": 19.5}],
        "training": [], "targets": [{"target": "t", "met": True}]}))
    assert main(["info", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "machine AMD EPYC, 2 threads" in out and "fcn8s on cpu: 19.5 images/s" in out
    assert "targets met 1 of 1" in out


def test_predicts_output_manifest_says_how_many_outputs(tmp_path, capsys) -> None:
    (tmp_path / ".fcnseg-outputs.txt").write_text("a_label.png\na_overlay.png\n")
    assert main(["info", str(tmp_path / ".fcnseg-outputs.txt")]) == 0
    assert "2 files" in capsys.readouterr().out


def test_predicts_output_manifest_says_how_many_outputs_have_a_record_of_their_model(
        tmp_path, capsys) -> None:
    (tmp_path / ".fcnseg-outputs.txt").write_text(
        "a_label.png\na_overlay.png\nb_label.png\n\twritten\tsha256=ab\ta_label.png\ta_overlay.png\n")
    assert main(["info", str(tmp_path / ".fcnseg-outputs.txt")]) == 0
    out = capsys.readouterr().out
    assert "3 files" in out and "2 of them recorded as written whole by 1 model" in out


def test_a_tensorboard_event_file_says_how_to_view_it(tmp_path, capsys) -> None:
    path = tmp_path / "events.out.tfevents.1.host.1.0"
    event = b"\x2a\x02junk"  # field 5 (summary), 2 bytes long: a summary's place
    path.write_bytes(len(event).to_bytes(8, "little") + b"\x00" * 4 + event + b"\x00" * 4)
    assert main(["info", str(path)]) == 0
    assert f"tensorboard --logdir {tmp_path}" in capsys.readouterr().out


def test_a_field_a_file_does_not_record_reads_not_recorded(capsys) -> None:
    from fcnseg.cli.info import summary

    onnx = {"kind": "onnx", "path": "m.onnx", "file_bytes": 10, "metadata": {"arch": "fcn8s"}}
    assert "input:       not recorded" in summary(onnx).splitlines()
    report = {"kind": "evaluation_report", "path": "report.json", "file_bytes": 10,
              "checkpoint": "best.pt", "dataset": "voc", "num_images": 3, "precision": None,
              "metrics": {}}
    assert "precision not recorded" in summary(report) and "-" not in summary(report)


def test_info_says_a_bench_report_stopped_early_is_partial(tmp_path, capsys) -> None:
    (tmp_path / "bench.json").write_text(json.dumps({
        "config": {}, "machine": {"cpu": "AMD EPYC", "threads": 2, "torch": "2.13.0"},
        "inference": [], "complete": False, "stopped_by_signal": 15,
        "finished_sections": ["cpu inference"]}))
    assert main(["info", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "partial" in out and "signal 15" in out and "cpu inference" in out


def test_info_quotes_the_default_geometry_row_of_a_bench_report_and_names_it(
        tmp_path, capsys) -> None:
    row = {"device": "cpu", "model": "fcn8s", "size": [128, 128], "batch": 1,
           "dtype": "float32"}
    (tmp_path / "bench.json").write_text(json.dumps({
        "config": {}, "machine": {"cpu": "AMD EPYC", "threads": 2, "torch": "2.13.0"},
        "inference": [{**row, "geometry": "caffe", "images_per_s": 0.89},
                      {**row, "geometry": "same", "images_per_s": 2.86}]}))
    assert main(["info", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    assert "fcn8s on cpu: 0.89 images/s (caffe geometry, 128x128, batch 1, float32)" in out


def test_a_budget_run_shows_the_iterations_the_budget_chose_and_ema_weights(capsys) -> None:
    from fcnseg.cli.info import summary

    recipe = {**RESNET_RECORD["recipe"],
              "train": {"iterations": 300, "time_budget": "60s", "ema": 0.99}}
    rec = {**RESNET_RECORD, "iteration": 6, "recipe": recipe, "planned_iterations": 6}
    lines = dict(line.split(":", 1) for line in summary(rec).splitlines())
    assert "6 iterations (chosen by a 1m00s time budget; at most 300), batch 8" in lines["recipe"]
    assert "weights: the EMA average of the trained ones (train.ema 0.99)" in lines["trained"]


def test_a_run_folder_is_answered_with_its_checkpoint_first(tmp_path, capsys) -> None:
    (tmp_path / "last.pt").write_bytes(b"")
    assert main(["info", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.index(f"pass its checkpoint {tmp_path / 'last.pt'}") < err.index("pretrained")


def test_an_event_file_with_only_its_header_says_it_holds_no_records(tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    SummaryWriter(str(tmp_path), purge_step=1).close()  # as a failed start leaves it
    (path,) = tmp_path.glob("events.out.tfevents.*")
    assert main(["info", str(path)]) == 0
    assert "holds no records" in capsys.readouterr().out


def test_a_raster_with_a_geotransform_but_no_crs_is_said_to_have_one_and_not_the_other(
        tmp_path, capsys) -> None:
    import numpy as np

    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    path = tmp_path / "grid.tif"
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=1, dtype="uint8",
                       transform=Affine(10, 0, 500000, 0, -10, 4e6)) as ds:
        ds.write(np.zeros((4, 5), np.uint8), 1)
    assert main(["info", str(path)]) == 0
    georef = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("georef:"))
    assert "geotransform present, CRS missing" in georef and "none" not in georef
    assert "origin (500000, 4000000), pixel 10 × -10" in georef
    assert main(["info", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["crs"] is None and record["transform"] == [10, 0, 500000, 0, -10, 4e6]


def test_a_plain_raster_is_said_to_have_neither_crs_nor_geotransform(tmp_path, capsys) -> None:
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 5, 3), np.uint8), photometric="rgb")
    assert main(["info", str(tmp_path / "plain.tif")]) == 0
    assert "georef:      none (no CRS, no geotransform)" in capsys.readouterr().out


def test_a_16_bit_label_raster_lists_its_values_and_shares(tmp_path, capsys) -> None:
    import json

    import numpy as np
    import tifffile

    label = np.repeat(np.array([0, 7, 300, 65535], np.uint16), 25).reshape(10, 10)
    tifffile.imwrite(tmp_path / "label.tif", label)
    assert main(["info", str(tmp_path / "label.tif")]) == 0
    assert "values:      4: 0 (25.0%), 7 (25.0%), 300 (25.0%), 65535 (25.0%) (class indices" \
        in capsys.readouterr().out
    assert main(["info", "--json", str(tmp_path / "label.tif")]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["values"] == [0, 7, 300, 65535] and rec["shares"] == [0.25] * 4


def test_a_16_bit_intensity_image_gets_value_statistics_not_a_class_histogram(
        tmp_path, capsys) -> None:
    import json

    import numpy as np
    import tifffile

    cells = (100 + np.arange(64 * 64) % 600).reshape(64, 64).astype(np.uint16)  # 600 values
    tifffile.imwrite(tmp_path / "cells.tif", cells)
    assert main(["info", str(tmp_path / "cells.tif")]) == 0
    out = capsys.readouterr().out
    assert "values:      600 distinct values: intensities, not a label map of classes" in out
    assert "ignore value" not in out and "class indices" not in out
    header, row = (line.split() for line in out.splitlines()
                   if line.lstrip().startswith(("band ", "value ")))
    assert header == ["band", "min", "max", "mean", "std", "p2", "p98"]
    assert row[:3] == ["value", "100", "699"]
    assert float(row[3]) == pytest.approx(cells.mean(), rel=1e-6)
    assert main(["info", "--json", str(tmp_path / "cells.tif")]) == 0
    stats = json.loads(capsys.readouterr().out)["statistics"]
    assert (stats["low"], stats["high"]) == ([100.0], [699.0])


def test_a_32_bit_label_rasters_values_are_listed_exactly(tmp_path, capsys) -> None:
    import json

    import numpy as np
    import tifffile

    values = [0, 2**24, 2**24 + 1, 2**32 - 1]  # float32 would merge 2**24 and 2**24 + 1
    tifffile.imwrite(tmp_path / "ids.tif", np.repeat(np.array(values, np.uint32), 5)
                     .reshape(4, 5))
    assert main(["info", "--json", str(tmp_path / "ids.tif")]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["values"] == values and rec["shares"] == [0.25] * 4


def test_a_label_raster_over_64_megapixels_lists_its_shares_read_by_strips(
        tmp_path, capsys, monkeypatch) -> None:
    import json

    import numpy as np
    import rasterio

    from fcnseg.cli import info_files

    height, width = 8200, 8000  # 65.6 million pixels
    path = tmp_path / "scene_labels.tif"
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=1,
                       dtype="uint8", tiled=True, compress="deflate", crs="EPSG:32633",
                       transform=rasterio.Affine(3, 0, 600000, 0, -3, 4700000)) as ds:
        label = np.zeros((height, width), np.uint8)
        label[:2050] = 3  # a quarter
        label[-820:, :4000] = 255  # nodata: 5%
        ds.write(label, 1)
    del label
    reads = []
    monkeypatch.setattr(info_files, "open_raster", lambda *a, **k: _Counting(reads, *a, **k))
    assert main(["info", "--json", str(path)]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["values"] == [0, 3, 255] and rec["shares"] == [0.7, 0.25, 0.05]
    assert sum(reads) == height * width
    assert max(reads) <= info_files._VALUES_ROWS_PIXELS  # by strips, never the whole raster


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_a_raster_of_too_many_values_to_list_says_more_than_the_count_it_stopped_at(
        tmp_path, capsys, monkeypatch, dtype) -> None:
    import json

    import numpy as np
    import tifffile

    from fcnseg.cli import info_files

    monkeypatch.setattr(info_files, "_VALUES_ROWS_PIXELS", 1000)  # read 10 rows at a time
    values = np.random.default_rng(2).permutation(200 * 100).reshape(200, 100).astype(dtype)
    tifffile.imwrite(tmp_path / "dem.tif", values)
    reads = []
    monkeypatch.setattr(info_files, "open_raster", lambda *a, **k: _Counting(reads, *a, **k))
    assert main(["info", str(tmp_path / "dem.tif")]) == 0
    limit = info_files.MAX_LISTED_VALUES
    assert f"values:      more than {limit} distinct values" in capsys.readouterr().out
    # Counting stopped at the strip that passed the limit (every value distinct); the
    # statistics of these intensities then read the whole raster by strips.
    counted = next(k for k in range(len(reads)) if sum(reads[:k + 1]) > limit) + 1
    assert sum(reads[:counted]) < values.size and sum(reads[counted:]) == values.size
    assert main(["info", "--json", str(tmp_path / "dem.tif")]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["more_values_than"] == limit and "values" not in rec


class _Counting:
    """A raster reader that counts the pixels read (into ``reads``)."""

    def __init__(self, reads, *args, **kwargs) -> None:
        from fcnseg.data.rasters import open_raster

        self._reader, self._reads = open_raster(*args, **kwargs), reads
        self.info = self._reader.info

    def read(self, row, col, height, width):
        self._reads.append(height * width)
        return self._reader.read(row, col, height, width)

    def block_shape(self):
        return self._reader.block_shape()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._reader.close()


def test_a_tiled_label_rasters_values_are_counted_by_strips_of_whole_block_rows(
        tmp_path, capsys, monkeypatch) -> None:
    """Each block decoded once: strips of 300 rows cut 512-row tiles, each then decoded by
    two strips (up to four with the default strips), or held in GDAL's cache."""
    import json

    import numpy as np
    import rasterio

    from fcnseg.cli import info_files

    height, width, block = 1100, 3000, 512
    monkeypatch.setattr(info_files, "_VALUES_ROWS_PIXELS", 300 * width)  # 300 rows
    path = tmp_path / "labels.tif"
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=1,
                       dtype="uint16", tiled=True, blockxsize=block, blockysize=block,
                       compress="deflate") as ds:
        label = np.zeros((height, width), np.uint16)
        label[:550] = 7
        ds.write(label, 1)
    windows = []

    class Recording(_Counting):
        def read(self, row, col, height, width):
            windows.append((row, height))
            return super().read(row, col, height, width)

    monkeypatch.setattr(info_files, "open_raster", lambda *a, **k: Recording([], *a, **k))
    assert main(["info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["shares"] == [0.5, 0.5]
    assert windows == [(0, 512), (512, 512), (1024, 76)]  # each block row read once


def test_a_checkpoint_whose_unpickling_imports_a_missing_module_is_one_line(
        checkpoint, capsys, monkeypatch) -> None:
    from fcnseg.utils import safe_load

    def importing(*_args, **_kwargs):
        raise ModuleNotFoundError("No module named 'evil'")

    monkeypatch.setattr(safe_load.torch, "load", importing)
    path, _ = checkpoint
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fcnseg info: error: {path}: cannot be read as a checkpoint "
                   f"(ModuleNotFoundError); the file may be truncated or corrupt, or hold "
                   f"objects that are not loaded for safety")


def test_a_csv_table_whose_first_column_is_named_like_a_netpbm_magic_is_a_table(
        tmp_path, capsys) -> None:
    (tmp_path / "plots.csv").write_text("P1,P2,label\n0.2,0.8,1\n")
    assert main(["info", str(tmp_path / "plots.csv")]) == 0
    assert "CSV table, 1 rows; columns: P1, P2, label" in capsys.readouterr().out


def test_the_json_of_an_onnx_export_says_what_the_file_is_without_training_fields(
        checkpoint, tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint[0]), "--format", "onnx",
                 "--out", str(path), "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert main(["info", "--json", str(checkpoint[0])]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert main(["info", "--json", str(path)]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["kind"] == "onnx" and rec["precision"] == "fp32"
    onnx = pytest.importorskip("onnx")
    weights = sum(math.prod(t.dims) for t in onnx.load(str(path)).graph.initializer)
    assert rec["parameters"] == weights  # the graph's weights (buffers folded or dropped)
    assert 0.95 * trained["parameters"] < weights <= trained["parameters"]
    assert not {"iteration", "epoch", "planned_iterations"} & set(rec)
    assert main(["info", str(path)]) == 0
    assert f"{weights / 1e6:.2f} M parameters" in capsys.readouterr().out


def test_an_empty_file_is_said_to_be_empty(tmp_path, capsys) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"")
    assert main(["info", str(tmp_path / "photo.jpg")]) == 2
    assert capsys.readouterr().err == (f"fcnseg info: error: {tmp_path / 'photo.jpg'}: an empty "
                                       f"file (0 bytes): nothing to describe\n")


def _predicted_folder(tiny_checkpoint, tmp_path):
    """Two pictures predicted (with --counts) and one that could not be read."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (24, 16), (40, 90, 160)).save(images / f"{name}.png")
    (images / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")
    out = tmp_path / "preds"
    main(["predict", "--checkpoint", str(tiny_checkpoint(CLASSES)), str(images), "--out",
          str(out), "--counts", str(out / "counts.csv"), "--no-progress", "--device", "cpu"])
    return out


def test_a_predict_output_folder_is_described_by_what_predict_left(tiny_checkpoint, tmp_path,
                                                                    capsys) -> None:
    out = _predicted_folder(tiny_checkpoint, tmp_path)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"file:        {out}"
    assert "fcnseg predict's output folder: 2 label PNG(s)" in lines[1]
    assert "failed:      1 image(s) in failed.txt (tried again with --skip-complete)" in lines
    assert "counts:      counts.csv: 2 row(s)" in lines


def test_a_predict_output_folder_lists_its_stopped_rasters_in_json(tiny_checkpoint, tmp_path,
                                                                   capsys) -> None:
    out = _predicted_folder(tiny_checkpoint, tmp_path)
    (out / "scene.tif.partial.json").write_text('{"job": {}, "rows_done": 16}')
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert (rec["kind"], rec["label_pngs"], rec["failed"]) == ("predict_output", 2, 1)
    assert rec["stopped_rasters"] == ["scene.tif"] and rec["counts"] == {"counts.csv": 2}


def _predicted_raster(tiny_checkpoint, tmp_path, capsys) -> dict:
    """``fcnseg info --json`` of the folder predict wrote one GeoTIFF's outputs into."""
    import numpy as np
    import tifffile
    from geotags import GEOTIFF_TAGS

    tifffile.imwrite(tmp_path / "scene.tif", np.full((16, 24, 3), 120, np.uint8),
                     extratags=GEOTIFF_TAGS)
    out = tmp_path / "preds"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint(CLASSES)),
                 str(tmp_path / "scene.tif"), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_folder_predict_wrote_rasters_alone_into_is_described_by_them(tiny_checkpoint,
                                                                        tmp_path, capsys):
    rec = _predicted_raster(tiny_checkpoint, tmp_path, capsys)
    assert (rec["kind"], rec["finished_rasters"], rec["label_pngs"]) == ("predict_output", 1, 0)


def test_the_size_of_a_predict_folder_counts_its_label_geotiffs(tiny_checkpoint, tmp_path,
                                                                capsys):
    rec = _predicted_raster(tiny_checkpoint, tmp_path, capsys)
    assert rec["file_bytes"] >= (tmp_path / "preds" / "scene.tif").stat().st_size > 0
