"""Exported models run by fcnseg like checkpoints, and graphs that end in an argmax."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from floats import assert_labels_match

from fcnseg.cli.main import main
from fcnseg.export import read_onnx_metadata
from fcnseg.inference import Segmenter

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")


def _image(h: int = 37, w: int = 45) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _export(ckpt: Path, out: Path, fmt: str = "onnx") -> Path:
    """``ckpt`` as ``fcnseg export`` writes it for 32×32 inputs, at ``out``."""
    assert main(["export", "--checkpoint", str(ckpt), "--format", fmt, "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    return out


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_an_export_predicts_what_its_checkpoint_predicts(fmt, suffix, export_checkpoint,
                                                         tmp_path) -> None:
    ckpt = export_checkpoint("same")
    out = _export(ckpt, tmp_path / f"model{suffix}", fmt)
    exported = Segmenter.from_checkpoint(out)
    original = Segmenter.from_checkpoint(ckpt, precision="fp32")
    assert exported.class_names == original.class_names
    assert exported.input_convention == original.input_convention
    assert exported.runtime == ("onnxruntime" if fmt == "onnx" else "torchscript")
    image = _image()
    got = exported.predict(image, return_probs=True)
    expected = original.predict(image, return_probs=True)
    assert_labels_match(got.label, expected.label, expected.probs)


def test_labels_out_graph_answers_uint8_labels_of_the_logits(export_checkpoint,
                                                             tmp_path) -> None:
    ckpt = export_checkpoint("caffe")
    logits_path, labels_path = tmp_path / "logits.onnx", tmp_path / "labels.onnx"
    for path, extra in ((logits_path, []), (labels_path, ["--labels-out"])):
        assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                     str(path), "--height", "32", "--width", "40", *extra]) == 0
    pixels = _image(41, 29).transpose(2, 0, 1)[None].astype(np.float32)
    pixels = np.concatenate([pixels, pixels[:, :, ::-1]])  # a batch of two
    logits = ort.InferenceSession(str(logits_path)).run(None, {"input": pixels})[0]
    labels = ort.InferenceSession(str(labels_path)).run(None, {"input": pixels})[0]
    assert labels.dtype == np.uint8 and labels.shape == (2, 41, 29)
    assert np.array_equal(labels, logits.argmax(1))
    assert read_onnx_metadata(labels_path)["outputs"] == "labels"
    # fcnseg runs it too: labels as one-hot scores.
    seg = Segmenter.from_checkpoint(labels_path)
    assert np.array_equal(seg.predict(pixels[0].transpose(1, 2, 0).astype(np.uint8)).label,
                          labels[0])


def test_normalized_input_export_still_runs_in_fcnseg(export_checkpoint, tmp_path) -> None:
    ckpt, out = export_checkpoint("same"), tmp_path / "norm.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx",
                 "--out", str(out),
                 "--height", "32", "--width", "32", "--input", "normalized"]) == 0
    assert read_onnx_metadata(out)["input_pixels"] == "normalized"
    image = _image()
    got = Segmenter.from_checkpoint(out).predict(image)
    expected = Segmenter.from_checkpoint(ckpt, precision="fp32").predict(image,
                                                                        return_probs=True)
    assert_labels_match(got.label, expected.label, expected.probs)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_onnx_file_without_fcnseg_metadata_is_one_line(tmp_path, capsys) -> None:
    out = tmp_path / "bare.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(out),
                      dynamo=False)
    (tmp_path / "a.png").write_bytes(b"")  # never read: the model is refused first
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "a.png"), "--out",
                 str(tmp_path / "pred")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks" in err and "fcnseg export" in err


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt,suffix,kind", [("onnx", ".onnx", "ONNX"),
                                             ("torchscript", ".ts", "TorchScript")])
def test_info_describes_an_export(fmt, suffix, kind, export_checkpoint, export_classes,
                                  tmp_path, capsys) -> None:
    out = _export(export_checkpoint("same"), tmp_path / f"model{suffix}", fmt)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported:    {kind}; takes RGB pixels 0-255" in printed
    assert ", ".join(export_classes) in printed and "geometry same" in printed


def test_a_labels_out_graph_answers_probabilities_of_exactly_0_and_1() -> None:
    # Its graph knows only the labels: fcnseg's probabilities (heatmaps, uncertainty,
    # evaluate's calibration) must then say "certain", not softmax([1, 0, 0]) = 0.58.
    from fcnseg.conventions import get_convention
    from fcnseg.models.exported import ArtifactInfo, ArtifactModel

    labels = torch.tensor([[[0, 2], [1, 1]]], dtype=torch.uint8)
    info = ArtifactInfo(runtime="onnxruntime", arch="fcn8s", geometry=None, num_classes=3,
                        convention=get_convention("torchvision_rgb"), raw_pixels=True,
                        labels_out=True, precision="int8")
    model = ArtifactModel(lambda x: labels, info)
    probs = model(torch.zeros(1, 3, 2, 2)).softmax(1)
    assert torch.equal(probs.argmax(1), labels.long())
    assert torch.equal(probs, torch.nn.functional.one_hot(labels.long(), 3)
                       .permute(0, 3, 1, 2).float())


@pytest.fixture(scope="module")
def recipe_checkpoint(tmp_path_factory) -> Path:
    """A tiny synthetic-class checkpoint whose recipe records a validation set and whose
    training recorded metrics, as a trained one does."""
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data import SYNTHETIC_CLASSES, palette_for
    from fcnseg.models import fcn8s

    torch.manual_seed(0)
    model = fcn8s(num_classes=len(SYNTHETIC_CLASSES), geometry="same", width=0.0625,
                  fc_channels=16)
    recipe = {"data": {"val": {"name": "synthetic", "num_images": 2, "size": 40, "seed": 5,
                               "split": "val"}}}
    path = tmp_path_factory.mktemp("recipe") / "trained.pt"
    return save_checkpoint(path, model, class_names=list(SYNTHETIC_CLASSES),
                           palette=palette_for(len(SYNTHETIC_CLASSES)), recipe=recipe,
                           metrics={"mean_iu": 0.4321, "pixel_acc": 0.9})


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_an_export_is_evaluated_on_its_checkpoints_validation_set(fmt, suffix,
                                                                  recipe_checkpoint, tmp_path,
                                                                  capsys) -> None:
    out = tmp_path / f"model{suffix}"
    assert main(["export", "--checkpoint", str(recipe_checkpoint), "--format", fmt,
                 "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--out", str(tmp_path / "ev"),
                 "--no-calibration"]) == 0
    assert "dataset from the checkpoint's recipe" in capsys.readouterr().out
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["num_images"] == 2 and report["dataset"]["seed"] == 5


def test_an_onnx_export_keeps_its_checkpoints_metrics(recipe_checkpoint, tmp_path,
                                                      capsys) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(recipe_checkpoint), "--format", "onnx",
                 "--out", str(out),
                 "--height", "32", "--width", "32"]) == 0
    assert read_onnx_metadata(out)["metrics"] == {"mean_iu": 0.4321, "pixel_acc": 0.9}
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "mean IU 43.21" in capsys.readouterr().out


def test_an_onnx_export_keeps_its_checkpoints_coco_categories(export_checkpoint, export_classes,
                                                              tmp_path) -> None:
    from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint

    coco = {"car": {"id": 3, "supercategory": "vehicle"}}
    ckpt = save_checkpoint(tmp_path / "coco.pt", build_model_from_checkpoint(
        load_checkpoint(export_checkpoint("same"))), class_names=export_classes,
        coco_categories=coco)
    out = _export(ckpt, tmp_path / "model.onnx")
    assert Segmenter.from_checkpoint(out).coco_categories == coco  # predict --format coco's ids


def _tampered(path: Path, out: Path) -> Path:
    """``path`` with its largest weight overwritten, its metadata kept as written."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    largest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(largest).copy()
    weights.flat[::7] = -weights.flat[::7]
    largest.CopyFrom(numpy_helper.from_array(weights, largest.name))
    onnx.save(proto, str(out))
    return out


