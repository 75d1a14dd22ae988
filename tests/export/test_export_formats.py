"""``fcnseg export``: ONNX (both geometries, dynamic sizes, metadata) and TorchScript."""

from __future__ import annotations

import json
import re

import pytest
import torch
from floats import assert_close_to_scale, assert_labels_match
from tiny_models import export_description

from fcnseg.checkpoint import build_model_from_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.export import read_onnx_metadata, read_torchscript_metadata

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")


def _pixels(n: int, h: int, w: int) -> torch.Tensor:
    """RGB pixel values 0-255 as float32: what an export of fcnseg export takes."""
    return torch.randint(0, 256, (n, 3, h, w), generator=torch.Generator().manual_seed(7),
                         dtype=torch.uint8).float()


def _inputs(model, n: int, h: int, w: int) -> torch.Tensor:
    """Raw RGB pixels, as float32 (what exported graphs take)."""
    return _pixels(n, h, w)


@pytest.mark.parametrize("where", ["a_file/model.onnx", "a_folder"])
def test_an_unwritable_out_is_refused_before_exporting_naming_it(
        where, export_checkpoint, tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    import fcnseg.cli.export as export_cli

    monkeypatch.setattr(export_cli, "export_onnx", lambda *a, **k: pytest.fail("exported"))
    out = tmp_path / where
    rc = main(["export", "--checkpoint", str(export_checkpoint("same")), "--format", "onnx",
               "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"fcnseg export: error: --out {out}: ")
    assert ".tmp" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("geometry", ["caffe", "same"])
def test_onnx_export_is_verified_and_dynamic_in_both_geometries(
    geometry, export_checkpoint, tmp_path, capsys
) -> None:
    ckpt, out = export_checkpoint(geometry), tmp_path / "model.onnx"
    rc = main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out),
               "--height", "40", "--width", "56"])
    printed = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    diffs = [float(d) for d in re.findall(r"max \|export − PyTorch\| = (\S+) ", printed)]
    assert len(diffs) == 2 and max(diffs) < 1e-4
    assert "1×3×40×56" in printed and "2×3×77×37" in printed

    # Independently of the command's own check: another batch and size than both samples.
    model = build_model_from_checkpoint(ckpt)
    pixels = _pixels(3, 45, 71)  # the graph normalises them itself
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: pixels.numpy()})[0]
    with torch.no_grad():
        expected = model(pixels).numpy()
    assert got.shape == expected.shape == (3, 4, 45, 71)
    assert_close_to_scale(got, expected)
    for one_got, one_expected in zip(got, expected, strict=True):
        assert_labels_match(one_got.argmax(0), one_expected.argmax(0), one_expected)


def test_onnx_metadata_describes_the_model(export_checkpoint, export_classes, tmp_path) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(export_checkpoint("same")), "--format", "onnx",
                 "--out", str(out), "--height", "32", "--width", "32"]) == 0
    meta = read_onnx_metadata(out)
    assert meta["class_names"] == export_classes
    assert meta["palette"] == voc_palette()[:4].tolist()
    assert meta["geometry"] == "same" and meta["arch"] == "fcn8s"
    assert meta["input_convention"]["name"] == "caffe_bgr"
    assert meta["ignore_index"] == 255 and meta["num_classes"] == 4


def test_onnx_metadata_says_how_to_read_an_image_as_fcnseg_predict(export_checkpoint,
                                                                   tmp_path) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(export_checkpoint("same")), "--format", "onnx",
                 "--out", str(out), "--height", "32", "--width", "32"]) == 0
    reading = read_onnx_metadata(out)["image_reading"]
    assert "upright by its EXIF orientation" in reading
    assert "transparent pixels blended with white" in reading


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_metadata_leaves_out_how_the_pytorch_model_ran(fmt, export_checkpoint,
                                                             tmp_path) -> None:
    # channels_last, oneDNN prepacked weights, fc6/fc7 as GEMM: PyTorch's fast paths, which
    # step aside under tracing; none of them is in the graph.
    ckpt, out = export_checkpoint("same"), tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(ckpt), "--format", fmt, "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    meta = (read_onnx_metadata if fmt == "onnx" else read_torchscript_metadata)(out)
    assert "optimizations" not in meta
    assert "channels_last" not in json.dumps(meta) and "oneDNN" not in json.dumps(meta)
    assert meta["input_pixels"] == "rgb_0_255"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_runs_at_another_size(export_checkpoint, export_classes,
                                                 tmp_path) -> None:
    ckpt, out = export_checkpoint("caffe"), tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "torchscript",
                 "--out", str(out), "--height", "40", "--width", "56"]) == 0
    loaded = torch.jit.load(str(out))
    model = build_model_from_checkpoint(ckpt)
    pixels = _pixels(2, 51, 33)
    with torch.no_grad():
        got, expected = loaded(pixels), model(pixels)
    assert got.shape == (2, 4, 51, 33)
    assert (got - expected).abs().max() < 1e-4
    meta = read_torchscript_metadata(out)
    assert meta["class_names"] == export_classes and meta["geometry"] == "caffe"


