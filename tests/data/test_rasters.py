"""Multi-band rasters of any bit depth: reading, band selection, folder datasets, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml
from ondisk import record_reads
from PIL import Image
from traced import peak_traced

from fcnseg.data import FolderSegmentation
from fcnseg.data.errors import DataError
from fcnseg.data.images import ImageError
from fcnseg.data.rasters import (
    cached_blocks,
    nodata_mask,
    open_raster,
    raster_info,
    read_raster,
)

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


BANDS = ["red", "green", "blue", "nir", "swir1"]


def write_geotiff(path, array, *, names=None, transform=None, crs="EPSG:32633", nodata=None):
    """An H×W×N array as a GeoTIFF (bands described by ``names``)."""
    h, w, n = array.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=n,
                       dtype=array.dtype, crs=crs, nodata=nodata,
                       transform=transform or from_origin(500000.0, 4000000.0, 10.0, 10.0)) as ds:
        ds.write(np.moveaxis(array, -1, 0))
        for i, name in enumerate(names or []):
            ds.set_band_description(i + 1, name)


@pytest.fixture(params=["rasterio", "tifffile"])
def tiff_reader(request, monkeypatch):
    """Plain TIFFs read through rasterio (when installed) and through tifffile (without it)."""
    if request.param == "tifffile":
        monkeypatch.setattr("fcnseg.data.rasters._rasterio", lambda: None)
    return request.param


def uint16_scene(h=8, w=10, n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 65535, (h, w, n), dtype=np.uint16)


def test_plain_tiff_keeps_its_bands_and_16_bits(tmp_path, tiff_reader):
    a = uint16_scene()
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", planarconfig="contig")
    out = read_raster(tmp_path / "x.tif")
    assert out.dtype == np.uint16 and out.shape == (8, 10, 5)
    np.testing.assert_array_equal(out, a)


def test_planar_float64_tiff_is_float32_height_width_bands(tmp_path, tiff_reader):
    a = np.random.default_rng(1).random((4, 6, 7))
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", planarconfig="separate")
    out = read_raster(tmp_path / "x.tif")
    assert out.dtype == np.float32 and out.shape == (6, 7, 4)
    np.testing.assert_allclose(out, np.moveaxis(a, 0, -1).astype(np.float32))


def test_png_keeps_grey_and_16_bit_as_one_band(tmp_path):
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    Image.fromarray(grey).save(tmp_path / "d.png")
    out = read_raster(tmp_path / "d.png")
    assert out.dtype == np.uint16 and out.shape == (3, 4, 1)
    np.testing.assert_array_equal(out[..., 0], grey)


def test_png_of_16_bit_rgb_keeps_its_three_bands_of_16_bits(tmp_path):
    from ondisk import save_png_16

    rgb = np.random.default_rng(3).integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    out = read_raster(save_png_16(tmp_path / "rgb16.png", rgb))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb)


def test_geotiff_bands_chosen_by_name_in_the_declared_order(tmp_path):
    a = uint16_scene()
    write_geotiff(tmp_path / "g.tif", a, names=BANDS)
    out = read_raster(tmp_path / "g.tif", bands=["nir", "red"])
    np.testing.assert_array_equal(out, a[..., [3, 0]])
    info = raster_info(tmp_path / "g.tif")
    assert info.crs.to_epsg() == 32633 and info.transform.c == 500000.0
    assert info.band_names == tuple(BANDS)


def test_windowed_read_decodes_only_that_window(tmp_path):
    a = uint16_scene(40, 30)
    write_geotiff(tmp_path / "g.tif", a)
    with open_raster(tmp_path / "g.tif") as r:
        np.testing.assert_array_equal(r.read(5, 7, 10, 4), a[5:15, 7:11])


def test_raster_without_a_declared_band_is_one_line_naming_it(tmp_path):
    write_geotiff(tmp_path / "g.tif", uint16_scene(n=3), names=["red", "green", "blue"])
    with pytest.raises(ImageError, match=r"g\.tif: has no band named 'nir'"):
        read_raster(tmp_path / "g.tif", bands=["red", "green", "blue", "nir"])


def test_band_count_differing_from_the_declaration_names_the_file(tmp_path, tiff_reader):
    tifffile.imwrite(tmp_path / "x.tif", uint16_scene(n=4), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageError, match=r"x\.tif: has 4 band\(s\) but 5 are declared"):
        read_raster(tmp_path / "x.tif", bands=BANDS)


def test_corrupt_tile_is_one_line_naming_the_file(tmp_path, tiff_reader):
    a = uint16_scene(64, 64)
    tifffile.imwrite(tmp_path / "c.tif", a, photometric="minisblack", tile=(16, 16),
                     compression="zlib")
    data = bytearray((tmp_path / "c.tif").read_bytes())
    data[400:1400] = b"\x00" * 1000  # inside the compressed tiles
    (tmp_path / "c.tif").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"c\.tif: cannot be decoded") as e:
        read_raster(tmp_path / "c.tif")
    assert "\n" not in str(e.value)


def test_a_tiff_header_leading_to_no_image_is_one_line_naming_the_file(tmp_path, tiff_reader):
    (tmp_path / "x.tif").write_bytes(b"II*\x00" + b"\xff" * 50)
    with pytest.raises(ImageError) as err:
        read_raster(tmp_path / "x.tif")
    assert "\n" not in str(err.value) and str(tmp_path / "x.tif") in str(err.value)


def make_raster_folder(root, *, image_bands=5, names=None, mask_transform=None, config=None):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    a = uint16_scene(n=image_bands)
    write_geotiff(root / "images" / "s.tif", a, names=names)
    label = (a[..., 0] > 30000).astype(np.uint8)[..., None]
    write_geotiff(root / "masks" / "s.tif", label, transform=mask_transform)
    cfg = {"classes": ["ground", "field"], "bands": BANDS, "rgb": ["red", "green", "blue"]}
    (root / "dataset.yaml").write_text(yaml.safe_dump({**cfg, **(config or {})}))
    return a, label[..., 0]


def test_folder_dataset_reads_its_declared_bands(tmp_path):
    a, label = make_raster_folder(tmp_path)
    ds = FolderSegmentation(tmp_path)
    image, lab = ds[0]
    assert image.dtype == np.uint16 and image.shape == (8, 10, 5)
    np.testing.assert_array_equal(image, a)
    np.testing.assert_array_equal(lab, label)
    assert ds.bands == tuple(BANDS) and ds.rgb_bands == ("red", "green", "blue")


def test_folder_dataset_with_fewer_bands_than_declared_names_the_image(tmp_path):
    make_raster_folder(tmp_path, image_bands=4)
    with pytest.raises(DataError, match=r"s\.tif: has 4 band\(s\) but 5 are declared"):
        FolderSegmentation(tmp_path)[0]


def test_label_raster_on_another_grid_names_the_label(tmp_path):
    make_raster_folder(tmp_path, mask_transform=from_origin(500010.0, 4000000.0, 10.0, 10.0))
    with pytest.raises(DataError, match=r"masks/s\.tif: label raster's geotransform"):
        FolderSegmentation(tmp_path)[0]


def test_nodata_pixels_are_ignored(tmp_path):
    a, _ = make_raster_folder(tmp_path, config={"nodata": 7})
    a[2, 3] = 7
    write_geotiff(tmp_path / "images" / "s.tif", a)
    _, label = FolderSegmentation(tmp_path)[0]
    assert label[2, 3] == 255 and (label != 255).sum() == label.size - 1


def test_nodata_pixels_take_each_bands_mean_and_the_others_keep_their_values(
        tmp_path, monkeypatch):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))  # the band statistics' cache
    a, _ = make_raster_folder(tmp_path / "ds", config={"nodata": 7})
    a[2, 3] = 7
    write_geotiff(tmp_path / "ds" / "images" / "s.tif", a)
    ds = FolderSegmentation(tmp_path / "ds")
    image, _ = ds[0]
    # The raw values the model normalises to zero, as crops are padded with.
    np.testing.assert_array_equal(image[2, 3], np.float32(ds.pad_values["color"]))
    assert image.dtype == np.float32 and ds.pad_values["color"] != (7.0,) * 5
    keep = np.ones(a.shape[:2], bool)
    keep[2, 3] = False
    np.testing.assert_array_equal(image[keep], a[keep])


def test_the_data_cache_keeps_an_image_with_nodata_in_its_own_bit_depth(tmp_path, monkeypatch):
    from fcnseg.data.cache import cache_decoded

    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))  # the band statistics' cache
    a, _ = make_raster_folder(tmp_path / "ds", config={"nodata": 7})
    a[2, 3] = 7
    write_geotiff(tmp_path / "ds" / "images" / "s.tif", a)
    ds = FolderSegmentation(tmp_path / "ds")
    cache_decoded("ram", [ds])
    # uint16 kept as read (not a float32 copy, twice the memory); filled as it is handed out
    assert ds.load.nbytes == a.nbytes + a.shape[0] * a.shape[1]
    image, label = ds[0]
    np.testing.assert_array_equal(image[2, 3], np.float32(ds.pad_values["color"]))
    assert label[2, 3] == 255


def test_rgb_must_name_declared_bands(tmp_path):
    make_raster_folder(tmp_path, config={"rgb": ["red", "green", "violet"]})
    with pytest.raises(ValueError, match=r"dataset\.yaml: 'rgb' must name three"):
        FolderSegmentation(tmp_path)


def test_gdal_is_never_let_guess_a_format(tmp_path, fake_ghostscript, postscript_bytes):
    # A GDAL virtual raster (XML naming other files) and a PostScript file, named as images
    # and as a TIFF: each is refused in one line naming it; nothing it points to is read.
    write_geotiff(tmp_path / "secret.tif", np.full((8, 8, 1), 7, np.uint8))
    vrt = (f'<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" '
           f'band="1"><SimpleSource><SourceFilename relativeToVRT="0">{tmp_path / "secret.tif"}'
           f'</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>'
           f'</VRTDataset>')
    (tmp_path / "vrt.jpg").write_text(vrt)
    (tmp_path / "vrt.tif").write_text(vrt)
    (tmp_path / "ps.jpg").write_bytes(postscript_bytes)
    for name in ("vrt.jpg", "vrt.tif", "ps.jpg"):
        with pytest.raises(ImageError) as e:
            read_raster(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
    assert not fake_ghostscript.exists()


@pytest.mark.parametrize("layout", [
    {"tile": (16, 16), "compression": "zlib", "planarconfig": "contig"},
    {"rowsperstrip": 7, "compression": "zlib", "planarconfig": "contig"},
    {"rowsperstrip": 5, "planarconfig": "separate"},
])
def test_tifffile_reads_a_window_from_its_tiles_or_strips(tmp_path, monkeypatch, layout):
    monkeypatch.setattr("fcnseg.data.rasters._rasterio", lambda: None)
    a = uint16_scene(50, 45, n=3)
    data = np.moveaxis(a, -1, 0) if layout["planarconfig"] == "separate" else a
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="minisblack", **layout)
    with open_raster(tmp_path / "x.tif", bands=["a", "b", "c"]) as r:
        np.testing.assert_array_equal(r.read(9, 14, 23, 30), a[9:32, 14:44])
        np.testing.assert_array_equal(r.read_all(), a)


@pytest.mark.parametrize("layout", [
    {"tile": (16, 16), "compression": "zlib", "planarconfig": "contig"},
    {"rowsperstrip": 7, "compression": "zlib", "planarconfig": "contig"},
    {"tile": (16, 32), "planarconfig": "separate"},
], ids=["tiles", "strips", "planar tiles"])
def test_cached_blocks_give_the_readers_windows_decoding_each_block_once(tmp_path, tiff_reader,
                                                                         layout):
    a = uint16_scene(50, 45, n=3)
    data = np.moveaxis(a, -1, 0) if layout["planarconfig"] == "separate" else a
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="minisblack", **layout)
    with open_raster(tmp_path / "x.tif") as reader:
        rows, cols = reader.block_shape()
        decoded = record_reads(reader)
        cached = cached_blocks(reader)
        # Overlapping windows in raster order, as predict's tiles are read.
        for y in (0, 12, 24, 30):
            for x in (0, 12, 24, 25):
                np.testing.assert_array_equal(cached.read(y, x, 20, 20), a[y:y + 20, x:x + 20])
    blocks = -(-50 // rows) * -(-45 // cols)
    assert len(decoded) == len(set(decoded)) == blocks


def test_cached_blocks_hold_no_more_than_their_budget(tmp_path):
    a = uint16_scene(64, 64, n=3)
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", planarconfig="contig",
                     tile=(16, 16))
    with open_raster(tmp_path / "x.tif") as reader:
        cached = cached_blocks(reader, budget=8 * 16 * 16 * 3 * 2)  # eight blocks
        np.testing.assert_array_equal(cached.read(0, 0, 64, 64), a)
        assert sum(b.nbytes for b in cached._held.values()) <= 8 * 16 * 16 * 3 * 2


@pytest.mark.parametrize("layout", [{"tile": (16, 16)}, {"rowsperstrip": 8}],
                         ids=["tiles", "strips"])
def test_cached_blocks_of_rows_of_windows_hold_one_strip_of_the_raster_however_wide(tmp_path,
                                                                                    layout):
    h, w, rows = 512, 4000, 48  # windows 48 rows high; the raster ten times as high
    a = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="rgb", **layout)
    with open_raster(tmp_path / "x.tif") as reader:
        block_rows, block_cols = reader.block_shape()
        decoded = record_reads(reader)
        cached = cached_blocks(reader, budget=0, window_rows=rows)
        held = 0
        for y in range(0, h - rows + 1, 32):  # overlapping windows in raster order
            for x in range(0, w - 64 + 1, 48):
                np.testing.assert_array_equal(cached.read(y, x, rows, 64),
                                              a[y:y + rows, x:x + 64])
                held = max(held, cached._held_bytes)
    assert len(decoded) == len(set(decoded))  # each block decoded once
    strip = (rows + 2 * block_rows) * (w + 2 * min(block_cols, w)) * 3
    assert held <= strip < a.nbytes / 2


def test_blocks_taller_than_the_windows_are_held_by_the_fixed_budget(tmp_path):
    a = uint16_scene(64, 64, n=3)
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", planarconfig="contig",
                     rowsperstrip=64)
    with open_raster(tmp_path / "x.tif") as reader:
        assert cached_blocks(reader, budget=64 * 64 * 3 * 2, window_rows=16) is reader


def test_windows_of_a_raster_in_memory_or_of_one_strip_are_read_as_they_are(tmp_path):
    a = uint16_scene(64, 64, n=3)
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", planarconfig="contig",
                     rowsperstrip=64)
    with open_raster(tmp_path / "x.tif") as reader:
        assert cached_blocks(reader, budget=64 * 64 * 3 * 2) is reader  # one block: none held
    Image.fromarray(a[..., 0].astype(np.uint8)).save(tmp_path / "x.png")
    with open_raster(tmp_path / "x.png") as reader:
        assert cached_blocks(reader) is reader


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_nodata_mask_marks_pixels_of_every_band_nodata_or_any_band_nan(dtype):
    image = np.random.default_rng(0).integers(1, 9, (2, 6, 7, 4)).astype(dtype)
    image[0, 1, 2] = 0  # every band nodata
    image[1, 3, 4, :3] = 0  # not every band
    if dtype == np.float32:
        image[1, 5, 6, 2] = np.nan  # one band NaN
    expected = np.zeros((2, 6, 7), bool)
    expected[0, 1, 2] = True
    expected[1, 5, 6] = dtype == np.float32
    np.testing.assert_array_equal(nodata_mask(image, 0), expected)
    assert nodata_mask(image, 99) is None or dtype == np.float32
    assert nodata_mask(image[:, :, :2], 0) is None


def test_a_huge_tiff_header_is_refused_before_decoding(tmp_path, tiff_reader):
    # A header (and no pixels) that claims 60,000² pixels of 5 bands.
    tifffile.imwrite(tmp_path / "bomb.tif", shape=(60000, 60000, 5), dtype=np.uint16,
                     photometric="minisblack", planarconfig="contig")
    with open(tmp_path / "bomb.tif", "r+b") as f:
        f.truncate(4096)  # the header stays; the pixels' place is cut off
    with pytest.raises(ImageError, match=r"bomb\.tif: 60000×60000 = 3600000000 pixels"):
        read_raster(tmp_path / "bomb.tif")


def test_pictures_stretch_the_rgb_bands_from_2_to_98_percent():
    from fcnseg.data.rasters import display_rgb

    a = uint16_scene(40, 50, n=5)
    picture = display_rgb(a, BANDS, ["red", "green", "blue"])
    assert picture.dtype == np.uint8 and picture.shape == (40, 50, 3)
    for k in range(3):
        low, high = np.percentile(a[..., k].astype(np.float32), (2, 98))
        expected = np.clip((a[..., k].astype(np.float32) - low) * (255 / (high - low)), 0, 255)
        np.testing.assert_array_equal(picture[..., k], np.round(expected).astype(np.uint8))
    assert (picture == 0).mean() > 0.015 and (picture == 255).mean() > 0.015


def test_a_picture_of_bands_takes_a_few_bytes_a_pixel_beyond_itself():

    from fcnseg.data.rasters import display_rgb

    a = uint16_scene(1000, 1000, n=5)
    _, peak = peak_traced(lambda: display_rgb(a, BANDS, ["red", "green", "blue"]))
    # A band at a time in float64 (8 bytes), its float32 copy (4) and the picture (3), not
    # three float64 bands stacked and rounded (80 bytes a pixel): a raster preview of
    # 2,048² pixels takes about 80 MB here, not 340.
    assert peak < 24 * a.shape[0] * a.shape[1]


def stretched(band: np.ndarray) -> np.ndarray:
    """One band from its 2nd to its 98th percentile to 0-255, as pictures draw it (uint16)."""
    low, high = np.percentile(band.astype(np.float32), (2, 98))
    return np.round(np.clip((band.astype(np.float32) - low) * (255 / (high - low)), 0, 255)
                    ).astype(np.uint16)


def test_pictures_of_one_band_show_it_in_grey():
    from fcnseg.data.rasters import display_rgb

    a = uint16_scene(30, 20, n=1)
    picture = display_rgb(a, ["dapi"])
    for k in range(3):
        np.testing.assert_array_equal(picture[..., k], stretched(a[..., 0]))
    rgb8 = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert display_rgb(rgb8) is rgb8


def test_pictures_of_two_bands_show_the_first_magenta_and_the_second_green():
    from fcnseg.data.rasters import display_rgb

    a = uint16_scene(30, 20, n=2)
    picture = display_rgb(a, ["dapi", "gfp"])
    first, second = stretched(a[..., 0]), stretched(a[..., 1])
    for k, band in enumerate((first, second, first)):
        np.testing.assert_array_equal(picture[..., k], band)


def test_pictures_of_more_bands_without_rgb_add_them_as_imagej_composites_channels():
    from fcnseg.data.rasters import display_rgb

    a = uint16_scene(30, 20, n=4)
    picture = display_rgb(a, BANDS[:4])  # red, green, blue, then grey; clipped at white
    grey = stretched(a[..., 3])
    for k in range(3):
        np.testing.assert_array_equal(picture[..., k],
                                      np.minimum(stretched(a[..., k]) + grey, 255))


def test_pictures_of_8_bit_rgb_or_rgba_rasters_are_their_bands_unstretched():
    from fcnseg.data.rasters import display_rgb

    rgba = np.random.default_rng(0).integers(90, 160, (6, 7, 4), dtype=np.uint8)
    names = ["Blue", "Green", "Red", "alpha"]
    np.testing.assert_array_equal(display_rgb(rgba, names, ["red", "green", "blue"]),
                                  rgba[..., [2, 1, 0]])
    np.testing.assert_array_equal(display_rgb(rgba), rgba[..., :3])


def test_truncated_tiff_through_rasterio_prints_nothing_of_gdals_own(tmp_path, capfd):
    tifffile.imwrite(tmp_path / "t.tif", uint16_scene(32, 32), photometric="minisblack",
                     planarconfig="contig")
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(data[:len(data) // 2])  # strips cut off
    with pytest.raises(ImageError, match=r"t\.tif: cannot be decoded") as e:
        read_raster(tmp_path / "t.tif")
    assert "See previous exception" not in str(e.value)  # GDAL's own reason instead
    captured = capfd.readouterr()
    assert "Warning" not in captured.err and captured.err.strip() == ""


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_bands_stored_as_pages_are_every_page(tmp_path, tiff_reader, compression):
    # One page per band, as tifffile.imwrite writes a bands×H×W stack: every page is a band,
    # with rasterio installed too (GDAL opens the first page only).
    a = np.moveaxis(uint16_scene(), -1, 0)  # 5 × 8 × 10
    tifffile.imwrite(tmp_path / "x.tif", a, photometric="minisblack", compression=compression)
    assert raster_info(tmp_path / "x.tif").bands == 5
    np.testing.assert_array_equal(read_raster(tmp_path / "x.tif"), np.moveaxis(a, 0, -1))


def test_an_array_of_5_bands_tifffile_stored_as_pages_of_rows_is_one_line(tmp_path,
                                                                          tiff_reader):
    # tifffile.imwrite keeps a last axis other than 3 or 4 as pixels: 20 pages of 30×5.
    tifffile.imwrite(tmp_path / "x.tif", uint16_scene(h=20, w=30))
    with pytest.raises(ImageError) as err:
        raster_info(tmp_path / "x.tif")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "x.tif") in message
    assert "20 pages of 30×5" in message and "planarconfig='contig'" in message


def test_a_tiff_of_several_images_is_one_line_naming_how_many(tmp_path, tiff_reader):
    # Three 6-band scenes, one page each: readers would take the first alone.
    scenes = np.stack([uint16_scene(h=16, w=16, n=6, seed=s) for s in range(3)])
    tifffile.imwrite(tmp_path / "x.tif", scenes, photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ImageError) as err:
        open_raster(tmp_path / "x.tif")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "x.tif") in message
    assert "holds 3 images" in message and "only files of one image are read" in message


@pytest.mark.parametrize("how", [{"imagej": True}, {"photometric": "minisblack"}])
def test_channels_one_a_page_are_the_bands_of_one_image(tmp_path, tiff_reader, how):
    # A Fiji hyperstack (ImageJ metadata channels=2), or tifffile's axes CYX: two pages.
    channels = np.moveaxis(uint16_scene(h=12, w=14, n=2), -1, 0)
    tifffile.imwrite(tmp_path / "x.tif", channels, metadata={"axes": "CYX"}, **how)
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        assert len(tif.pages) == 2 and tif.series[0].axes == "CYX"
    np.testing.assert_array_equal(read_raster(tmp_path / "x.tif", bands=["dapi", "membrane"]),
                                  np.moveaxis(channels, 0, -1))


@pytest.mark.parametrize(("axes", "found"), [
    ("ZYX", "holds 2 z-slices (TIFF axes ZYX, shape 2×12×14); only files of one image are "
            "read: write each of the z-slices to a file of its own"),
    ("TYX", "holds 2 time points (TIFF axes TYX, shape 2×12×14); only files of one image "
            "are read: write each of the time points to a file of its own")])
def test_a_fiji_stack_of_slices_or_times_is_one_line_saying_what_it_holds(
        tmp_path, tiff_reader, axes, found):
    stack = np.moveaxis(uint16_scene(h=12, w=14, n=2), -1, 0)
    tifffile.imwrite(tmp_path / "x.tif", stack, imagej=True, metadata={"axes": axes})
    with pytest.raises(ImageError) as err:
        open_raster(tmp_path / "x.tif")
    assert str(err.value) == f"{tmp_path / 'x.tif'}: {found}"


def test_a_fiji_time_series_of_channels_names_both(tmp_path, tiff_reader):
    stack = np.stack([np.moveaxis(uint16_scene(h=12, w=14, n=2, seed=s), -1, 0)
                      for s in range(3)])
    tifffile.imwrite(tmp_path / "x.tif", stack, imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(ImageError) as err:
        open_raster(tmp_path / "x.tif")
    assert str(err.value).endswith(
        "holds 3 time points of 2 channels each (TIFF axes TCYX, shape 3×2×12×14); only files "
        "of one image are read (its channels, one a page, as its bands): write each of the "
        "time points to a file of its own")


def test_a_geotiff_with_overviews_and_a_mask_is_one_image(tmp_path, tiff_reader):
    a = uint16_scene(h=64, w=64, n=3)
    path = tmp_path / "x.tif"
    write_geotiff(path, a)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4])
        ds.write_mask(np.full((64, 64), 255, np.uint8))
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) > 1  # the overviews and masks are pages of their own
    np.testing.assert_array_equal(read_raster(path), a)


def test_a_label_raster_without_a_crs_says_none_as_info_does(tmp_path):
    from fcnseg.data.rasters import grid_problem

    write_geotiff(tmp_path / "image.tif", np.zeros((6, 8, 3), np.uint8))
    write_geotiff(tmp_path / "label.tif", np.zeros((6, 8, 1), np.uint8), crs=None)
    problem = grid_problem(raster_info(tmp_path / "image.tif"), raster_info(tmp_path / "label.tif"))
    assert problem == "label raster's CRS none differs from its image's EPSG:32633"


def test_plain_tiffs_opened_by_threads_leave_the_warning_filters_as_they_were(tmp_path):
    # A plain TIFF is a valid raster: rasterio's NotGeoreferencedWarning is not shown for it,
    # and hiding it from several threads at once (serve's requests) neither lets it through
    # nor leaves the process's warning filters changed.
    import threading
    import warnings

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((16, 16, 4), np.uint16),
                     photometric="minisblack", planarconfig="contig")
    failures = []

    def read_many() -> None:
        for _ in range(200):
            try:
                with open_raster(tmp_path / "plain.tif") as r:
                    r.read(0, 0, 4, 4)
            except Exception as e:  # noqa: BLE001 - a warning turned error by the filter
                failures.append(e)

    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)
        before = list(warnings.filters)
        threads = [threading.Thread(target=read_many) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert warnings.filters == before and not failures


def test_an_image_header_read_beside_a_raster_open_leaves_the_filters_as_they_were(
        tmp_path, monkeypatch):
    # Pillow's header read (its DecompressionBombWarning hidden) and rasterio's open (its
    # NotGeoreferencedWarning hidden) run in the threads of serve's requests at once: one
    # thread's restoring of the filter list must never undo the other's while it opens.
    import threading
    import warnings

    from fcnseg.data.images import load_image
    from fcnseg.data.rasters import rasterio_open

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((16, 16), np.uint16))
    a_inside, go_a, b_inside, go_b = (threading.Event() for _ in range(4))
    real_image_open, real_rasterio_open = Image.open, rasterio.open

    def image_open(*args, **kwargs):
        a_inside.set()
        go_a.wait(5)
        return real_image_open(*args, **kwargs)

    def raster_open(*args, **kwargs):
        b_inside.set()
        go_b.wait(5)
        return real_rasterio_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", image_open)
    monkeypatch.setattr(rasterio, "open", raster_open)
    failures = []

    def run(work):
        try:
            work()
        except Exception as e:  # noqa: BLE001 - a warning turned error by the filter
            failures.append(e)

    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)
        before = list(warnings.filters)
        a = threading.Thread(target=run, args=(lambda: load_image(tmp_path / "photo.png"),))
        b = threading.Thread(target=run,
                             args=(lambda: rasterio_open(tmp_path / "plain.tif").close(),))
        a.start()
        assert a_inside.wait(5)
        b.start()
        b_inside.wait(1)  # inside its open now, unless it waits for the header read to end
        go_a.set()
        a.join(5)
        assert b_inside.wait(5)
        go_b.set()
        b.join(5)
        assert warnings.filters == before and not failures


def test_a_cmyk_geotiff_read_as_stored_keeps_its_georeferencing(tmp_path):
    inks = np.random.default_rng(4).integers(0, 256, (12, 10, 4), dtype=np.uint8)
    transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    path = tmp_path / "cmyk.tif"
    with rasterio.open(path, "w", driver="GTiff", height=12, width=10, count=4, dtype="uint8",
                       crs="EPSG:32633", transform=transform, nodata=0,
                       photometric="CMYK") as ds:
        ds.write(np.moveaxis(inks, -1, 0))
    with open_raster(path) as reader:
        info = reader.info
        np.testing.assert_array_equal(reader.read_all(), inks)  # the inks as stored
    assert info.cmyk and info.crs.to_epsg() == 32633 and info.transform == transform
    assert info.nodata == 0.0


def test_a_32_bit_integer_tiffs_info_names_its_samples_for_every_reader(tmp_path, tiff_reader):
    tifffile.imwrite(tmp_path / "x.tif", np.arange(20, dtype=np.uint32).reshape(4, 5) * 70000)
    with open_raster(tmp_path / "x.tif") as reader:
        assert reader.info.dtype == np.uint32  # the file's, though read as float32
        assert reader.read_all().dtype == np.float32


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_a_32_bit_integer_tiff_read_exactly_keeps_every_value_as_stored(tmp_path, tiff_reader,
                                                                        dtype):
    top, bottom = np.iinfo(dtype).max, np.iinfo(dtype).min
    a = np.array([[2**24, 2**24 + 1, top - 1, top], [bottom, bottom + 1, 0, 7]], dtype)
    tifffile.imwrite(tmp_path / "x.tif", a)  # float32 would make 2**24 + 1 and top - 1 others
    with open_raster(tmp_path / "x.tif", exact=True) as reader:
        whole, window = reader.read_all(), reader.read(0, 1, 2, 2)
    assert whole.dtype == dtype
    np.testing.assert_array_equal(whole[..., 0], a)
    np.testing.assert_array_equal(window[..., 0], a[:, 1:3])
    assert read_raster(tmp_path / "x.tif", exact=True).dtype == dtype
    assert read_raster(tmp_path / "x.tif").dtype == np.float32  # what a model takes


def test_a_nodata_value_no_integer_sample_can_hold_marks_no_pixel():
    image = np.zeros((2, 3, 1), np.uint16)
    assert nodata_mask(image, -9999.0) is None and nodata_mask(image, 0.5) is None
    assert nodata_mask(image, float("nan")) is None and nodata_mask(image, 70000.0) is None
    wide = np.full((2, 3, 1), 2**32 - 2, np.uint32)
    wide[0, 0] = 2**32 - 1
    np.testing.assert_array_equal(nodata_mask(wide, 2**32 - 1), [[1, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("nodata", [-9999.0, 0.0, float("nan")])
def test_a_tiffs_gdal_nodata_tag_is_read_alike_by_every_reader(tmp_path, tiff_reader, nodata):
    a = np.random.default_rng(5).random((6, 7, 2)).astype(np.float32)
    a[1, 2] = nodata
    write_geotiff(tmp_path / "x.tif", a, nodata=nodata)
    with open_raster(tmp_path / "x.tif") as reader:
        found = reader.info.nodata
    assert found is not None and (found == nodata or np.isnan(found) and np.isnan(nodata))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_plain_tiffs_orientation_tag_turns_it_upright_as_the_image_reader_does(
        tmp_path, tiff_reader, orientation):
    from fcnseg.data.images import integers_to_rgb, load_image

    stored = np.random.default_rng(orientation).integers(0, 65536, (50, 37, 3), np.uint16)
    path = tmp_path / "turned.tif"
    tifffile.imwrite(path, stored, photometric="rgb", tile=(16, 16),
                     extratags=[(274, 3, 1, orientation, True)])
    with open_raster(path) as reader:
        whole = reader.read_all()
        window = reader.read(9, 5, 21, 17)
    np.testing.assert_array_equal(integers_to_rgb(whole), load_image(path))  # upright alike
    np.testing.assert_array_equal(window, whole[9:30, 5:22])


def test_a_georeferenced_tiffs_orientation_tag_leaves_its_grid_as_stored(tmp_path, tiff_reader):
    stored = uint16_scene(12, 9, n=1)
    write_geotiff(tmp_path / "geo.tif", stored)
    tifffile.imwrite(tmp_path / "turned.tif", tifffile.imread(tmp_path / "geo.tif"),
                     extratags=[(274, 3, 1, 6, True),
                                *[(t.code, t.dtype, t.count, t.value, True) for t in
                                  tifffile.TiffFile(tmp_path / "geo.tif").pages[0].tags
                                  if t.code in (33550, 33922, 34735)]])
    np.testing.assert_array_equal(read_raster(tmp_path / "turned.tif")[..., 0], stored[..., 0])


class _CacheSpy:
    """A rasterio dataset whose reads record the GDAL block cache they run under."""

    def __init__(self, dataset, seen: list) -> None:
        self._dataset, self._seen = dataset, seen

    def read(self, *args, **kwargs):
        import rasterio.env

        self._seen.append(rasterio.env.getenv().get("GDAL_CACHEMAX"))
        return self._dataset.read(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._dataset, name)


def test_raster_reads_run_under_a_bounded_gdal_cache_or_the_callers(tmp_path):
    import rasterio

    from fcnseg.data.rasters import GDAL_CACHE_BYTES, open_raster

    tifffile.imwrite(tmp_path / "s.tif", uint16_scene(64, 48), photometric="minisblack",
                     planarconfig="contig")
    seen: list = []
    with open_raster(tmp_path / "s.tif") as reader:
        reader._ds = _CacheSpy(reader._ds, seen)
        reader.read(0, 0, 32, 48)  # GDAL's default: 5% of the memory, every block read kept
        with rasterio.Env(GDAL_CACHEMAX=16):  # fcnseg predict's
            reader.read(32, 0, 32, 48)
    assert seen == [GDAL_CACHE_BYTES, 16]
    assert GDAL_CACHE_BYTES <= 64 << 20


def _count_tiff_parses(monkeypatch) -> list[int]:
    parses = [0]
    parse = tifffile.TiffFile.__init__

    def counted(self, *args, **kwargs):
        parses[0] += 1
        parse(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counted)
    return parses


@pytest.mark.parametrize("layout", ["one page", "bands as pages", "cmyk"])
def test_each_raster_open_parses_the_tiff_header_once(tmp_path, monkeypatch, tiff_reader,
                                                      layout):
    # Layout, samples (alpha, CMYK, orientation) and tifffile's own reader share one parse.
    a = uint16_scene(h=12, w=14, n=4)
    path = tmp_path / "x.tif"
    if layout == "one page":
        write_geotiff(path, a)
    elif layout == "bands as pages":
        tifffile.imwrite(path, np.moveaxis(a, -1, 0), photometric="minisblack")
    else:
        tifffile.imwrite(path, a, photometric="separated")
    parses = _count_tiff_parses(monkeypatch)
    with open_raster(path, exact=True) as r:
        pixels = r.read_all()
    np.testing.assert_array_equal(pixels, a)
    assert parses[0] == 1


def test_pictures_draw_the_first_seven_bands_as_imagej_composites_no_more():
    from fcnseg.data.rasters import display_rgb

    a = np.zeros((40, 20, 8), np.uint16)
    for k in range(8):
        a[5 * k:5 * k + 5, :, k] = 1000  # each band glows in a strip of its own
    picture = display_rgb(a, [f"c{k}" for k in range(8)])
    assert picture[:35].any(axis=-1).all() and not picture[35:].any()
