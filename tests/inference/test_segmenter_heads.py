"""Segmenter with a model of several heads (SIFT Flow) and one of several inputs (NYUDv2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from floats import assert_labels_match
from PIL import Image
from tiny_models import tiny_task_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.pretrained.reference import NYUD_CLASSES, SIFT_FLOW_CLASSES

GEOMETRIC = ["sky", "horizontal", "vertical"]


@pytest.fixture
def siftflow_checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "sift.pt", tiny_task_model("siftflow_fcn16s"),
                           class_names=list(SIFT_FLOW_CLASSES), palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": GEOMETRIC})


def test_a_two_headed_model_predicts_each_head(siftflow_checkpoint: Path) -> None:
    seg = Segmenter.from_checkpoint(siftflow_checkpoint, precision="fp32")
    rgb = np.random.default_rng(0).integers(0, 256, (41, 37, 3), dtype=np.uint8)
    pred = seg.predict(rgb, return_probs=True)
    assert list(pred.heads) == ["semantic", "geometric"]
    geo = pred.heads["geometric"]
    assert geo.class_names == tuple(GEOMETRIC) and geo.probs.shape == (3, 41, 37)
    with torch.no_grad():
        logits = seg.model(seg.preprocess(rgb))
    for head, p in pred.heads.items():
        assert_labels_match(p.label, logits[head][0].argmax(0).numpy(), logits[head][0])
    assert np.array_equal(pred.label, pred.heads["semantic"].label)  # the first head's
    assert seg.describe()["heads"]["geometric"] == GEOMETRIC


def test_a_fusion_model_says_it_needs_more_than_an_image(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "rgbhha.pt", tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    seg = Segmenter.from_checkpoint(ckpt)
    with pytest.raises(ValueError, match=r"takes the inputs \['color', 'hha'\]"):
        seg.predict(np.zeros((32, 32, 3), np.uint8))


@pytest.fixture
def rgbd_segmenter(tmp_path: Path) -> Segmenter:
    ckpt = save_checkpoint(tmp_path / "rgbd.pt", tiny_task_model("nyud_fcn32s_color_d"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    return Segmenter.from_checkpoint(ckpt, precision="fp32")


COLOR = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_a_fusion_model_points_predict_to_predict_inputs(rgbd_segmenter: Segmenter) -> None:
    with pytest.raises(ValueError, match=r"Segmenter.predict_inputs\(\{'color': \.\.\., "
                                         r"'depth': \.\.\.\}\)") as e:
        rgbd_segmenter.predict(COLOR)
    assert "call the model" not in str(e.value)


def test_depth_in_metres_from_a_float_tiff_is_refused_naming_the_file(
        rgbd_segmenter: Segmenter, tmp_path: Path) -> None:
    path = tmp_path / "depth.tif"
    Image.fromarray(np.linspace(0.4, 9.8, 24 * 32, dtype=np.float32).reshape(24, 32)).save(path)
    with pytest.raises(ValueError) as e:
        rgbd_segmenter.predict_inputs({"color": COLOR, "depth": path})
    assert str(e.value) == (f"{path}: depth values 0.4–9.8 look like metres; NYUDv2 depth is "
                            f"millimetres (×1000)")


def test_an_8_bit_depth_picture_is_refused_by_predict_inputs(
        rgbd_segmenter: Segmenter, tmp_path: Path) -> None:
    path = tmp_path / "depth8.png"
    Image.fromarray(np.full((24, 32), 41, np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"depth8.png: 8-bit depth image \(values 41–41\)"):
        rgbd_segmenter.predict_inputs({"color": COLOR, "depth": path})


def test_a_depth_array_in_metres_is_refused(rgbd_segmenter: Segmenter) -> None:
    with pytest.raises(ValueError, match=r"^<depth array>: depth values 2–2 look like metres"):
        rgbd_segmenter.predict_inputs({"color": COLOR, "depth": np.full((24, 32), 2.0)})


def test_depth_in_millimetres_is_read_as_stored(rgbd_segmenter: Segmenter,
                                                 tmp_path: Path) -> None:
    depth = np.random.default_rng(2).integers(500, 9000, (24, 32)).astype(np.uint16)
    Image.fromarray(depth).save(tmp_path / "depth.png")
    from_file = rgbd_segmenter.predict_inputs({"color": COLOR, "depth": tmp_path / "depth.png"})
    from_array = rgbd_segmenter.predict_inputs({"color": COLOR, "depth": depth})
    np.testing.assert_array_equal(from_file.label, from_array.label)


def test_a_grey_hha_file_is_refused(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "rgbhha.pt", tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    path = tmp_path / "hha.png"
    Image.fromarray(np.full((24, 32), 90, np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"hha.png: HHA image has shape \(24, 32\): expected 3 "
                                         r"channels of 8 bits"):
        Segmenter.from_checkpoint(ckpt).predict_inputs({"color": COLOR, "hha": path})


def test_an_hha_model_refuses_a_grey_hha_file_in_predict_and_the_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fcnseg.cli.main import main

    ckpt = save_checkpoint(tmp_path / "hha.pt", tiny_task_model("nyud_fcn32s_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    grey, good = tmp_path / "grey.png", tmp_path / "good.png"
    Image.fromarray(np.full((24, 32), 90, np.uint8)).save(grey)
    Image.fromarray(COLOR).save(good)
    seg = Segmenter.from_checkpoint(ckpt)
    with pytest.raises(ValueError, match=r"grey.png: HHA image has shape \(24, 32\)"):
        seg.predict(grey)
    assert seg.predict(good).label.shape == (24, 32)
    assert main(["predict", "--checkpoint", str(ckpt), str(grey), str(good), "--out",
                 str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 1
    assert "grey.png: HHA image has shape (24, 32): expected 3 channels" in capsys.readouterr().err
    assert (tmp_path / "out" / "good_label.png").is_file()
