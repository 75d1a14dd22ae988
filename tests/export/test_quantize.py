"""``fcnseg quantize``: int8 ONNX calibrated on images, the accuracy gate, and its errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ondisk import write_folder
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data.synthetic import SyntheticSegmentation
from fcnseg.export import read_onnx_metadata

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

CALIB = "synthetic:num_images=6,size=48,split=train"
VAL = "synthetic:num_images=3,size=48,seed=1"


@pytest.fixture(scope="module")
def synthetic_checkpoint(tiny_checkpoint) -> Path:
    """A tiny FCN-8s with the synthetic dataset's seven classes."""
    return tiny_checkpoint(list(SyntheticSegmentation.classes), "same")


@pytest.fixture(scope="module")
def int8_model(synthetic_checkpoint, tmp_path_factory) -> Path:
    """The tiny model quantized with a validation set (every layer int8, full-range weights
    whatever this CPU)."""
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val", VAL,
                 "--out", str(out), "--keep-float", "none", "--max-drop", "100",
                 "--no-reduce-range"]) == 0
    return out


def test_quantized_model_has_int8_weights_and_records_the_gate(int8_model) -> None:
    proto = onnx.load(str(int8_model))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 15  # every convolution of the FCN-8s
    meta = read_onnx_metadata(int8_model)
    quant = meta["quantization"]
    assert quant["engine"] == "onnxruntime" and quant["calibration_images"] == 6
    assert quant["keep_float"] == []
    val = quant["validation"]
    assert val["images"] == 3 and 0.0 <= val["pixel_agreement"] <= 1.0
    assert len(val["float_iu"]) == len(val["int8_iu"]) == 7
    assert meta["input_pixels"] == "rgb_0_255"
    assert meta["class_names"] == list(SyntheticSegmentation.classes)


def test_quantize_prints_mean_iu_per_class_deltas_and_agreement(synthetic_checkpoint, tmp_path,
                                                               capsys) -> None:
    out = tmp_path / "m.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val", VAL,
                 "--out", str(out), "--keep-float", "sensitive", "--max-drop", "100",
                 "--calib-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "mean IU: float" in printed and "pixel agreement" in printed
    assert "calibrating activation ranges on 2 images" in printed
    for name in SyntheticSegmentation.classes:
        assert any(line.startswith(name) for line in printed.splitlines())
    kept = read_onnx_metadata(out)["quantization"]["keep_float"]
    assert len(kept) == 7  # conv1_1, three score layers, three upsampling deconvolutions


def test_gate_refuses_a_drop_beyond_max_drop_and_force_writes(synthetic_checkpoint, tmp_path,
                                                             capsys) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    # A negative --max-drop asks int8 to beat float by that much: it cannot, so it is refused.
    args = ["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val", VAL, "--out",
            str(out), "--keep-float", "none", "--max-drop", "-100", "--calib-images", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "more than --max-drop -100" in err
    assert out.read_bytes() == b"previous"
    assert main([*args, "--force"]) == 0
    assert read_onnx_metadata(out)["quantization"]["forced"] is True


def test_int8_model_runs_through_predict_evaluate_and_info(int8_model, tmp_path,
                                                           capsys) -> None:
    from fcnseg.inference import Segmenter

    seg = Segmenter.from_checkpoint(int8_model)
    assert seg.runtime == "onnxruntime" and seg.describe()["precision"] == "int8"
    image, _ = SyntheticSegmentation(num_images=1, size=40, seed=3).load(0)
    label = seg.predict(image).label
    # The artifact answers exactly what its ONNX session answers on the raw pixels.
    session = ort.InferenceSession(str(int8_model), providers=["CPUExecutionProvider"])
    x = image.transpose(2, 0, 1)[None].astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0][0].argmax(0)
    assert np.array_equal(label, expected)

    Image.fromarray(image).save(tmp_path / "a.png")
    assert main(["predict", "--checkpoint", str(int8_model), str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "pred")]) == 0
    assert main(["evaluate", "--checkpoint", str(int8_model), "--dataset", "synthetic",
                 "--num-images", "2", "--size", "40", "--out", str(tmp_path / "ev"),
                 "--no-calibration"]) == 0
    assert "precision int8" in capsys.readouterr().out
    assert main(["info", str(int8_model)]) == 0
    printed = capsys.readouterr().out
    assert "int8 ONNX" in printed and "pixel agreement" in printed
    assert main(["info", str(int8_model), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["artifact"]["quantization"]["engine"] == "onnxruntime"


def test_an_int8_labels_out_model_describes_its_output_as_labels(synthetic_checkpoint,
                                                                 tmp_path) -> None:
    out = tmp_path / "labels.int8.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--out", str(out),
                 "--labels-out"]) == 0
    meta = read_onnx_metadata(out)
    assert meta["outputs"] == "labels"
    assert meta["output"].startswith("N×H×W labels") and "logits at" not in meta["output"]
    import onnxruntime as ort

    outputs = ort.InferenceSession(str(out)).get_outputs()
    assert [(o.name, o.type) for o in outputs] == [("labels", "tensor(uint8)")]


