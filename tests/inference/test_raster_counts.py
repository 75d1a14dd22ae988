"""``fcnseg predict --counts`` of rasters segmented by tiles: one row per raster, counted from
its label GeoTIFF by strips."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fcnseg.cli.main import main

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

TRANSFORM = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5200000.0)


def write_tif(path, array, nodata=None):
    h, w, n = array.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=n, dtype=array.dtype,
                       crs="EPSG:32632", transform=TRANSFORM, nodata=nodata) as ds:
        ds.write(np.moveaxis(array, -1, 0))


def predict(checkpoint, inputs, out, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), *map(str, inputs), "--out", str(out),
                 "--no-progress", "--precision", "fp32", "--tile", "32", *extra])


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture
def scene_with_nodata(tmp_path, smooth_image):
    """A georeferenced scene of several tiles whose top left corner has no data (0)."""
    image = smooth_image.copy()
    image[image == 0] = 1
    image[:6, :9] = 0
    write_tif(tmp_path / "scene.tif", image, nodata=0)
    return tmp_path / "scene.tif"


def test_a_rasters_counts_are_those_of_its_label_geotiff(make_checkpoint, scene_with_nodata,
                                                          tmp_path):
    table = tmp_path / "counts.csv"
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   "--counts", str(table)) == 0
    with rasterio.open(tmp_path / "out" / "scene.tif") as ds:
        labels = ds.read(1)
    header, row = rows_of(table)
    classes = len(header) - 2
    pixels = np.bincount(labels.ravel(), minlength=256)
    assert row == [str(scene_with_nodata), *map(str, pixels[:classes]), str(pixels[255])]
    assert pixels[255] == 6 * 9


def test_counts_given_with_a_raster_are_not_said_to_skip_it(make_checkpoint, scene_with_nodata,
                                                            tmp_path, capsys):
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   "--counts", str(tmp_path / "counts.csv")) == 0
    assert "apply to images" not in capsys.readouterr().err


def test_a_raster_complete_from_an_earlier_run_keeps_its_row(make_checkpoint, scene_with_nodata,
                                                             tmp_path):
    table = tmp_path / "counts.csv"
    args = (make_checkpoint("same"), [scene_with_nodata], tmp_path / "out", "--counts", str(table))
    assert predict(*args) == 0
    first = rows_of(table)
    assert len(first) == 2
    table.unlink()
    assert predict(*args) == 0  # skipped as complete, counted from its label GeoTIFF
    assert rows_of(table) == first


def test_a_label_raster_is_counted_by_strips_not_whole(tmp_path, monkeypatch):
    from fcnseg.data import rasters as raster_module
    from fcnseg.inference import counts

    labels = np.arange(64 * 48, dtype=np.uint8).reshape(64, 48) % 7
    with rasterio.open(tmp_path / "labels.tif", "w", driver="GTiff", height=64, width=48,
                       count=1, dtype="uint8", tiled=True, blockxsize=16,
                       blockysize=16, transform=TRANSFORM) as ds:
        ds.write(labels[None])
    windows = []
    opened = raster_module.open_raster

    def recording(path, **kwargs):
        reader = opened(path, **kwargs)
        read = reader.read
        reader.read = lambda *window: windows.append(window) or read(*window)
        return reader

    monkeypatch.setattr(counts, "open_raster", recording)
    monkeypatch.setattr(counts, "_STRIP_PIXELS", 16 * 48)
    pixels = counts.label_raster_counts(tmp_path / "labels.tif")
    np.testing.assert_array_equal(pixels, np.bincount(labels.ravel(), minlength=256))
    assert windows == [(row, 0, 16, 48) for row in range(0, 64, 16)]
