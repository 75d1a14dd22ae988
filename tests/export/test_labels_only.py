"""A model exported with labels only (``--labels-out``) has no probabilities: the options that
need them are refused in one line, and evaluate leaves calibration out saying why."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data.synthetic import SyntheticSegmentation
from fcnseg.export import read_onnx_metadata
from fcnseg.inference import Segmenter

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

DATA = ["--dataset", "synthetic", "--num-images", "2", "--size", "40x48"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint(list(SyntheticSegmentation.classes), "same")


def _export(checkpoint: Path, out: Path, *extra: str) -> Path:
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out",
                 str(out), "--height", "32", "--width", "32", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def labels_model(checkpoint, tmp_path_factory) -> Path:
    return _export(checkpoint, tmp_path_factory.mktemp("labels") / "m.onnx", "--labels-out")


@pytest.fixture(scope="module")
def logits_model(checkpoint, tmp_path_factory) -> Path:
    return _export(checkpoint, tmp_path_factory.mktemp("logits") / "m.onnx")


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def test_a_segmenter_knows_a_labels_out_model_has_no_probabilities(labels_model,
                                                                     logits_model) -> None:
    assert Segmenter.from_checkpoint(labels_model).labels_only
    assert not Segmenter.from_checkpoint(logits_model).labels_only


@pytest.mark.parametrize("options", [["--probs"], ["--uncertainty"], ["--heatmaps", "disc"],
                                     ["--rank", "uncertainty"]])
def test_predict_refuses_probability_outputs_of_a_labels_only_model(labels_model, photo,
                                                                    tmp_path, capsys, options):
    out = tmp_path / "preds"
    assert main(["predict", "--checkpoint", str(labels_model), str(photo), "--out", str(out),
                 *options]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(labels_model) in err and options[0] in err
    assert "labels only" in err and "without --labels-out" in err
    assert not out.exists()  # refused before anything was written


def test_predict_still_writes_the_labels_of_a_labels_only_model(labels_model, photo, tmp_path):
    out = tmp_path / "preds"
    assert main(["predict", "--checkpoint", str(labels_model), str(photo), "--out",
                 str(out)]) == 0
    assert (out / "photo_label.png").is_file()


def test_serve_refuses_a_heatmap_of_a_labels_only_model(labels_model, logits_model) -> None:
    from fcnseg.serve.errors import RequestError
    from fcnseg.serve.segment import heatmap_options

    assert heatmap_options("disc", Segmenter.from_checkpoint(logits_model))["heatmap_classes"]
    with pytest.raises(RequestError) as refused:
        heatmap_options("disc", Segmenter.from_checkpoint(labels_model))
    assert refused.value.status_code == 400
    # A client sees the model's file name, never where the server keeps it.
    detail = refused.value.detail
    assert labels_model.name in detail and str(labels_model.parent) not in detail
    assert "--labels-out" in detail
    assert heatmap_options(None, Segmenter.from_checkpoint(labels_model)) == \
        {"heatmap_classes": ()}


def test_evaluate_skips_calibration_of_a_labels_only_model_saying_why(labels_model, tmp_path,
                                                                      capsys) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(labels_model), *DATA, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "expected calibration error" not in printed
    skipped = [line for line in printed.splitlines() if "calibration skipped" in line]
    assert len(skipped) == 1 and str(labels_model) in skipped[0]
    report = json.loads((out / "report.json").read_text())
    assert "calibration" not in report and "labels only" in report["calibration_skipped"]
    assert not (out / "reliability.png").exists()
    assert "mean_iu" in report["metrics"]


@pytest.mark.parametrize("which", ["labels_model", "logits_model"])
def test_calibrate_refuses_an_exported_model_before_any_work(which, request, tmp_path,
                                                             capsys) -> None:
    model = request.getfixturevalue(which)
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--checkpoint", str(model), *DATA, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(model) in err and "cannot be calibrated" in err and "checkpoint (.pt)" in err
    assert not out.exists()


def test_segmenter_refuses_probabilities_of_a_labels_only_model_in_one_line(labels_model,
                                                                            photo) -> None:
    seg = Segmenter.from_checkpoint(labels_model)
    assert seg.predict(photo).label.shape == (24, 32)  # labels it gives
    with pytest.raises(ValueError, match=r"return_probs=True: .*m\.onnx was exported with "
                                         r"labels only") as e:
        seg.predict(photo, return_probs=True)
    assert len(str(e.value).splitlines()) == 1


def test_a_labels_out_graph_names_its_output_labels(labels_model, logits_model) -> None:
    import onnxruntime as ort

    labels = ort.InferenceSession(str(labels_model)).get_outputs()
    assert [(o.name, o.type) for o in labels] == [("labels", "tensor(uint8)")]
    assert [o.name for o in ort.InferenceSession(str(logits_model)).get_outputs()] == ["logits"]
    assert "'labels'" in read_onnx_metadata(labels_model)["output"]


@pytest.fixture(scope="module")
def old_labels_model(labels_model, tmp_path_factory) -> Path:
    """``labels_model`` as fcnseg wrote it before its output was named ``labels``: the uint8
    labels in an output named ``logits``, and the metadata of then."""
    import onnx

    from fcnseg.export.onnx_export import set_metadata

    proto = onnx.load(str(labels_model))
    # The old names: the logits tensor "logits_logits", the argmax "logits_argmax".
    old = {"logits": "logits_logits", "labels_argmax": "logits_argmax", "labels": "logits"}
    for node in proto.graph.node:
        node.input[:] = [old.get(i, i) for i in node.input]
        node.output[:] = [old.get(o, o) for o in node.output]
    proto.graph.output[0].name = "logits"
    meta = {e.key: e.value for e in proto.metadata_props}
    meta["output"] = json.dumps("N×H×W labels (uint8; int32 past 256 classes): the argmax "
                                "over the classes of the logits")
    set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    path = tmp_path_factory.mktemp("old") / "old.onnx"
    onnx.save(proto, str(path))
    return path


def test_a_labels_out_file_of_the_old_output_name_still_segments(old_labels_model,
                                                                labels_model, photo) -> None:
    import onnxruntime as ort

    assert [o.name for o in ort.InferenceSession(str(old_labels_model)).get_outputs()] == \
        ["logits"]
    old = Segmenter.from_checkpoint(old_labels_model)
    assert old.labels_only
    np.testing.assert_array_equal(old.predict(photo).label,
                                  Segmenter.from_checkpoint(labels_model).predict(photo).label)


def test_predict_and_info_run_a_labels_out_file_of_the_old_output_name(old_labels_model, photo,
                                                                      tmp_path, capsys) -> None:
    out = tmp_path / "preds"
    assert main(["predict", "--checkpoint", str(old_labels_model), str(photo), "--out",
                 str(out)]) == 0
    assert (out / "photo_label.png").is_file()
    capsys.readouterr()
    assert main(["info", str(old_labels_model)]) == 0
    assert "answers uint8 labels" in capsys.readouterr().out


def test_evaluate_runs_a_labels_out_file_of_the_old_output_name(old_labels_model, tmp_path,
                                                                capsys) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(old_labels_model), *DATA, "--out",
                 str(out)]) == 0
    assert "mean_iu" in json.loads((out / "report.json").read_text())["metrics"]


def test_serve_runs_a_labels_out_file_of_the_old_output_name(old_labels_model, photo) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fcnseg.serve import create_app

    seg = Segmenter.from_checkpoint(old_labels_model)
    with TestClient(create_app(seg)) as client:
        r = client.post("/v1/segment", files={"image": ("a.png", photo.read_bytes(),
                                                        "image/png")})
    assert r.status_code == 200
    label = np.asarray(Image.open(io.BytesIO(r.content)))
    np.testing.assert_array_equal(label, seg.predict(photo).label)