def test_export_says_each_samples_tolerance_from_its_own_logits(export_checkpoint, tmp_path,
                                                                capsys) -> None:
    rc = main(["export", "--checkpoint", str(export_checkpoint("same")), "--format", "onnx",
               "--out", str(tmp_path / "model.onnx"), "--height", "32", "--width", "32",
               "--atol", "0", "--rtol", "0.01"])
    assert rc == 0
    verified = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("verified ")]
    assert len(verified) == 2
    for line in verified:  # 0.01 × that sample's largest logit, as the check takes it
        largest = float(line.split("(logits up to ")[1].split(")")[0])
        tolerance = float(line.split("below its tolerance ")[1])
        assert tolerance == pytest.approx(0.01 * largest, rel=0.01)


def test_failed_verification_leaves_an_existing_file_alone(export_checkpoint, tmp_path,
                                                           capsys) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous export")
    # A tolerance of 0 cannot be met: the command must fail after the export ran.
    rc = main(["export", "--checkpoint", str(export_checkpoint("same")), "--format", "onnx",
               "--out", str(out), "--height", "32", "--width", "32", "--atol", "0",
               "--rtol", "0"])
    assert rc != 0
    assert "not below the tolerance" in capsys.readouterr().err
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_a_model_answering_a_dict_exports_its_logits(tmp_path) -> None:
    # fcn_resnet50(output="dict", aux_loss=True) returns {"out", "aux"}: the export's one
    # output is "out", verified against PyTorch like any other model.
    from fcnseg.export import export_onnx, export_torchscript
    from fcnseg.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn_resnet50", num_classes=3, output="dict", aux_loss=True,
                        base_channels=8).eval()
    description = export_description(model)
    onnx_result = export_onnx(model, tmp_path / "m.onnx", description=description,
                              sample_size=(40, 48))
    ts_result = export_torchscript(model, tmp_path / "m.pt", description=description,
                                   sample_size=(40, 48))
    assert len(onnx_result.checks) == len(ts_result.checks) == 2
    x = _inputs(model, 1, 37, 29)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x)["out"].numpy()
    assert len(outputs) == 1 and outputs[0].shape == (1, 3, 37, 29)
    assert_close_to_scale(outputs[0], expected)
    with torch.no_grad():
        assert torch.jit.load(str(tmp_path / "m.pt"))(x).shape == (1, 3, 37, 29)


def test_the_check_is_relative_to_the_logits_scale() -> None:
    # The reference FCN-8s's logits reach about 1e3: float32 rounding of that size differs
    # between runtimes by ~1e-3, which a fixed absolute bound of 1e-4 would refuse.
    import numpy as np
    import torch

    from fcnseg.export.common import check_samples

    model = torch.nn.Conv2d(3, 2, 1).eval()
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        model.weight.fill_(400.0)
        ref = model(x).numpy()

    def run_export(_x):  # an export whose float32 rounding differs by 1e-6 of the logits
        return ref + 1e-6 * np.abs(ref).max()

    check = check_samples(model, run_export, [x])[0]
    assert check.max_abs_diff > 1e-4 and check.max_abs_diff < check.tolerance


def test_onnx_metadata_says_the_graph_is_float32(tmp_path) -> None:
    from fcnseg.export import export_onnx, read_onnx_metadata
    from fcnseg.models import fcn8s

    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16).eval()
    out = tmp_path / "m.onnx"
    # A segmenter's description says the precision it ran in (bf16 on CPUs with AVX512-BF16);
    # the graph exported is float32 whatever.
    export_onnx(model, out, description=export_description(
        model, arch="fcn8s", precision="bf16"),
                sample_size=(32, 32))
    assert read_onnx_metadata(out)["precision"] == "fp32"


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_a_description_fcnseg_could_not_load_is_refused_before_anything_is_written(
        kind, tmp_path) -> None:
    from fcnseg.export import export_onnx, export_torchscript
    from fcnseg.export.common import ExportError
    from fcnseg.models import fcn8s

    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16).eval()
    export = export_onnx if kind == "onnx" else export_torchscript
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"description lacks \['class_names', 'palette', "
                                          r"'input_convention'\].*describe\(\)") as e:
        export(model, out, description={}, sample_size=(32, 32))
    assert "\n" not in str(e.value) and not out.exists()
    no_palette = {k: v for k, v in export_description(model).items() if k != "palette"}
    with pytest.raises(ExportError, match=r"description lacks \['palette'\]"):
        export(model, out, description=no_palette, sample_size=(32, 32))


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_class_names_or_a_palette_fcnseg_would_misread_are_refused_before_writing(
        kind, tmp_path) -> None:
    """One name for a 3-class graph was written and loaded as a 1-class model; a colour out
    of 0-255 was written, then refused by every fcnseg command loading the file."""
    from fcnseg.export import export_onnx, export_torchscript
    from fcnseg.export.common import ExportError
    from fcnseg.models import fcn8s

    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16).eval()
    export = export_onnx if kind == "onnx" else export_torchscript
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"description: class_names: 1 names for a model "
                                          r"with 3 classes") as e:
        export(model, out, description=export_description(model, class_names=["a"]),
               sample_size=(32, 32))
    assert "\n" not in str(e.value) and not out.exists()
    bright = export_description(model, palette=[[0, 0, 0], [300, 0, 0], [0, 128, 0]])
    with pytest.raises(ExportError, match=r"description: palette: colour 1 is \[300, 0, 0\]: "
                                          r"expected \[r, g, b\] integers in 0-255"):
        export(model, out, description=bright, sample_size=(32, 32))
    assert not out.exists()
