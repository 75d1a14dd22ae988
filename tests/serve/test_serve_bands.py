"""Serving a multi-band model: the API takes a multi-band TIFF of its bands, segments it whole,
and draws the red, green and blue bands stretched 2/98 (the picture and the overlay)."""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from fastapi.testclient import TestClient
from geotags import GEOTIFF_TAGS
from PIL import Image
from tiny_models import tiny_band_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.data.rasters import display_rgb
from fcnseg.inference import Segmenter
from fcnseg.serve.app import create_app

BANDS = ["nir", "red", "green", "blue", "swir1"]
CLASSES = ["background", "vegetation", "bare"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    model = tiny_band_model(BANDS, [2000.0, 1000.0, 1100.0, 900.0, 1500.0],
                            [500.0, 300.0, 300.0, 250.0, 400.0])
    path = save_checkpoint(tmp_path_factory.mktemp("bands") / "bands.pt", model,
                           class_names=CLASSES, palette=voc_palette())
    segmenter = Segmenter.from_checkpoint(path, precision="fp32")
    with TestClient(create_app(segmenter, max_concurrency=1)) as c:
        c.segmenter = segmenter  # type: ignore[attr-defined]
        yield c


def _raster(height: int = 40, width: int = 56,
            extratags: Sequence[Any] = ()) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(0)
    image = (rng.random((height, width, len(BANDS))) * 4000 + 500).astype(np.uint16)
    image[:, : width // 2, 1] += 3000  # a brighter red half: the stretch shows it
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, photometric="minisblack", planarconfig="contig",
                     extratags=extratags)
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


def test_an_8_bit_upload_to_a_model_of_more_than_8_bits_is_refused_in_one_line(
        client: TestClient) -> None:
    image, _ = _raster()
    buf = io.BytesIO()
    tifffile.imwrite(buf, (image // 257).astype(np.uint8), photometric="minisblack",
                     planarconfig="contig")
    answer = client.post("/v1/segment", files={"image": ("s8.tif", buf.getvalue())})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(
        "upload: 8-bit samples (uint8), but the model was trained on values beyond 8 bits "
        "(band nir: mean 2000, std 500): its values lie on another scale")


def test_a_fiji_hyperstack_of_the_models_channels_is_segmented_as_its_bands(
        client: TestClient) -> None:
    image, data = _raster()
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.moveaxis(image, -1, 0), imagej=True, metadata={"axes": "CYX"})
    stacked = client.post("/v1/segment", files={"image": ("fiji.tif", buf.getvalue())})
    assert stacked.status_code == 200, stacked.text
    assert stacked.content == client.post("/v1/segment", files={"image": ("s.tif", data)}).content


def test_a_raster_over_the_pixel_limit_names_the_option_that_raises_it(
        client: TestClient) -> None:
    _, data = _raster()  # 56×40
    app = create_app(client.segmenter, max_concurrency=1, max_pixels=1000)  # type: ignore[attr-defined]
    with TestClient(app) as small:
        answer = small.post("/v1/segment", files={"image": ("mosaic.tif", data)})
    assert answer.status_code == 413
    assert answer.json()["detail"] == ("upload: 56×40 = 2240 pixels is over the limit of 1000 "
                                       "pixels (fcnseg serve --max-pixels PIXELS raises it)")


def test_a_file_that_is_no_image_is_415(client: TestClient) -> None:
    answer = client.post("/v1/segment", files={"image": ("x.tif", b"hello, not a raster")})
    assert answer.status_code == 415


def test_a_truncated_tiff_is_one_line_about_the_upload(client: TestClient) -> None:
    _, data = _raster()
    answer = client.post("/v1/segment", files={"image": ("s.tif", data[:200])})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("upload: ") and "\n" not in detail and "fcnseg-upload" not in detail


def _tagged_tiff(image: np.ndarray, nodata: float) -> bytes:
    """A TIFF of ``image`` whose header sets its nodata value (GDAL's tag)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", height=image.shape[0], width=image.shape[1],
                          count=image.shape[2], dtype=image.dtype.name, nodata=nodata) as ds:
                ds.write(np.moveaxis(image, -1, 0))
            return mem.read()


def _label(answer: Any) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["label_png"]))))


def test_pixels_at_the_uploads_nodata_are_labelled_as_predict_labels_them(
        client: TestClient, tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    image, _ = _raster()
    image[:8, :10] = 7  # a corner without data, as the file's header says
    data = _tagged_tiff(image, nodata=7)
    (tmp_path / "corner.tif").write_bytes(data)
    expected = client.segmenter.predict(tmp_path / "corner.tif").label  # type: ignore[attr-defined]
    assert (expected[:8, :10] == 255).all() and len(np.unique(expected)) > 2
    answer = client.post("/v1/segment?format=json", files={"image": ("c.tif", data)})
    np.testing.assert_array_equal(_label(answer), expected)


@pytest.fixture(scope="module")
def nodata_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose training data had no data where every band is 0."""
    model = tiny_band_model(BANDS, [1000.0] * 5, [300.0] * 5, nodata=0)
    return save_checkpoint(tmp_path_factory.mktemp("nodata") / "nodata.pt", model,
                           class_names=CLASSES)


def test_pixels_at_the_models_nodata_are_labelled_as_predict_labels_them(
        nodata_model: Path) -> None:
    image, data = _raster()
    image[-6:, -9:] = 0  # the value the model records; the file sets none
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, photometric="minisblack", planarconfig="contig")
    segmenter = Segmenter.from_checkpoint(nodata_model)
    expected = segmenter.predict(image).label
    assert (expected[-6:, -9:] == 255).all() and len(np.unique(expected)) > 2
    with TestClient(create_app(segmenter, max_concurrency=1)) as c:
        answer = c.post("/v1/segment?format=json", files={"image": ("z.tif", buf.getvalue())})
    np.testing.assert_array_equal(_label(answer), expected)


