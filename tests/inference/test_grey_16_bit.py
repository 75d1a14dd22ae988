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


def test_a_16_bit_grey_tiff_larger_than_a_tile_is_segmented_as_an_image_by_a_colour_model(
        make_checkpoint, tmp_path, capsys):
    from fcnseg.inference import Segmenter
    from fcnseg.inference.visualize import read_label_png

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(72, 80))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path),
               "--out", str(out), "--tile", "32", "--overlap", "8",
               "--no-progress", "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
    assert written(out) == ["cells_label.png", "cells_overlay.png"]  # no label raster
    api = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32", tile=32,
                                    overlap=8)
    np.testing.assert_array_equal(read_label_png(out / "cells_label.png"),
                                  api.predict(path).label)


IMAGE_OUTPUTS = ["cells_heatmap_{}.png", "cells_label.png", "cells_overlay.png"]


def written(out) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_a_small_16_bit_grey_tiff_gets_an_images_outputs_with_a_colour_model(
        make_checkpoint, segmenter, tmp_path, capsys):
    from floats import assert_labels_match

    from fcnseg.inference.visualize import read_label_png

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(40, 48))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path),
               "--out", str(out), "--heatmaps", "cat", "--no-progress", "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
    assert written(out) == sorted(name.format("cat") for name in IMAGE_OUTPUTS)
    whole = segmenter.predict(read_image(path), return_probs=True)  # as training reads it
    assert_labels_match(read_label_png(out / "cells_label.png"), whole.label, whole.probs)


@pytest.fixture(scope="module")
def one_band_checkpoint(tmp_path_factory):
    """A tiny FCN-8s of one 16-bit band ("intensity"), as a dataset with `bands: [intensity]`
    trains it."""
    from tiny_models import tiny_band_model

    from fcnseg.checkpoint import save_checkpoint

    model = tiny_band_model(["intensity"], [1400.0], [600.0], num_classes=2)
    return save_checkpoint(tmp_path_factory.mktemp("band") / "band.pt", model,
                           class_names=["background", "cell"])


def test_a_small_tiff_gets_an_images_outputs_with_a_model_of_its_band(
        one_band_checkpoint, tmp_path, capsys):
    from fcnseg.inference import Segmenter
    from fcnseg.inference.visualize import read_label_png

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(40, 48))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(one_band_checkpoint), str(path), "--out",
               str(out), "--heatmaps-present", "--no-progress", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 0 and "apply to images" not in err, err
    expected = Segmenter.from_checkpoint(one_band_checkpoint, precision="fp32").predict(path)
    present = [("background", "cell")[c] for c in np.unique(expected.label)]
    assert written(out) == sorted([*(f"cells_heatmap_{c}.png" for c in present),
                                   "cells_label.png", "cells_overlay.png"])
    np.testing.assert_array_equal(read_label_png(out / "cells_label.png"), expected.label)


def test_a_microscopy_tiff_larger_than_a_tile_gets_an_images_outputs_and_polygons(
        one_band_checkpoint, tmp_path, capsys):
    from fcnseg.inference import Segmenter
    from fcnseg.inference.visualize import read_label_png

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(72, 80))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(one_band_checkpoint), str(path), "--out",
               str(out), "--tile", "64", "--format", "cvat", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0 and "apply to images" not in err, err
    assert written(out) == ["annotations.xml", "cells_label.png", "cells_overlay.png"]
    assert "<image " in (out / "annotations.xml").read_text()
    # the same blended tiles as Segmenter.predict of the file
    api = Segmenter.from_checkpoint(one_band_checkpoint, tile=64).predict(path)
    np.testing.assert_array_equal(read_label_png(out / "cells_label.png"), api.label)


def test_a_georeferenced_tiff_larger_than_a_tile_keeps_the_label_geotiff(
        one_band_checkpoint, tmp_path):
    from geotags import GEOTIFF_TAGS

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(72, 80), extratags=GEOTIFF_TAGS)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(one_band_checkpoint), str(path), "--out",
                 str(out), "--tile", "64", "--no-progress"]) == 0
    assert written(out) == ["cells.tif", "cells.tif.done.json", "cells_overlay.png"]


