"""16-bit greyscale TIFFs (microscopy) without declared bands: ``fcnseg predict`` gives a colour
model the pixels training read from the same file."""

from __future__ import annotations

import numpy as np
import pytest

from fcnseg.cli.main import main
from fcnseg.data.io import read_image
from fcnseg.data.rasters import open_raster
from fcnseg.inference.rasters import segmenter_tile_fn

tifffile = pytest.importorskip("tifffile")


def grey_16_bit(h: int, w: int) -> np.ndarray:
    """A 12-bit camera's range (300-2,500) of smooth blobs."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (1400 + 1100 * np.sin(yy / 7.0) * np.cos(xx / 5.0)).astype(np.uint16)


def test_a_tile_of_a_16_bit_grey_tiff_reaches_a_colour_model_as_training_reads_it(
        segmenter, tmp_path, monkeypatch):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(40, 48))
    seen = []
    preprocess = segmenter.preprocess
    monkeypatch.setattr(segmenter, "preprocess",
                        lambda rgb: seen.append(np.stack(list(rgb))) or preprocess(rgb))
    with open_raster(path) as reader:
        run = segmenter_tile_fn(segmenter, reader.info)
        run(reader.read_all()[None])
    np.testing.assert_array_equal(seen[0][0], read_image(path))  # what training reads


def test_predict_segments_a_large_16_bit_grey_tiff_with_a_colour_model(
        make_checkpoint, tmp_path, capsys):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(72, 80))
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path),
               "--out", str(tmp_path / "out"), "--tile", "32", "--overlap", "8",
               "--no-progress", "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "cells.tif").is_file()