def test_an_upload_larger_than_a_tile_is_blended_as_predict_blends_it(
        nodata_model: Path, tmp_path: Path,
        predicted_label_raster: Callable[..., np.ndarray]) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image, data = _raster(height=150, width=170, extratags=GEOTIFF_TAGS)  # a raster predict tiles
    (tmp_path / "wide.tif").write_bytes(data)
    expected = predicted_label_raster(nodata_model, tmp_path / "wide.tif", tmp_path / "out",
                                      "--tile", "64", "--overlap", "16")
    whole = Segmenter.from_checkpoint(nodata_model, tile=None).predict(image).label
    assert (whole != expected).any()  # blended tiles differ from one pass at their edges
    segmenter = Segmenter.from_checkpoint(nodata_model, tile=64, overlap=16)
    with TestClient(create_app(segmenter, max_concurrency=1)) as c:
        answer = c.post("/v1/segment?format=json", files={"image": ("w.tif", data)})
    np.testing.assert_array_equal(_label(answer), expected)


def test_an_upload_with_pixels_without_data_gets_the_labels_predict_writes_around_them(
        nodata_model: Path, tmp_path: Path,
        predicted_label_raster: Callable[..., np.ndarray]) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image, _ = _raster(height=150, width=170)
    image[:40, :50] = 0  # the model's nodata: its neighbours see the band means, not zeros
    buf = io.BytesIO()
    tifffile.imwrite(buf, image, photometric="minisblack", planarconfig="contig",
                     extratags=GEOTIFF_TAGS)
    (tmp_path / "corner.tif").write_bytes(buf.getvalue())
    expected = predicted_label_raster(nodata_model, tmp_path / "corner.tif", tmp_path / "out",
                                      "--tile", "64", "--overlap", "16")
    assert (expected[:40, :50] == 255).all()
    segmenter = Segmenter.from_checkpoint(nodata_model, tile=64, overlap=16)
    with TestClient(create_app(segmenter, max_concurrency=1)) as c:
        answer = c.post("/v1/segment?format=json", files={"image": ("c.tif", buf.getvalue())})
    np.testing.assert_array_equal(_label(answer), expected)