def test_a_small_tiff_of_a_model_of_its_band_is_skipped_once_complete(
        one_band_checkpoint, tmp_path, capsys):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, grey_16_bit(40, 48))
    args = ["predict", "--checkpoint", str(one_band_checkpoint), str(path), "--out",
            str(tmp_path / "out"), "--skip-complete", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "1 complete already, skipped" in capsys.readouterr().out


@pytest.mark.parametrize("planar", [False, True])
def test_a_16_bit_rgb_tiff_reaches_a_colour_model_alike_whole_and_by_tiles(
        segmenter, tmp_path, monkeypatch, planar):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (40, 48, 3)).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, np.moveaxis(pixels, -1, 0) if planar else pixels, photometric="rgb",
                     planarconfig="separate" if planar else "contig")
    seen = []
    preprocess = segmenter.preprocess
    monkeypatch.setattr(segmenter, "preprocess",
                        lambda rgb: seen.append(np.stack(list(rgb))) or preprocess(rgb))
    with open_raster(path) as reader:
        segmenter_tile_fn(segmenter, reader.info)(reader.read_all()[None])
    trained_on = read_image(path)
    np.testing.assert_array_equal(seen[0][0], trained_on)
    np.testing.assert_array_equal(trained_on, np.round(pixels / 257.0).astype(np.uint8))


def test_a_16_bit_rgb_tiff_is_decoded_once(tmp_path, monkeypatch):
    from PIL import TiffImagePlugin

    pixels = np.random.default_rng(1).integers(0, 65536, (20, 24, 3)).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    # tifffile decodes its samples; Pillow, which would keep only their high byte, decodes none
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load",
                        lambda self: pytest.fail("decoded by Pillow too"))
    np.testing.assert_array_equal(read_image(path), np.round(pixels / 257.0).astype(np.uint8))


def test_a_corrupt_16_bit_rgb_tiff_is_one_line_naming_it(tmp_path):
    from fcnseg.data.images import ImageError, load_image

    path = tmp_path / "rgb16.tif"
    pixels = np.random.default_rng(2).integers(0, 65536, (64, 64, 3)).astype(np.uint16)
    tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start = tif.pages[0].dataoffsets[0]
    data = bytearray(path.read_bytes())
    data[start:start + 64] = b"\xff" * 64  # the compressed strip made garbage
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"rgb16\.tif: cannot be decoded") as e:
        load_image(path)
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("mode", ["RGBA", "CMYK"])
def test_a_tiff_read_by_tifffile_is_not_decoded_by_pillow_too(tmp_path, monkeypatch, mode):
    from PIL import Image, TiffImagePlugin

    rng = np.random.default_rng(3)
    path = tmp_path / "image.tif"
    Image.fromarray(rng.integers(0, 256, (20, 24, 4), dtype=np.uint8), mode).save(path)
    want = read_image(path)
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load",
                        lambda self: pytest.fail("decoded by Pillow too"))
    np.testing.assert_array_equal(read_image(path), want)


def grey_32_bit(path, h: int, w: int, kind: str, extratags=()) -> np.ndarray:
    """A 32-bit integer grey TIFF of the 16-bit blobs: ``uint32``/``int32`` by tifffile (with
    ``extratags``), or ``pillow-I`` (Pillow's mode "I", int32); returns the values written."""
    from PIL import Image

    values = grey_16_bit(h, w).astype(np.int64) * 20 - 3000  # beyond 16 bits, a few negative
    if kind == "pillow-I":
        Image.fromarray(values.astype(np.int32), "I").save(path)
        return values
    values = np.clip(values, 0, None) if kind == "uint32" else values
    tifffile.imwrite(path, values.astype(kind), extratags=extratags)
    return values


@pytest.fixture(params=["rasterio", "tifffile"])
def raster_reader(request, monkeypatch):
    """Rasters read through rasterio and through tifffile (as without rasterio)."""
    if request.param == "tifffile":
        monkeypatch.setattr("fcnseg.data.rasters._rasterio", lambda: None)
    return request.param