def test_evaluate_says_the_precision_is_the_int8_models_own(int8_model, tmp_path,
                                                           capsys) -> None:
    assert main(["evaluate", "--checkpoint", str(int8_model), "--dataset", "synthetic",
                 "--num-images", "1", "--size", "32", "--out", str(tmp_path / "ev"),
                 "--no-calibration"]) == 0
    out = capsys.readouterr().out
    assert "precision int8, the int8 ONNX model's own" in out
    assert "training" not in out.splitlines()[0]
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["options"]["precision_from"] == "the int8 ONNX model's own"


def test_empty_calibration_folder_is_one_line(synthetic_checkpoint, tmp_path, capsys,
                                              monkeypatch) -> None:
    def no_export(*args, **kwargs):
        raise AssertionError("the model was exported before the calibration set was checked")

    monkeypatch.setattr("fcnseg.cli.quantize.quantize_model", no_export)
    monkeypatch.setattr("fcnseg.cli.quantize.Segmenter.from_checkpoint", no_export)
    (tmp_path / "empty").mkdir()
    assert main(["quantize", str(synthetic_checkpoint), "--calib", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "calibration set is empty" in err
    assert f"in {tmp_path / 'empty'}" in err  # the folder, named
    assert not (tmp_path / "m.onnx").exists()


def test_calibration_image_with_wrong_band_count_is_one_line(synthetic_checkpoint, tmp_path,
                                                             capsys) -> None:
    folder = tmp_path / "calib"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(folder / "a.png")
    import tifffile  # five bands: no colour image (a grey one is read as training reads it)

    tifffile.imwrite(folder / "b.tif", np.zeros((20, 24, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    assert main(["quantize", str(synthetic_checkpoint), "--calib", str(folder),
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "b.tif" in err and "5 band(s)" in err and "RGB or grey" in err


def test_missing_engine_names_the_extra(synthetic_checkpoint, tmp_path, capsys,
                                        monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # import fails
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB,
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'fcnseg[int8]'" in err


def test_a_model_the_engine_cannot_quantize_is_one_line(tmp_path, capsys) -> None:
    from tiny_models import tiny_task_model

    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.nyud import NYUD_CLASSES
    from fcnseg.data.palette import voc_palette

    path = tmp_path / "rgbd.pt"
    model = tiny_task_model("nyud_fcn32s_color_hha")
    save_checkpoint(path, model, class_names=NYUD_CLASSES, palette=voc_palette())
    assert main(["quantize", str(path), "--calib", CALIB, "--out",
                 str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one colour input" in err


def test_serve_answers_with_the_int8_model(int8_model) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import io

    from fastapi.testclient import TestClient

    from fcnseg.inference import Segmenter
    from fcnseg.serve import create_app

    seg = Segmenter.from_checkpoint(int8_model)
    image, _ = SyntheticSegmentation(num_images=1, size=40, seed=3).load(0)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with TestClient(create_app(seg)) as client:
        r = client.post("/v1/segment", files={"image": ("a.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    label = np.asarray(Image.open(io.BytesIO(r.content)))
    assert np.array_equal(label, seg.predict(image).label)


def test_an_int8_segmenter_says_it_runs_int8_as_serve_announces_it(int8_model) -> None:
    from fcnseg.inference import Segmenter

    described = repr(Segmenter.from_checkpoint(int8_model))
    assert "precision='int8', runtime='onnxruntime')" in described


def test_data_arguments_name_folders_datasets_or_the_recipes_validation_set(tmp_path) -> None:
    from fcnseg.cli.quantize import parse_data

    assert parse_data("voc:root=data/VOCdevkit,split=train") == {
        "name": "voc", "root": "data/VOCdevkit", "split": "train"}
    assert parse_data("synthetic:num_images=8,size=64") == {
        "name": "synthetic", "num_images": 8, "size": 64}
    assert parse_data(str(tmp_path)) == tmp_path  # a folder of images
    (tmp_path / "dataset.yaml").write_text("classes: [a, b]\n")
    assert parse_data(str(tmp_path)) == {"name": "folder", "root": str(tmp_path),
                                         "split": "train"}
    recipe_val = {"name": "synthetic", "split": "val"}
    assert parse_data("recipe", recipe_val=recipe_val) == {"name": "synthetic", "split": "val"}
    with pytest.raises(ValueError, match="names no validation set"):
        parse_data("recipe", recipe_val=None)
    with pytest.raises(ValueError, match="no such folder"):
        parse_data(str(tmp_path / "missing" / "images"))


def test_a_dataset_spec_item_without_a_value_is_named_after_the_dataset_name() -> None:
    from fcnseg.cli.quantize import parse_data

    with pytest.raises(ValueError) as caught:
        parse_data("voc:root=data,split")
    assert str(caught.value) == (
        "voc:root=data,split: expected KEY=VALUE after the dataset name, got 'split'")


def _largest_int8_weight(path: Path) -> int:
    proto = onnx.load(str(path))
    return max(int(np.abs(onnx.numpy_helper.to_array(t).astype(np.int32)).max())
               for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8)


@pytest.mark.parametrize("flag, largest, exact", [("--reduce-range", 64, True),
                                                  ("--no-reduce-range", 127, False)])
def test_reduce_range_keeps_weights_where_cpus_without_vnni_cannot_saturate(
        synthetic_checkpoint, tmp_path, flag, largest, exact) -> None:
    out = tmp_path / "m.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--out", str(out),
                 flag]) == 0
    # Per-channel symmetric: each channel's largest weight takes the top of the range.
    assert _largest_int8_weight(out) == largest
    quant = read_onnx_metadata(out)["quantization"]
    assert quant["reduce_range"] is exact and quant["exact_without_vnni"] is exact


@pytest.mark.parametrize("vnni", [True, False])
def test_reduce_range_defaults_to_on_only_on_a_cpu_without_vnni(synthetic_checkpoint, tmp_path,
                                                                monkeypatch, vnni) -> None:
    monkeypatch.setattr("fcnseg.export.quantize.int8_dot_products", lambda: vnni)
    out = tmp_path / "m.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--out",
                 str(out)]) == 0
    assert read_onnx_metadata(out)["quantization"]["reduce_range"] is (not vnni)


def test_int8_dot_products_are_read_from_the_cpu_flags() -> None:
    from fcnseg.export.quantize import int8_dot_products

    assert int8_dot_products(["avx2", "avx512f", "avx512_vnni"])
    assert int8_dot_products(["avx2", "avx_vnni"]) and int8_dot_products(["amx_int8"])
    assert not int8_dot_products(["avx2", "avx512f", "avx512bw"])  # Skylake-SP: vpmaddubsw


def test_the_recorded_comparison_keeps_its_key_order() -> None:
    from fcnseg.export.quantize import Comparison

    comparison = Comparison(images=3, float_mean_iu=0.5, int8_mean_iu=0.4, float_iu=[0.5],
                            int8_iu=[0.4], pixel_agreement=0.9)
    assert list(comparison.to_dict()) == ["images", "float_mean_iu", "int8_mean_iu",
                                          "mean_iu_drop_points", "float_iu", "int8_iu",
                                          "pixel_agreement"]


@pytest.mark.parametrize("weight, exact", [(64, True), (-64, True), (65, False), (-127, False)])
def test_pre_vnni_exactness_is_bounded_by_the_largest_int8_weight(weight, exact) -> None:
    from onnx import TensorProto, helper, numpy_helper

    from fcnseg.export.quantize import pre_vnni_exact

    w = numpy_helper.from_array(np.array([[1, weight], [0, -3]], np.int8), "w")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    graph = helper.make_graph([helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], "g",
                              [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
                              [w, scale])
    assert pre_vnni_exact(helper.make_model(graph)) is exact


def test_the_engine_failing_on_a_model_is_one_line(synthetic_checkpoint, tmp_path, capsys,
                                                    monkeypatch) -> None:
    import onnxruntime.quantization as quantization

    def fails(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Node (conv1_1) Op (Conv)\n"
                           "type inference failed\n  at line 12")

    monkeypatch.setattr(quantization, "quantize_static", fails)
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB,
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "onnxruntime cannot quantize this model" in err and "conv1_1" in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("flags, warns", [({"avx2", "avx512_vnni"}, False),
                                          ({"avx2", "avx512bw"}, True)])
def test_a_full_range_int8_model_warns_only_on_a_cpu_without_vnni(int8_model, monkeypatch,
                                                                   flags, warns) -> None:
    import warnings

    from fcnseg.inference import Segmenter
    from fcnseg.utils.hardware import CpuInfo

    monkeypatch.setattr("fcnseg.models.exported.cpu_info",
                        lambda: CpuInfo("a CPU", frozenset(flags)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Segmenter.from_checkpoint(int8_model)
    lines = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
             and "int8 dot products" in str(w.message)]
    assert len(lines) == int(warns)
    if warns:
        assert "--reduce-range" in lines[0] and str(int8_model) in lines[0]
        assert "\n" not in lines[0]


def test_a_reduce_range_int8_model_never_warns_about_saturation() -> None:
    from fcnseg.models.exported import int8_kernel_warning

    no_vnni = {"avx2", "avx512bw"}
    assert int8_kernel_warning("m.onnx", {"reduce_range": True, "exact_without_vnni": True},
                               no_vnni) is None
    assert int8_kernel_warning("m.onnx", {"reduce_range": False,
                                          "exact_without_vnni": False}, no_vnni)


def _band_checkpoint(path: Path) -> Path:
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.conventions import band_convention
    from fcnseg.data.palette import voc_palette
    from fcnseg.models import build_model

    convention = band_convention(["red", "green", "blue", "nir", "swir1"], [8000.0] * 5,
                                 [300.0] * 5)
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    return save_checkpoint(path, model, class_names=["soil", "pond", "shed"],
                           palette=voc_palette())


def _cells_folder(root: Path, count: int = 6) -> Path:
    """A 1-band folder dataset of 16-bit microscopy-like images (12-bit values: a dim
    background, bright nuclei) with their label masks, split train/val."""
    import tifffile
    import yaml

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        label = np.zeros((48, 56), np.uint8)
        top, left = rng.integers(4, 24, 2)
        label[top:top + 18, left:left + 22] = 1
        image = rng.normal(180, 40, label.shape) + 1500.0 * label
        tifffile.imwrite(root / "images" / f"c{k}.tif", image.clip(0, 4095).astype(np.uint16))
        Image.fromarray(label).save(root / "masks" / f"c{k}.png")
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"classes": ["background", "nucleus"], "bands": ["intensity"]}))
    (root / "train.txt").write_text("\n".join(f"c{k}" for k in range(count - 2)))
    (root / "val.txt").write_text("\n".join(f"c{k}" for k in range(count - 2, count)))
    return root


def _grey_checkpoint(path: Path) -> Path:
    """A tiny 1-band FCN-8s whose labels vary over a cell image (random score layers), with
    a 12-bit camera's band statistics, trained on 16-bit images."""
    from tiny_models import tiny_band_model

    from fcnseg.checkpoint import save_checkpoint

    model = tiny_band_model(["intensity"], [250.0], [330.0], num_classes=2,
                            sample_types=["uint16"])
    return save_checkpoint(path, model, class_names=["background", "nucleus"])


def test_a_16_bit_band_model_quantizes_to_int8_labels_that_agree_with_float(tmp_path,
                                                                              capsys) -> None:
    import tifffile

    from fcnseg.inference import Segmenter

    data = _cells_folder(tmp_path / "cells")
    path, out = _grey_checkpoint(tmp_path / "grey.pt"), tmp_path / "grey.int8.onnx"
    assert main(["quantize", str(path), "--calib", str(data), "--val", str(data), "--out",
                 str(out), "--keep-float", "none", "--max-drop", "100"]) == 0
    printed = capsys.readouterr().out
    assert "calibrating activation ranges on 4 images" in printed  # the train split
    assert read_onnx_metadata(out)["quantization"]["validation"]["images"] == 2
    floating, int8 = Segmenter.from_checkpoint(path), Segmenter.from_checkpoint(out)
    assert int8.input_convention.bands == ("intensity",)
    for k in range(6):
        image = tifffile.imread(data / "images" / f"c{k}.tif")  # H×W uint16
        expected, got = floating.predict(image).label, int8.predict(image).label
        assert len(np.unique(expected)) == 2
        assert (expected == got).mean() >= 0.95


def test_an_8_bit_calibration_image_for_a_16_bit_band_model_is_one_line(tmp_path,
                                                                          capsys) -> None:
    data = tmp_path / "calib"
    data.mkdir()
    Image.fromarray(np.full((20, 24), 30, np.uint8)).save(data / "png8.png")
    assert main(["quantize", str(_grey_checkpoint(tmp_path / "grey.pt")), "--calib",
                 str(data), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{data / 'png8.png'}: 8-bit samples (uint8)" in err
    assert not (tmp_path / "m.onnx").exists()


def test_info_says_a_multi_band_export_takes_its_bands_raw_values(tmp_path, capsys) -> None:
    path, out = _band_checkpoint(tmp_path / "bands.pt"), tmp_path / "bands.onnx"
    assert main(["export", "--checkpoint", str(path), "--format", "onnx", "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    exported = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("exported:")]
    assert exported and "the raw values of its 5 bands" in exported[0]
    assert "RGB" not in exported[0]
    # The metadata a deployment reads says the same.
    assert read_onnx_metadata(out)["input"].startswith(
        "N×5×H×W float32 raw values of the bands red, green, blue, nir, swir1")


def test_an_int8_model_records_its_checkpoints_validation_set_and_metrics(tmp_path,
                                                                         capsys) -> None:
    import torch

    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data import palette_for
    from fcnseg.models import fcn8s

    torch.manual_seed(0)
    names = list(SyntheticSegmentation.classes)
    val = {"name": "synthetic", "num_images": 2, "size": 40, "seed": 5, "split": "val"}
    ckpt = save_checkpoint(tmp_path / "trained.pt",
                           fcn8s(num_classes=len(names), geometry="same", width=0.0625,
                                 fc_channels=16),
                           class_names=names, palette=palette_for(len(names)),
                           recipe={"data": {"val": val}}, metrics={"mean_iu": 0.4321})
    out = tmp_path / "model.int8.onnx"
    assert main(["quantize", str(ckpt), "--calib", CALIB, "--val", VAL, "--out", str(out),
                 "--keep-float", "none", "--max-drop", "100", "--no-reduce-range"]) == 0
    meta = read_onnx_metadata(out)
    assert meta["validation_data"] == val
    assert meta["metrics"]["checkpoint"] == {"mean_iu": 0.4321}
    assert "mean_iu" in meta["metrics"] and "pixel_agreement_with_float" in meta["metrics"]
    assert main(["info", str(out)]) == 0
    assert "its float checkpoint: mean IU 43.21" in capsys.readouterr().out


def test_a_folder_dataset_given_as_val_is_scored_on_its_val_split(synthetic_checkpoint,
                                                                  tmp_path, capsys) -> None:
    from fcnseg.cli.quantize import parse_data

    root = write_folder(tmp_path / "ds", list(SyntheticSegmentation.classes),
                        splits={"train": 3, "val": 2})
    assert parse_data(str(root), split="val")["split"] == "val"
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val", str(root),
                 "--out", str(out), "--keep-float", "none", "--max-drop", "100"]) == 0
    assert f"accuracy gate: 2 images of {root} (split val)" in capsys.readouterr().out


def test_val_pairs_match_the_same_classes_in_another_order_by_name(synthetic_checkpoint,
                                                                   tmp_path) -> None:
    from fcnseg.cli.quantize import validation_pairs
    from fcnseg.inference import Segmenter

    seg = Segmenter.from_checkpoint(synthetic_checkpoint)
    shuffled = [SyntheticSegmentation.classes[i] for i in (0, 4, 2, 6, 1, 5, 3)]
    same = validation_pairs({"name": "folder", "split": "val", "root": str(
        write_folder(tmp_path / "same", list(SyntheticSegmentation.classes)))}, None, seg)
    other = validation_pairs({"name": "folder", "split": "val", "root": str(
        write_folder(tmp_path / "other", shuffled))}, None, seg)
    assert same.note is None and "by name" in other.note
    for (_, a), (_, b) in zip(same.pairs(), other.pairs(), strict=True):
        assert np.array_equal(a, b)


def test_a_bad_val_set_fails_in_one_line_before_calibration(synthetic_checkpoint, tmp_path,
                                                           capsys, monkeypatch) -> None:
    import fcnseg.cli.quantize as command

    def calibration_started(*args, **kwargs):
        raise AssertionError("the validation set was not checked before calibration")

    monkeypatch.setattr(command, "quantize_model", calibration_started)
    root = write_folder(tmp_path / "ds", list(SyntheticSegmentation.classes))
    broken = root / "images" / "val1.png"
    broken.write_bytes(broken.read_bytes()[:120])  # truncated: its header still reads
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val", str(root),
                 "--out", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--val" in err and str(broken) in err
    renamed = write_folder(tmp_path / "renamed", list(SyntheticSegmentation.classes))
    (renamed / "dataset.yaml").write_text(f"classes: [{', '.join(f'c{i}' for i in range(7))}]\n")
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--val",
                 str(renamed), "--out", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[c0, c1, c2, c3, c4, c5, c6]" in err


def test_a_description_without_what_fcnseg_loads_by_is_refused_before_quantizing(
        tmp_path: Path) -> None:
    from fcnseg.export.quantize import QuantizeError, quantize_model
    from fcnseg.models import fcn8s

    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16).eval()
    out = tmp_path / "m.int8.onnx"
    with pytest.raises(QuantizeError, match=r"description lacks \['class_names', 'palette', "
                                            r"'input_convention'\]"):
        quantize_model(model, out, description={}, calibration=lambda: iter(()))
    assert not out.exists()


@pytest.mark.parametrize("mixed_iu, chosen, verb", [(0.5015, "none", "lowers by 0.15"),
                                                     (0.5200, "sensitive", "raises by 1.70")])
def test_the_keep_float_choice_says_what_was_compared_the_threshold_and_the_decision(
        mixed_iu, chosen, verb) -> None:
    from fcnseg.export.quantize import Comparison, _choose

    def scored(int8_iu: float) -> Comparison:
        return Comparison(3, 0.5, int8_iu, [], [], 1.0)

    said: list[str] = []
    got = _choose({"none": scored(0.503), "sensitive": scored(mixed_iu)}, ["none", "sensitive"],
                  said.append)
    assert got == chosen and len(said) == 1
    action, _, amount = verb.partition(" by ")
    assert f"{action} mean IU on --val by {amount} points against all-int8" in said[0]
    assert "a gain of at least 0.1 points" in said[0]
    assert said[0].endswith("all layers int8" if chosen == "none" else "layers in float")


@pytest.mark.parametrize("reduce_range, says", [
    ("--no-reduce-range", "full-range weights: exact only on CPUs with int8 dot products"),
    ("--reduce-range", "7-bit weights (--reduce-range): exact on any x86 CPU")])
def test_info_says_in_one_line_on_which_cpus_an_int8_model_is_exact(
        synthetic_checkpoint, tmp_path, capsys, reduce_range, says) -> None:
    out = tmp_path / "m.onnx"
    assert main(["quantize", str(synthetic_checkpoint), "--calib", CALIB, "--out", str(out),
                 reduce_range]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = [s for s in capsys.readouterr().out.splitlines() if s.startswith("int8 CPUs:")]
    assert len(lines) == 1 and says in lines[0]
    if reduce_range == "--no-reduce-range":
        assert "requantize" in lines[0] or "--reduce-range for older CPUs" in lines[0]


def test_a_flat_calibration_image_and_a_small_set_each_get_one_note(synthetic_checkpoint,
                                                                     tmp_path, capsys) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    image, _ = SyntheticSegmentation(num_images=1, size=40, seed=3).load(0)
    Image.fromarray(image).save(calib / "a.png")
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(calib / "flat.png")
    assert main(["quantize", str(synthetic_checkpoint), "--calib", str(calib),
                 "--out", str(tmp_path / "m.onnx")]) == 0  # notes, not a refusal
    notes = [s for s in capsys.readouterr().out.splitlines() if s.startswith("note:")]
    flat = [s for s in notes if "flat calibration image" in s]
    assert len(flat) == 1 and str(calib / "flat.png") in flat[0] and "[128, 128, 128]" in flat[0]
    few = [s for s in notes if "calibrating on 2 images" in s]
    assert len(few) == 1 and "a few hundred" in few[0]


def test_a_corrupt_calibration_image_is_refused_before_the_float_export(
        synthetic_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    def no_export(*args, **kwargs):
        raise AssertionError("the float model was exported before the calibration set was read")

    monkeypatch.setattr("fcnseg.export.quantize.export_onnx", no_export)
    calib = tmp_path / "calib"
    calib.mkdir()
    image, _ = SyntheticSegmentation(num_images=1, size=40, seed=3).load(0)
    Image.fromarray(image).save(calib / "a.jpg")
    Image.fromarray(image).save(calib / "b.jpg")
    (calib / "b.jpg").write_bytes((calib / "b.jpg").read_bytes()[:400])  # header kept
    assert main(["quantize", str(synthetic_checkpoint), "--calib", str(calib),
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{calib / 'b.jpg'}: unreadable calibration image" in err
    assert not (tmp_path / "m.onnx").exists()