def test_an_onnx_export_whose_weights_changed_says_so_once_on_load_and_in_info(
        export_checkpoint, tmp_path, capsys) -> None:
    written = _export(export_checkpoint("same"), tmp_path / "model.onnx")
    tampered = _tampered(written, tmp_path / "tampered.onnx")
    for path, changed in ((written, False), (tampered, True)):
        with pytest.warns() if changed else warnings.catch_warnings() as caught:
            if not changed:
                warnings.simplefilter("error")
            Segmenter.from_checkpoint(path)
        if changed:
            lines = [str(w.message) for w in caught if "changed since" in str(w.message)]
            assert len(lines) == 1 and "\n" not in lines[0] and str(path) in lines[0]
            assert "accuracy figures recorded in it no longer apply" in lines[0]
        capsys.readouterr()
        assert main(["info", str(path)]) == 0
        assert ("changed:     the file changed since fcnseg wrote it" in capsys.readouterr().out
                ) is changed


def test_an_onnx_export_with_its_weights_moved_to_external_data_has_not_changed(
        export_checkpoint, tmp_path) -> None:
    import onnx

    from fcnseg.weightfiles.artifacts import read_onnx

    written = _export(export_checkpoint("same"), tmp_path / "model.onnx")
    moved = tmp_path / "moved.onnx"
    onnx.save(onnx.load(str(written)), str(moved), save_as_external_data=True,
              location="moved.onnx.data", size_threshold=0)
    assert read_onnx(moved)[1]["changed"] is False
    data = tmp_path / "moved.onnx.data"
    weights = bytearray(data.read_bytes())
    weights[:4] = bytes(255 - b for b in weights[:4])  # one weight changed
    data.write_bytes(bytes(weights))
    assert read_onnx(moved)[1]["changed"] is True