@pytest.mark.parametrize("kind", ["uint32", "int32", "pillow-I"])
def test_a_tile_of_a_32_bit_grey_tiff_reaches_a_colour_model_as_training_reads_it(
        segmenter, tmp_path, monkeypatch, kind, raster_reader):
    from fcnseg.data.images import integers_to_rgb

    path = tmp_path / "cells.tif"
    values = grey_32_bit(path, 40, 48, kind)
    seen = []
    preprocess = segmenter.preprocess
    monkeypatch.setattr(segmenter, "preprocess",
                        lambda rgb: seen.append(np.stack(list(rgb))) or preprocess(rgb))
    with open_raster(path) as reader:
        assert reader.info.dtype == np.dtype("uint32" if kind == "uint32" else "int32")
        segmenter_tile_fn(segmenter, reader.info)(reader.read_all()[None])
    trained_on = read_image(path)
    np.testing.assert_array_equal(seen[0][0], trained_on)
    np.testing.assert_array_equal(trained_on, integers_to_rgb(values))  # as 16-bit grey


def test_predict_tiles_a_large_32_bit_grey_geotiff_as_segmenter_segments_it(
        make_checkpoint, segmenter, predicted_label_raster, tmp_path):
    from floats import assert_labels_match
    from geotags import GEOTIFF_TAGS

    from fcnseg.inference import Segmenter

    path = tmp_path / "cells.tif"
    grey_32_bit(path, 72, 80, "uint32", GEOTIFF_TAGS)  # georeferenced: a raster
    labels = predicted_label_raster(make_checkpoint("same"), path, tmp_path / "out",
                                    "--tile", "32", "--overlap", "8", "--precision", "fp32")
    tiled = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32", tile=32,
                                      overlap=8).predict(path, return_probs=True)
    assert_labels_match(labels, tiled.label, tiled.probs)


@pytest.mark.parametrize("dtype, bands", [("uint32", 3), ("int8", 1), ("uint64", 1)])
def test_integer_samples_no_colour_model_takes_are_one_line_for_every_reader(
        segmenter, tmp_path, dtype, bands):
    from fcnseg.data.images import ImageError, load_image
    from fcnseg.data.rasters import raster_info
    from fcnseg.inference.rasters import colour_model_problem

    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.ones((20, 24, bands) if bands > 1 else (20, 24), dtype),
                     photometric="rgb" if bands == 3 else "minisblack")
    with pytest.raises(ImageError) as e:
        load_image(path)
    line = (f"{bands} band(s) of {dtype}, but the model takes RGB or grey (1 or 3 bands of 8 "
            f"or 16 bits")
    assert str(e.value).startswith(f"{path}: {line}") and len(str(e.value).splitlines()) == 1
    assert colour_model_problem(raster_info(path)) == e.value.problem  # predict's tiles


@pytest.mark.parametrize("shape", [(72, 80), (2, 72, 80), (72, 80, 3)])
def test_a_tiff_without_georeferencing_within_max_pixels_is_an_image_of_any_bands(
        tmp_path, shape):
    from fcnseg.inference.rasters import needs_tiling

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.full(shape, 1400, np.uint16),
                     photometric="rgb" if shape[-1] == 3 else "minisblack")
    assert not needs_tiling(path, 72 * 80, tile=32)  # larger than a tile, 16-bit
    assert needs_tiling(path, 72 * 80 - 1, tile=32)  # more pixels than the limit


def test_a_tiff_with_geotiff_tags_is_a_raster_for_every_reader(tmp_path, raster_reader):
    from geotags import GEOTIFF_TAGS

    from fcnseg.inference.rasters import needs_tiling

    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, grey_16_bit(24, 24), extratags=GEOTIFF_TAGS)
    assert needs_tiling(path, None, tile=512)  # of one tile too


def test_telling_a_tiff_is_tiled_parses_its_header_once(tmp_path, raster_reader, monkeypatch):
    # Its GeoTIFF tags come with the raster's header, not from a parse of their own.
    from geotags import GEOTIFF_TAGS

    from fcnseg.inference.rasters import needs_tiling

    path, plain = tmp_path / "scene.tif", tmp_path / "plain.tif"
    tifffile.imwrite(path, grey_16_bit(24, 24), extratags=GEOTIFF_TAGS)
    tifffile.imwrite(plain, grey_16_bit(24, 24))
    parse, parses = tifffile.TiffFile.__init__, []

    def counted(self, *args, **kwargs):
        parses.append(args)
        parse(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counted)
    assert needs_tiling(path, None, tile=512)
    assert not needs_tiling(plain, None, tile=512)
    assert len(parses) == 2
