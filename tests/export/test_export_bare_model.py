"""A bare network (built with ``preprocess=False``) exports as what it is: a graph taking
normalised input, recorded so in its metadata, so that a Segmenter normalises before it."""

from __future__ import annotations

import numpy as np
import pytest

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.export.common import ExportError
from fcnseg.export.onnx_export import export_onnx
from fcnseg.export.torchscript import export_torchscript
from fcnseg.inference import Segmenter
from fcnseg.weightfiles.artifacts import read_artifact

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")


@pytest.fixture()
def full_and_bare(export_checkpoint):
    ckpt = load_checkpoint(export_checkpoint("same"))
    full = build_model_from_checkpoint(ckpt)
    bare = build_model_from_checkpoint(ckpt, preprocess=False)
    seg = Segmenter(full, class_names=ckpt["classes"]["names"],
                    palette=ckpt["classes"]["palette"], precision="fp32")
    return seg, bare


def _image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_bare_model_export_records_normalised_input_and_predicts_as_the_full_model(
        kind, full_and_bare, tmp_path) -> None:
    seg, bare = full_and_bare
    path = tmp_path / ("bare.onnx" if kind == "onnx" else "bare.pt")
    export = export_onnx if kind == "onnx" else export_torchscript
    export(bare, path, description=seg.describe(), sample_size=(48, 64))
    assert read_artifact(path)["artifact"]["input_pixels"] == "normalized"
    exported = Segmenter.from_checkpoint(path, precision="fp32").predict(_image()).label
    expected = seg.predict(_image()).label
    assert len(np.unique(expected)) > 1
    assert int((exported != expected).sum()) == 0


def test_asking_raw_pixels_of_a_bare_model_is_one_line(full_and_bare, tmp_path) -> None:
    seg, bare = full_and_bare
    with pytest.raises(ExportError, match="preprocess=False") as e:
        export_onnx(bare, tmp_path / "bare.onnx", description=seg.describe(),
                    sample_size=(48, 64), raw_pixels=True)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "bare.onnx").exists()


def test_quantizing_a_bare_model_is_one_line(full_and_bare, tmp_path) -> None:
    from fcnseg.export.quantize import QuantizeError, quantize_model

    seg, bare = full_and_bare
    with pytest.raises(QuantizeError, match="preprocess=False"):
        quantize_model(bare, tmp_path / "bare.int8.onnx", description=seg.describe(),
                       calibration=lambda: iter([_image()]), log=lambda line: None)
    assert not (tmp_path / "bare.int8.onnx").exists()
