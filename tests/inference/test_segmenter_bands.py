"""Segmenter with a multi-band model: rasters of its bands and H×W×N arrays of raw values give
the labels ``fcnseg predict`` writes; another band count is one line naming the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.conventions import band_convention
from fcnseg.inference import ImageError, Segmenter
from fcnseg.models import build_model

BANDS = ["red", "green", "blue", "nir", "swir1", "swir2"]
CLASSES = ["background", "water", "field"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    convention = band_convention(BANDS, [900.0, 1000.0, 1100.0, 2000.0, 1500.0, 1200.0],
                                 [300.0, 300.0, 250.0, 500.0, 400.0, 350.0])
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    with torch.no_grad():  # random scorers: the labels vary over the image
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(model.head, name).weight.normal_(0.0, 0.5)
            getattr(model.head, name).bias.normal_(0.0, 0.5)
    return save_checkpoint(tmp_path_factory.mktemp("bands") / "bands.pt", model,
                           class_names=CLASSES)


def _scene(height: int = 48, width: int = 60, bands: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    image = (rng.random((height, width, bands)) * 3000 + 200).astype(np.uint16)
    image[: height // 2, :, -1] += 2500  # a brighter half: more than one class
    return image


def _write(path: Path, image: np.ndarray) -> Path:
    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig")
    return path


def test_a_raster_and_its_array_give_the_labels_the_cli_writes(checkpoint: Path,
                                                                tmp_path: Path) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image = _scene()
    raster = _write(tmp_path / "scene6.tif", image)
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "scene6.tif")
    segmenter = Segmenter.from_checkpoint(checkpoint)
    by_path = segmenter.predict(raster)
    assert len(np.unique(by_path.label)) > 1
    np.testing.assert_array_equal(by_path.label, expected)
    np.testing.assert_array_equal(segmenter.predict(image).label, expected)
    batch = segmenter.predict_batch([str(raster), image.astype(np.float32)])
    for pred in batch:
        np.testing.assert_array_equal(pred.label, expected)
    assert by_path.image.shape == (48, 60, 3) and by_path.image.dtype == np.uint8


def test_a_raster_of_another_band_count_is_one_line_naming_it(checkpoint: Path,
                                                              tmp_path: Path) -> None:
    raster = _write(tmp_path / "five.tif", _scene(bands=5))
    with pytest.raises(ImageError) as e:
        Segmenter.from_checkpoint(checkpoint).predict(raster)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{raster}: 5 band(s)")
    assert "takes 6 (red, green, blue, nir, swir1, swir2)" in message


def test_an_array_of_another_band_count_is_one_line_naming_it(checkpoint: Path) -> None:
    with pytest.raises(ImageError) as e:
        Segmenter.from_checkpoint(checkpoint).predict(_scene(bands=3))
    message = str(e.value)
    assert "\n" not in message and message.startswith("<array>: 3 band(s)")
    assert "takes 6" in message


def test_pixels_without_data_are_labelled_as_the_cli_labels_them(tmp_path: Path) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    torch.manual_seed(0)
    convention = band_convention(BANDS, [1000.0] * 6, [300.0] * 6, nodata=0)
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    checkpoint = save_checkpoint(tmp_path / "nodata.pt", model, class_names=CLASSES)
    image = _scene()
    image[:10, :12] = 0  # a corner without data, the value the model records
    raster = _write(tmp_path / "corner.tif", image)
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "corner.tif")
    assert (expected[:10, :12] == 255).all()
    segmenter = Segmenter.from_checkpoint(checkpoint)
    for source in (raster, image):
        np.testing.assert_array_equal(segmenter.predict(source).label, expected)


def test_a_raster_larger_than_a_tile_gives_the_labels_the_cli_writes(checkpoint: Path,
                                                                     tmp_path: Path) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image = _scene(height=260, width=300)
    raster = _write(tmp_path / "wide.tif", image)
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster), "--tile", "128",
                 "--overlap", "32", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "wide.tif")
    whole = Segmenter.from_checkpoint(checkpoint, tile=None).predict(raster).label
    assert (whole != expected).any()  # blended tiles differ from one pass at their edges
    segmenter = Segmenter.from_checkpoint(checkpoint, tile=128, overlap=32)
    np.testing.assert_array_equal(segmenter.predict(raster).label, expected)
    np.testing.assert_array_equal(segmenter.predict(image).label, expected)
