"""Export of models with several inputs (named by modality) and several heads (named outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from floats import assert_close_to_scale, assert_labels_match
from tiny_models import export_description, tiny_task_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.export import (
    export_onnx,
    export_torchscript,
    read_onnx_metadata,
    read_torchscript_metadata,
)
from fcnseg.pretrained.reference import SIFT_FLOW_CLASSES

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")


def _inputs(names: tuple[str, ...], n: int, h: int, w: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {m: torch.randn(n, 1 if m == "depth" else 3, h, w, generator=g) * 40 for m in names}


def test_siftflow_onnx_has_one_output_per_head(tmp_path: Path) -> None:
    model, out = tiny_task_model("siftflow_fcn16s", seed=3), tmp_path / "sift.onnx"
    export_onnx(model, out, description=export_description(model, arch=model.arch),
                sample_size=(40, 36))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["semantic", "geometric"]
    assert [i.name for i in session.get_inputs()] == ["input"]
    x = torch.randn(3, 3, 45, 51) * 40  # another batch and size than the export's samples
    semantic, geometric = session.run(["semantic", "geometric"], {"input": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert semantic.shape == (3, 33, 45, 51) and geometric.shape == (3, 3, 45, 51)
    assert_close_to_scale(semantic, expected["semantic"])
    assert_close_to_scale(geometric, expected["geometric"])
    assert read_onnx_metadata(out)["output_names"] == ["semantic", "geometric"]


@pytest.mark.parametrize(("arch", "exporter"), [("nyud_fcn32s_color_hha", "legacy"),
                                                ("nyud_fcn16s_color_hha", "dynamo"),
                                                ("nyud_fcn32s_color_d", "legacy")])
def test_fusion_onnx_takes_one_named_input_per_modality(arch, exporter, tmp_path: Path) -> None:
    model, out = tiny_task_model(arch, seed=3), tmp_path / "fusion.onnx"
    export_onnx(model, out, description=export_description(model, arch=arch), sample_size=(36, 40),
                exporter=exporter)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = tuple(i.name for i in session.get_inputs())
    assert names == model.input_names and [o.name for o in session.get_outputs()] == ["logits"]
    x = _inputs(names, 2, 47, 33)
    (got,) = session.run(None, {m: t.numpy() for m, t in x.items()})
    with torch.no_grad():
        expected = model(x)
    assert got.shape == (2, 40, 47, 33)
    assert_close_to_scale(got, expected)
    assert read_onnx_metadata(out)["input_names"] == list(names)


def test_a_fusion_onnx_with_labels_out_answers_the_labels_of_its_logits(tmp_path: Path) -> None:
    # seed 0: three classes share the pixels, so the labels are compared across boundaries
    model, out = tiny_task_model("nyud_fcn32s_color_hha", seed=0), tmp_path / "labels.onnx"
    export_onnx(model, out, description=export_description(model, arch=model.arch),
                sample_size=(36, 40),
                labels_out=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = _inputs(model.input_names, 2, 47, 33)
    (labels,) = session.run(None, {m: t.numpy() for m, t in x.items()})
    with torch.no_grad():
        logits = model(x)
    assert labels.dtype == np.uint8 and labels.shape == (2, 47, 33)
    assert len(np.unique(logits.argmax(1))) > 1, "one label everywhere compares nothing"
    for got, scores in zip(labels, logits, strict=True):
        assert_labels_match(got, scores.argmax(0), scores)
    assert read_onnx_metadata(out)["outputs"] == "labels"


def test_torchscript_keeps_dict_inputs_and_dict_outputs(tmp_path: Path) -> None:
    for arch in ("siftflow_fcn8s", "nyud_fcn32s_color_hha"):
        model, out = tiny_task_model(arch, seed=3), tmp_path / f"{arch}.pt"
        export_torchscript(model, out, description=export_description(model, arch=arch),
                           sample_size=(38, 34))
        loaded = torch.jit.load(str(out))
        x = _inputs(model.input_names, 2, 41, 49)
        x = x if len(model.input_names) > 1 else x["color"]
        with torch.no_grad():
            got, expected = loaded(x), model(x)
        if isinstance(expected, dict):
            assert list(got) == ["semantic", "geometric"]
            for head in expected:
                assert_close_to_scale(got[head], expected[head])
        else:
            assert_close_to_scale(got, expected)
        meta = read_torchscript_metadata(out)
        if isinstance(expected, dict):
            assert meta["output_names"] == ["semantic", "geometric"]
        else:
            assert meta["input_names"] == ["color", "hha"]


def test_export_command_writes_a_siftflow_checkpoint(tmp_path: Path) -> None:
    model = tiny_task_model("siftflow_fcn32s", seed=3)
    ckpt = save_checkpoint(tmp_path / "sift.pt", model, class_names=list(SIFT_FLOW_CLASSES),
                           palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES,
                                         "geometric": ["sky", "horizontal", "vertical"]})
    out = tmp_path / "sift.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["semantic", "geometric"]


GEOMETRIC = ["sky", "horizontal", "vertical"]


def _task_checkpoint(arch: str, folder: Path) -> Path:
    """A tiny NYUDv2-fusion or SIFT Flow checkpoint, with its heads' class names."""
    model = tiny_task_model(arch, seed=3)
    if arch.startswith("siftflow"):
        return save_checkpoint(folder / f"{arch}.pt", model, class_names=list(SIFT_FLOW_CLASSES),
                               palette=voc_palette(),
                               head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": GEOMETRIC})
    from fcnseg.pretrained.reference import NYUD_CLASSES
    return save_checkpoint(folder / f"{arch}.pt", model, class_names=list(NYUD_CLASSES),
                           palette=voc_palette())


def _scenes(root: Path, modalities: tuple[str, ...]) -> Path:
    """Two scenes in NYUDv2's layout: ``images/NAME.png`` with ``MODALITY/NAME.png`` beside."""
    from PIL import Image
    rng = np.random.default_rng(7)
    for modality in ("images", *[m for m in modalities if m != "color"]):
        (root / modality).mkdir(parents=True)
        for stem in ("a", "b"):
            if modality == "depth":
                pixels = rng.integers(500, 9000, (36, 44), dtype=np.uint16)
            else:
                pixels = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / modality / f"{stem}.png")
    return root / "images"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("arch", "fmt"), [("siftflow_fcn16s", "onnx"),
                                           ("nyud_fcn32s_color_hha", "onnx"),
                                           ("nyud_fcn32s_color_d", "torchscript")])
