"""Exported graphs take raw pixels: a deployment feeds a photo's RGB values and nothing else."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tiny_models import export_description

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.data import SyntheticSegmentation
from fcnseg.export.onnx_export import export_onnx
from fcnseg.inference import Segmenter

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")


def _photo() -> np.ndarray:
    """A 96×128 photo-like RGB image: a textured scene with sensor noise, through JPEG."""
    scene, _ = SyntheticSegmentation(1, (96, 128), seed=5)[0]
    noisy = scene + np.random.default_rng(1).normal(0, 6, scene.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return np.array(Image.open(buffer).convert("RGB"))


@pytest.mark.parametrize("geometry", ["caffe", "same"])
def test_onnx_on_raw_pixels_labels_a_photo_as_predict_does(geometry, export_checkpoint,
                                                            tmp_path) -> None:
    ckpt = load_checkpoint(export_checkpoint(geometry))
    model = build_model_from_checkpoint(ckpt)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, description=export_description(model, arch=model.arch),
                sample_size=(64, 80))
    photo = _photo()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = photo.transpose(2, 0, 1)[None].astype(np.float32)  # RGB 0-255, no other step
    exported = session.run(None, {session.get_inputs()[0].name: raw})[0].argmax(1)[0]
    segmenter = Segmenter(model, class_names=ckpt["classes"]["names"],
                          palette=ckpt["classes"]["palette"], precision="fp32")
    predicted = segmenter.predict(photo).label
    assert len(np.unique(predicted)) > 1, "the fixture model should not predict one class"
    assert int((exported != predicted).sum()) == 0
