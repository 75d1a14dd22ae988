"""What images get, rasters segmented by tiles get too: ``--counts`` (one row per raster, counted
from its label GeoTIFF by windows) and ``--ignore-mask`` (a raster of the raster's size, read by
windows)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from fcnseg.cli.main import main

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

TRANSFORM = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5200000.0)


def write_tif(path, array, nodata=None):
    h, w, n = array.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=n, dtype=array.dtype,
                       crs="EPSG:32632", transform=TRANSFORM, nodata=nodata) as ds:
        ds.write(np.moveaxis(array, -1, 0))


def write_mask(path, mask, **layout):
    h, w = mask.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=1, dtype="uint8",
                       transform=TRANSFORM, **layout) as ds:
        ds.write(mask[None])
    return path


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


@pytest.mark.parametrize("option", ["--counts", "--ignore-mask"])
def test_counts_and_masks_given_with_a_raster_are_not_said_to_skip_it(
        make_checkpoint, scene_with_nodata, tmp_path, capsys, option):
    write_mask(tmp_path / "mask.tif", np.ones((48, 64), np.uint8))
    given = tmp_path / ("counts.csv" if option == "--counts" else "mask.tif")
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   option, str(given)) == 0
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


def test_a_label_raster_is_counted_by_windows_of_blocks_not_whole(tmp_path, monkeypatch):
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
    monkeypatch.setattr(counts, "_WINDOW_PIXELS", 16 * 32)
    pixels = counts.label_raster_counts(tmp_path / "labels.tif")
    np.testing.assert_array_equal(pixels, np.bincount(labels.ravel(), minlength=256))
    assert windows == [(row, col, 16, w) for row in range(0, 64, 16)
                       for col, w in ((0, 32), (32, 16))]


def read_labels(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture
def hood(tmp_path):
    """A mask of the scene's size leaving out its bottom 10 rows and right 5 columns."""
    mask = np.full((48, 64), 255, np.uint8)
    mask[-10:] = 0
    mask[:, -5:] = 0
    return write_mask(tmp_path / "hood.tif", mask), mask == 0


def test_an_ignore_mask_leaves_its_pixels_out_of_a_rasters_labels(make_checkpoint,
                                                                   scene_with_nodata, hood,
                                                                   tmp_path):
    mask, left_out = hood
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "whole") == 0
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   "--ignore-mask", str(mask)) == 0
    whole, masked = (read_labels(tmp_path / d / "scene.tif") for d in ("whole", "out"))
    assert (masked[left_out] == 255).all()
    np.testing.assert_array_equal(masked[~left_out], whole[~left_out])


def test_pixels_a_rasters_ignore_mask_leaves_out_count_as_no_data(make_checkpoint,
                                                                  scene_with_nodata, hood,
                                                                  tmp_path):
    mask, left_out = hood
    table = tmp_path / "counts.csv"
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   "--ignore-mask", str(mask), "--counts", str(table)) == 0
    nodata = np.zeros((48, 64), bool)
    nodata[:6, :9] = True
    assert int(rows_of(table)[1][-1]) == (left_out | nodata).sum()


def test_a_raster_written_without_the_mask_is_predicted_again_with_it(make_checkpoint,
                                                                      scene_with_nodata, hood,
                                                                      tmp_path):
    mask, left_out = hood
    out = tmp_path / "out"
    assert predict(make_checkpoint("same"), [scene_with_nodata], out) == 0
    assert predict(make_checkpoint("same"), [scene_with_nodata], out,
                   "--ignore-mask", str(mask)) == 0
    assert (read_labels(out / "scene.tif")[left_out] == 255).all()


def test_an_ignore_mask_of_another_size_than_a_raster_is_refused_before_any_tile(
        make_checkpoint, scene_with_nodata, tmp_path, capsys):
    mask = write_mask(tmp_path / "hood.tif", np.ones((30, 40), np.uint8))
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out",
                   "--ignore-mask", str(mask)) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"fcnseg predict: error: --ignore-mask {mask}: 40×30 pixels, the raster "
                    f"{scene_with_nodata} 64×48: give a mask of the raster's size")
    assert not (tmp_path / "out" / "scene.tif").exists()


def test_a_rasters_ignore_mask_is_read_by_windows_not_whole(scene_with_nodata, tmp_path,
                                                            monkeypatch):
    from fcnseg.inference import rasters
    from fcnseg.inference.rasters import RasterJob, TileSettings, predict_raster

    mask = write_mask(tmp_path / "hood.tif", np.ones((48, 64), np.uint8), tiled=True,
                      blockxsize=16, blockysize=16)
    windows = []
    opened = rasters.open_raster

    def recording(path, **kwargs):
        reader = opened(path, **kwargs)
        if path == mask:
            read = reader.read
            reader.read = lambda *window: windows.append(window) or read(*window)
        return reader

    monkeypatch.setattr(rasters, "open_raster", recording)

    def run(batch):
        return torch.zeros((len(batch), 2, *batch.shape[1:3]))

    predict_raster(run, scene_with_nodata, tmp_path / "out.tif", ("a", "b"),
                   TileSettings(tile=32, overlap=8), RasterJob(mask=mask))
    assert windows and max(h * w for _, _, h, w in windows) <= 16 * 16


def test_a_rasters_header_is_read_once_for_planning_and_segmenting(make_checkpoint,
                                                                   scene_with_nodata, tmp_path,
                                                                   monkeypatch):
    from fcnseg.data import rasters as raster_module

    opened = []
    open_raster = raster_module._open_raster

    def recording(path, *more):
        opened.append(path)
        return open_raster(path, *more)

    monkeypatch.setattr(raster_module, "_open_raster", recording)
    assert predict(make_checkpoint("same"), [scene_with_nodata], tmp_path / "out") == 0
    # Its header to plan, its pixels to segment and to draw the overlay: no header read again.
    assert opened.count(scene_with_nodata) == 3