def test_predict_of_a_multi_input_or_head_export_equals_its_checkpoint(arch, fmt,
                                                                        tmp_path) -> None:
    from PIL import Image
    ckpt = _task_checkpoint(arch, tmp_path)
    export = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(ckpt), "--format", fmt, "--out", str(export),
                 "--height", "32", "--width", "32"]) == 0
    images = _scenes(tmp_path / "data", tiny_task_model(arch).input_names)
    for name, model in (("pt", ckpt), ("export", export)):
        assert main(["predict", "--checkpoint", str(model), str(images), "--out",
                     str(tmp_path / name), "--precision", "fp32", "--no-progress"]) == 0
    written = sorted(p.name for p in (tmp_path / "pt").glob("*_label.png"))
    assert written == sorted(p.name for p in (tmp_path / "export").glob("*_label.png"))
    assert len(written) == (4 if arch.startswith("siftflow") else 2)
    for name in written:
        got = np.asarray(Image.open(tmp_path / "export" / name))
        expected = np.asarray(Image.open(tmp_path / "pt" / name))
        assert (got != expected).sum() == 0, name


@pytest.mark.parametrize("arch", ["siftflow_fcn16s", "nyud_fcn32s_color_d"])
def test_info_describes_the_inputs_and_heads_of_an_export(arch, tmp_path, capsys) -> None:
    ckpt, export = _task_checkpoint(arch, tmp_path), tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(export),
                 "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert main(["info", str(export)]) == 0
    printed = capsys.readouterr().out
    if arch.startswith("siftflow"):
        assert "heads:       semantic 33 classes" in printed
        assert "geometric 3 classes: sky, horizontal, vertical" in printed
    else:
        assert "inputs:      color N×3×H×W RGB 0-255; depth N×1×H×W millimetres" in printed
