"""Serving a multi-band model: the API takes a multi-band TIFF of its bands, segments it whole,
and draws the red, green and blue bands stretched 2/98 (the picture and the overlay)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from fastapi.testclient import TestClient
from PIL import Image

from fcnseg.checkpoint import save_checkpoint
from fcnseg.conventions import band_convention
from fcnseg.data.palette import voc_palette
from fcnseg.data.rasters import display_rgb
from fcnseg.inference import Segmenter
from fcnseg.models import build_model
from fcnseg.serve.app import create_app

BANDS = ["nir", "red", "green", "blue", "swir1"]
CLASSES = ["background", "vegetation", "bare"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    torch.manual_seed(0)
    convention = band_convention(BANDS, [2000.0, 1000.0, 1100.0, 900.0, 1500.0],
                                 [500.0, 300.0, 300.0, 250.0, 400.0])
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    with torch.no_grad():  # random scorers: the labels vary over the image
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(model.head, name).weight.normal_(0.0, 0.5)
            getattr(model.head, name).bias.normal_(0.0, 0.5)
    path = save_checkpoint(tmp_path_factory.mktemp("bands") / "bands.pt", model,
                           class_names=CLASSES, palette=voc_palette())
    segmenter = Segmenter.from_checkpoint(path, precision="fp32")
    with TestClient(create_app(segmenter, max_concurrency=1)) as c:
        c.segmenter = segmenter  # type: ignore[attr-defined]
        yield c


def _raster(height: int = 40, width: int = 56) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(0)
    image = (rng.random((height, width, len(BANDS))) * 4000 + 500).astype(np.uint16)
    image[:, : width // 2, 1] += 3000  # a brighter red half: the stretch shows it
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, photometric="minisblack", planarconfig="contig")
    return image, buf.getvalue()


def _png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_model_info_lists_the_bands(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["input_convention"]["bands"] == BANDS


def test_a_multiband_tiff_is_segmented_as_the_model_predicts_it(client: TestClient) -> None:
    image, data = _raster()
    answer = client.post("/v1/segment?format=json", files={"image": ("s.tif", data)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["width"], body["height"]) == (56, 40)
    seg = client.segmenter  # type: ignore[attr-defined]
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    expected = seg.logits(x).argmax(1)[0].numpy()
    label = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_png"]))))
    np.testing.assert_array_equal(label, expected)
    png = client.post("/v1/segment", content=data, headers={"Content-Type": "image/tiff"})
    assert png.status_code == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), expected)


def test_the_picture_and_overlay_draw_the_rgb_bands_stretched(client: TestClient) -> None:
    image, data = _raster()
    body = client.post("/v1/segment?format=json&overlay=true",
                       files={"image": ("s.tif", data)}).json()
    picture = display_rgb(image, BANDS, ("red", "green", "blue"))
    assert picture[:, :28, 0].mean() > picture[:, 28:, 0].mean() + 100  # red band, stretched
    np.testing.assert_array_equal(_png(body["image_png"]), picture)
    label = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_png"]))))
    background = label == 0
    assert background.any() and (~background).any()
    overlay = _png(body["overlay_png"])
    # The background is left as the picture; the classes are blended over it.
    np.testing.assert_array_equal(overlay[background], picture[background])
    assert (overlay[~background] != picture[~background]).any()


def test_a_colour_image_is_refused_naming_the_bands(client: TestClient, tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(buf, format="PNG")
    answer = client.post("/v1/segment", files={"image": ("p.png", buf.getvalue())})
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("upload: 3 band(s), but the model takes 5 (nir, red, "
                                       "green, blue, swir1): segment it with a model trained on "
                                       "these bands")


def test_a_file_that_is_no_image_is_415(client: TestClient) -> None:
    answer = client.post("/v1/segment", files={"image": ("x.tif", b"hello, not a raster")})
    assert answer.status_code == 415


def test_a_truncated_tiff_is_one_line_about_the_upload(client: TestClient) -> None:
    _, data = _raster()
    answer = client.post("/v1/segment", files={"image": ("s.tif", data[:200])})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("upload: ") and "\n" not in detail and "fcnseg-upload" not in detail
