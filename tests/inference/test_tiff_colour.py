"""Float grey, CMYK and alpha TIFFs reach a colour model as the same pixels in every path:
training's image reader, ``Segmenter.predict`` (whole, or read as ``fcnseg predict`` reads a
raster it tiles), ``fcnseg serve``'s upload reader and ``fcnseg predict``'s raster tiles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fcnseg.cli.main import main
from fcnseg.data.images import ImageError, load_image
from fcnseg.data.io import read_image
from fcnseg.data.rasters import open_raster
from fcnseg.inference.rasters import read_colour_raster, segmenter_tile_fn

tifffile = pytest.importorskip("tifffile")

H, W = 40, 48


def float_grey(path, peak: float = 1.0) -> np.ndarray:
    """Smooth float32 grey in [0, peak]."""
    yy, xx = np.mgrid[0:H, 0:W]
    pixels = (peak * (0.5 + 0.5 * np.sin(yy / 5.0) * np.cos(xx / 7.0))).astype(np.float32)
    tifffile.imwrite(path, pixels)
    return pixels


def cmyk(path) -> np.ndarray:
    inks = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)
    tifffile.imwrite(path, inks, photometric="separated")
    return inks


def with_alpha(path, bands: int, extrasample: int, dtype=np.uint8) -> np.ndarray:
    """Colour (or grey) with alpha, stored premultiplied where ``extrasample`` is 1: returns
    the unpremultiplied pixels, alpha last."""
    full = np.iinfo(dtype).max
    rng = np.random.default_rng(bands)
    pixels = rng.integers(0, full + 1, (H, W, bands + 1)).astype(dtype)
    pixels[:4, :, -1] = 0  # transparent rows
    stored = pixels.copy()
    if extrasample == 1:
        opacity = pixels[..., -1:].astype(np.float64) / full
        stored[..., :-1] = np.round(pixels[..., :-1] * opacity).astype(dtype)
    tifffile.imwrite(path, stored, photometric="rgb" if bands == 3 else "minisblack",
                     extrasamples=[extrasample])
    return pixels


def model_inputs(segmenter, path, monkeypatch) -> dict[str, np.ndarray]:
    """The 8-bit RGB each path gives the model for the file at ``path``."""
    seen: list[np.ndarray] = []
    preprocess = segmenter.preprocess
    monkeypatch.setattr(segmenter, "preprocess",
                        lambda rgb: seen.append(np.stack(list(rgb))[0]) or preprocess(rgb))
    segmenter.predict(str(path))
    with open_raster(path) as reader:  # fcnseg predict: the whole raster as one batch
        segmenter_tile_fn(segmenter, reader.info)(reader.read_all()[None])
    tiny = replace(segmenter.tiles, tile=16, overlap=4)  # Segmenter.predict of a file predict tiles
    monkeypatch.setattr(segmenter, "tiles", tiny)
    # as a georeferenced file of these pixels (a raster predict tiles) is read
    monkeypatch.setattr("fcnseg.inference.rasters.tiling_reader",
                        lambda where, *_: open_raster(where))
    tiled = read_colour_raster(segmenter, path)
    assert tiled is not None
    return {"training": read_image(path), "serve": load_image(path.read_bytes()),
            "Segmenter": seen[0], "predict tiles": seen[1], "Segmenter tiled": tiled[0]}


def assert_all_equal(inputs: dict[str, np.ndarray], expected: np.ndarray) -> None:
    for where, rgb in inputs.items():
        np.testing.assert_array_equal(rgb, expected, err_msg=where)


def test_a_float_grey_tiff_in_0_1_reaches_a_colour_model_alike_everywhere(
        segmenter, tmp_path, monkeypatch):
    path = tmp_path / "float.tif"
    pixels = float_grey(path)
    grey = np.round(pixels.astype(np.float64) * 255).astype(np.uint8)
    assert_all_equal(model_inputs(segmenter, path, monkeypatch),
                     np.repeat(grey[..., None], 3, axis=-1))


def test_a_float_tiffs_tiles_are_scaled_as_the_whole_file(segmenter, tmp_path, monkeypatch):
    path = tmp_path / "float.tif"
    pixels = float_grey(path, peak=200.0)
    pixels[:8, :8] = 0.5  # a tile whose values alone look like [0, 1]
    tifffile.imwrite(path, pixels)
    seen = []
    preprocess = segmenter.preprocess
    monkeypatch.setattr(segmenter, "preprocess",
                        lambda rgb: seen.append(np.stack(list(rgb))[0]) or preprocess(rgb))
    with open_raster(path) as reader:
        segmenter_tile_fn(segmenter, reader.info)(reader.read(0, 0, 8, 8)[None])
    np.testing.assert_array_equal(seen[0], read_image(path)[:8, :8])


def test_a_cmyk_tiff_reaches_a_colour_model_alike_everywhere(segmenter, tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "cmyk.tif"
    inks = cmyk(path)
    as_pillow_converts = np.asarray(Image.fromarray(inks, "CMYK").convert("RGB"))
    assert_all_equal(model_inputs(segmenter, path, monkeypatch), as_pillow_converts)


@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("extrasample", [1, 2])
def test_alpha_premultiplied_or_not_is_composited_on_white_alike_everywhere(
        segmenter, tmp_path, monkeypatch, bands, extrasample):
    path = tmp_path / "alpha.tif"
    pixels = with_alpha(path, bands, extrasample).astype(np.float64)
    opacity = pixels[..., -1:] / 255
    stored = np.round(pixels[..., :-1] * opacity) if extrasample == 1 else pixels[..., :-1]
    on_white = stored + 255 * (1 - opacity) if extrasample == 1 else \
        stored * opacity + 255 * (1 - opacity)
    expected = np.round(on_white).astype(np.uint8)
    inputs = model_inputs(segmenter, path, monkeypatch)
    assert_all_equal(inputs, np.repeat(expected, 3 // bands, axis=-1))
    assert (inputs["training"][:4] == 255).all()  # transparent: white


def test_a_premultiplied_16_bit_rgba_tiff_reaches_a_colour_model_alike_everywhere(
        segmenter, tmp_path, monkeypatch):
    path = tmp_path / "alpha16.tif"
    with_alpha(path, 3, 1, np.uint16)
    inputs = model_inputs(segmenter, path, monkeypatch)
    assert_all_equal(inputs, inputs["predict tiles"])


def test_a_float_rgb_tiff_is_refused_in_one_line_everywhere(
        segmenter, make_checkpoint, tmp_path, capsys):
    path = tmp_path / "float_rgb.tif"
    tifffile.imwrite(path, np.full((H, W, 3), 0.5, np.float32), photometric="rgb")
    line = f"{path}: 3 band(s) of float32, but the model takes RGB or grey"
    for read in (load_image, lambda p: load_image(p.read_bytes(), name=str(p)),
                 lambda p: segmenter.predict(str(p))):
        with pytest.raises(ImageError) as refused:
            read(path)
        assert str(refused.value).startswith(line)
    with pytest.raises(ValueError, match=r"3 band\(s\) of float32"):
        read_image(path)  # training names the sample
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path), "--out",
               str(tmp_path / "out"), "--tile", "32", "--overlap", "8", "--no-progress"])
    assert rc == 1
    assert line in capsys.readouterr().err


@pytest.mark.parametrize("write", [float_grey, cmyk])
def test_predict_tiles_a_float_grey_or_cmyk_tiff_for_a_colour_model(
        make_checkpoint, tmp_path, capsys, write):
    path = tmp_path / "scan.tif"
    write(path)
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path), "--out",
               str(tmp_path / "out"), "--tile", "32", "--overlap", "8", "--no-progress",
               "--precision", "fp32", "--max-pixels", str(H * W - 1)])  # too large: a raster
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "scan.tif").is_file()


def test_a_32_bit_grey_tiff_reaches_a_colour_model_alike_everywhere(
        segmenter, tmp_path, monkeypatch):
    from fcnseg.data.images import integers_to_rgb

    yy, xx = np.mgrid[0:H, 0:W]
    values = (30000 + 29000 * np.sin(yy / 5.0) * np.cos(xx / 7.0)).astype(np.uint32)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, values)
    assert_all_equal(model_inputs(segmenter, path, monkeypatch), integers_to_rgb(values))


def test_predict_keeps_a_cmyk_geotiffs_crs_and_transform(make_checkpoint, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    inks = np.random.default_rng(1).integers(0, 256, (4, H, W), dtype=np.uint8)
    transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    path = tmp_path / "scan.tif"
    with rasterio.open(path, "w", driver="GTiff", height=H, width=W, count=4, dtype="uint8",
                       crs="EPSG:32632", transform=transform, photometric="CMYK") as ds:
        ds.write(inks)
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path), "--out",
                 str(tmp_path / "out"), "--tile", "32", "--overlap", "8", "--no-progress",
                 "--precision", "fp32"]) == 0
    with rasterio.open(tmp_path / "out" / "scan.tif") as ds:
        assert ds.crs.to_epsg() == 32632 and ds.transform == transform


@pytest.mark.parametrize("reader", ["rasterio", "tifffile"])
def test_a_palette_tiff_reaches_a_colour_model_as_its_colours_alike_everywhere(
        segmenter, tmp_path, monkeypatch, reader):
    from PIL import Image

    if reader == "tifffile":  # as without rasterio
        monkeypatch.setattr("fcnseg.data.rasters._rasterio", lambda: None)
    indices = (np.arange(H * W).reshape(H, W) % 7).astype(np.uint8)
    colours = np.random.default_rng(2).integers(0, 256, (256, 3), dtype=np.uint8)
    picture = Image.fromarray(indices, "P")
    picture.putpalette(colours.tobytes())
    path = tmp_path / "map.tif"
    picture.save(path)
    assert_all_equal(model_inputs(segmenter, path, monkeypatch), colours[indices])
