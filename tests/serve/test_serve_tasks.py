"""The service with a model of several heads (SIFT Flow) and one of several inputs (NYUDv2
colour + HHA): each head in the answer, one file per modality in the request."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import distinct_palette, voc_palette
from fcnseg.inference import Segmenter
from fcnseg.pretrained.reference import NYUD_CLASSES
from fcnseg.serve import create_app

GEOMETRIC_CLASSES = ["sky", "horizontal", "vertical"]


@pytest.fixture
def sift_client(siftflow_segmenter: Segmenter) -> Iterator[TestClient]:
    with TestClient(create_app(siftflow_segmenter)) as c:
        yield c


@pytest.fixture
def fusion_client(fusion_segmenter: Segmenter) -> Iterator[TestClient]:
    with TestClient(create_app(fusion_segmenter, max_pixels=64 * 64)) as c:
        yield c


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR))


def _label(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _pair(h: int = 40, w: int = 48) -> tuple[np.ndarray, np.ndarray, dict]:
    color, hha = _image(h, w, 1), _image(h, w, 2)
    files = {"color": ("c.png", _png(color), "image/png"), "hha": ("h.png", _png(hha),
                                                                    "image/png")}
    return color, hha, files


def test_json_answer_gives_each_heads_result(sift_client, siftflow_segmenter) -> None:
    pixels = _image(40, 48, 0)
    r = sift_client.post("/v1/segment", params={"format": "json", "overlay": "true"},
                         files={"image": ("a.png", _png(pixels), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = siftflow_segmenter.predict(pixels)
    assert set(body["heads"]) == {"semantic", "geometric"}
    for head, pred in expected.heads.items():
        answer = body["heads"][head]
        np.testing.assert_array_equal(_label(answer["label_png"]), pred.label)
        assert answer["pixel_counts"] == pred.class_pixel_counts()
        assert answer["class_names"] == list(pred.class_names)
        assert Image.open(io.BytesIO(base64.b64decode(answer["overlay_png"]))).size == (48, 40)
    # Well-separated colours, none black: the geometric overlay does not darken the photo.
    geometric = body["heads"]["geometric"]["palette"]
    assert geometric == distinct_palette(["sky", "horizontal", "vertical"])[:3].tolist()
    np.testing.assert_array_equal(_label(body["label_png"]), expected.heads["semantic"].label)


def test_heatmaps_are_given_for_the_heads_that_have_the_class(sift_client) -> None:
    r = sift_client.post("/v1/segment", params={"format": "json", "heatmap": "horizontal,sky"},
                         files={"image": ("a.png", _png(_image(32, 32, 0)), "image/png")})
    assert r.status_code == 200, r.text
    heads = r.json()["heads"]
    assert set(heads["geometric"]["heatmaps"]) == {"horizontal", "sky"}
    assert set(heads["semantic"]["heatmaps"]) == {"sky"}


def test_unknown_heatmap_class_of_every_head_is_refused(sift_client) -> None:
    r = sift_client.post("/v1/segment", params={"format": "json", "heatmap": "unicorn"},
                         files={"image": ("a.png", _png(_image(32, 32, 0)), "image/png")})
    assert r.status_code == 400 and "unicorn" in r.json()["detail"]


@pytest.mark.parametrize("number", ["²", "9" * 5_000])
def test_heatmap_numbers_that_are_no_class_index_of_any_head_are_a_400(sift_client,
                                                                       number) -> None:
    r = sift_client.post("/v1/segment", params={"format": "json", "heatmap": number},
                         files={"image": ("a.png", _png(_image(32, 32, 0)), "image/png")})
    assert r.status_code == 400 and r.json()["detail"].startswith("heatmap: unknown class")


def test_png_answer_of_several_heads_is_the_first_heads_label_map(sift_client,
                                                                  siftflow_segmenter) -> None:
    pixels = _image(40, 48, 0)
    r = sift_client.post("/v1/segment", files={"image": ("a.png", _png(pixels), "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))),
                                  siftflow_segmenter.predict(pixels).heads["semantic"].label)


def test_model_lists_its_heads_and_inputs(sift_client, fusion_client) -> None:
    sift = sift_client.get("/v1/model").json()
    assert sift["input_names"] == ["color"]
    assert sift["heads"]["geometric"]["class_names"] == GEOMETRIC_CLASSES
    fused = fusion_client.get("/v1/model").json()
    assert fused["input_names"] == ["color", "hha"] and fused["heads"] == {}


def test_fusion_model_segments_one_file_per_modality(fusion_client, fusion_segmenter) -> None:
    color, hha, files = _pair()
    r = fusion_client.post("/v1/segment", params={"format": "json", "overlay": "true"},
                           files=files)
    assert r.status_code == 200, r.text
    expected = fusion_segmenter.predict_inputs({"color": color, "hha": hha})
    np.testing.assert_array_equal(_label(r.json()["label_png"]), expected.label)
    assert r.json()["pixel_counts"] == expected.class_pixel_counts()


def test_fusion_request_without_a_modality_names_it(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", files={"color": files["color"]})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("missing the 'hha' file")
    assert "'color', 'hha'" in r.json()["detail"]


def test_fusion_request_with_an_extra_field_names_it(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", files={**files, "depth": files["hha"]})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("unexpected file field 'depth'")


def test_fusion_request_with_one_image_field_names_the_fields_needed(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", files={"image": files["color"]})
    assert r.status_code == 400
    assert "'image'" in r.json()["detail"] and "'color', 'hha'" in r.json()["detail"]


def test_fusion_request_as_a_raw_image_body_is_refused(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", content=files["color"][1],
                           headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    assert "multipart" in r.json()["detail"] and "'hha'" in r.json()["detail"]


def test_fusion_inputs_of_different_sizes_are_refused(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", files={
        "color": files["color"], "hha": ("h.png", _png(_image(32, 48, 2)), "image/png")})
    assert r.status_code == 400
    assert "color 48×40, hha 48×32" in r.json()["detail"]


def test_fusion_upload_that_is_no_image_names_its_field(fusion_client) -> None:
    _, _, files = _pair()
    r = fusion_client.post("/v1/segment", files={"color": files["color"],
                                                 "hha": ("h.txt", b"not an image", "text/plain")})
    assert r.status_code == 415 and r.json()["detail"].startswith("hha: ")


def test_fusion_upload_over_the_pixel_limit_names_its_field(fusion_client) -> None:
    _, _, files = _pair(80, 80)
    r = fusion_client.post("/v1/segment", files=files)
    assert r.status_code == 413 and r.json()["detail"].startswith("color: ")


def test_early_fusion_takes_a_16_bit_depth_png(tmp_path: Path, tiny_task_model) -> None:
    ckpt = save_checkpoint(tmp_path / "rgbd.pt", tiny_task_model("nyud_fcn32s_color_d"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    seg = Segmenter.from_checkpoint(ckpt, precision="fp32")
    color = _image(32, 40, 3)
    depth = np.random.default_rng(0).integers(500, 5000, (32, 40)).astype(np.uint16)
    with TestClient(create_app(seg)) as client:
        r = client.post("/v1/segment", params={"format": "json"},
                        files={"color": ("c.png", _png(color), "image/png"),
                               "depth": ("d.png", _png(depth), "image/png")})
    assert r.status_code == 200, r.text
    expected = seg.predict_inputs({"color": color, "depth": depth.astype(np.float32)})
    np.testing.assert_array_equal(_label(r.json()["label_png"]), expected.label)


def test_fusion_request_with_a_modality_sent_twice_names_the_field(fusion_client) -> None:
    _, _, files = _pair()
    other = ("c2.png", _png(_image(40, 48, 7)), "image/png")
    r = fusion_client.post("/v1/segment", files=[("color", files["color"]), ("color", other),
                                                 ("hha", files["hha"])])
    assert r.status_code == 400
    assert r.json()["detail"].startswith("the field 'color' is sent more than once")


def test_a_depth_upload_in_metres_is_refused_naming_its_field(tmp_path: Path,
                                                              tiny_task_model) -> None:
    ckpt = save_checkpoint(tmp_path / "rgbd.pt", tiny_task_model("nyud_fcn32s_color_d"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    metres = np.full((32, 40), 3, np.uint16)
    with TestClient(create_app(Segmenter.from_checkpoint(ckpt))) as client:
        r = client.post("/v1/segment", files={"color": ("c.png", _png(_image(32, 40, 3)),
                                                        "image/png"),
                                              "depth": ("d.png", _png(metres), "image/png")})
    assert r.status_code == 400
    assert r.json()["detail"] == ("depth: depth values 3–3 look like metres; NYUDv2 depth is "
                                  "millimetres (×1000)")


def test_the_onnx_export_of_a_fusion_model_serves_as_its_checkpoint(fusion_segmenter,
                                                                     tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from fcnseg.cli.main import main

    export = tmp_path / "fusion.onnx"
    assert main(["export", "--checkpoint", str(fusion_segmenter.checkpoint_path), "--format",
                 "onnx", "--out", str(export), "--height", "32", "--width", "32"]) == 0
    color, hha, files = _pair()
    with TestClient(create_app(Segmenter.from_checkpoint(export), max_pixels=64 * 64)) as c:
        assert c.get("/v1/model").json()["input_names"] == ["color", "hha"]
        r = c.post("/v1/segment", params={"format": "json"}, files=files)
    assert r.status_code == 200, r.text
    expected = fusion_segmenter.predict_inputs({"color": color, "hha": hha})
    np.testing.assert_array_equal(_label(r.json()["label_png"]), expected.label)