def test_an_onnx_export_whose_metadata_another_tool_edited_has_not_changed(
        export_checkpoint, tmp_path) -> None:
    import onnx

    from fcnseg.weightfiles.artifacts import read_onnx

    written = _export(export_checkpoint("same"), tmp_path / "model.onnx")
    proto = onnx.load(str(written))
    onnx.helper.set_model_props(proto, {**{e.key: e.value for e in proto.metadata_props},
                                        "author": "someone else"})
    proto.producer_name, proto.model_version = "another tool", 7
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, str(edited))
    assert read_onnx(edited)[1]["changed"] is False


def test_protobuf_fields_gives_each_top_level_fields_number_and_bytes() -> None:
    from fcnseg.weightfiles.artifacts import protobuf_fields

    message = b"\x08\x96\x01" + b"\x12\x03abc" + b"\x1d1234"  # varint 150, "abc", fixed32
    assert [(n, bytes(data)) for n, data in protobuf_fields(message)] == [
        (1, b""), (2, b"abc"), (3, b"1234")]


def test_an_unchanged_onnx_export_loaded_twice_has_its_graph_hashed_once(
        export_checkpoint, tmp_path, monkeypatch) -> None:
    from fcnseg.weightfiles import artifacts

    written = _export(export_checkpoint("same"), tmp_path / "model.onnx")
    hashed, digest = [], artifacts._file_graph_digest

    def counted(raw: bytes) -> str | None:
        hashed.append(len(raw))
        return digest(raw)

    monkeypatch.setattr(artifacts, "_file_graph_digest", counted)
    assert [artifacts.read_onnx(written)[1]["changed"] for _ in range(2)] == [False, False]
    assert len(hashed) == 1


def test_an_onnx_export_overwritten_after_a_load_is_found_changed_on_the_next(
        export_checkpoint, tmp_path) -> None:
    from fcnseg.weightfiles.artifacts import read_onnx

    written = _export(export_checkpoint("same"), tmp_path / "model.onnx")
    assert read_onnx(written)[1]["changed"] is False
    _tampered(written, written)
    assert read_onnx(written)[1]["changed"] is True


def test_protobuf_fields_gives_no_field_whose_length_is_cut_off() -> None:
    from fcnseg.weightfiles.artifacts import protobuf_fields

    given = []
    with pytest.raises(ValueError, match="cut off"):
        given.extend(n for n, _ in protobuf_fields(b"\x12\x03abc" + b"\x2a"))  # 5: no length
    assert given == [2]
