"""One image reader: training, check-data, predict and serve see the same pixels for a file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from fcnseg.cli.main import main
from fcnseg.data import DataError, FolderSegmentation
from fcnseg.data.images import ALPHA_BACKGROUND, ImageError, ImageTooLargeError
from fcnseg.inference import load_image, to_rgb_uint8


def _oriented(h: int = 10, w: int = 16) -> np.ndarray:
    """Every corner a different colour, so any rotation or flip changes the array."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (220, 30, 30)
    a[: h // 2, w // 2 :] = (30, 220, 30)
    a[h // 2 :, : w // 2] = (30, 30, 220)
    a[h // 2 :, w // 2 :] = (220, 220, 30)
    return a


def _folder(root, image: Image.Image, image_name: str, mask: np.ndarray, **save) -> None:
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, fg]\n")
    image.save(root / "images" / image_name, **save)
    Image.fromarray(mask).save(root / "masks" / "a.png")


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_rotated_image_reads_upright_and_the_same_in_training_and_prediction(
    tmp_path, suffix
):
    stored = _oriented(10, 16)
    # Orientation 6: the viewer turns the stored 16×10 (W×H) pixels 90° clockwise to 10×16.
    mask = np.zeros((16, 10), np.uint8)  # drawn on the upright image
    _folder(tmp_path, Image.fromarray(stored), f"a{suffix}", mask, exif=_exif(6))
    path = tmp_path / "images" / f"a{suffix}"

    training, label = FolderSegmentation(tmp_path)[0]
    assert training.shape == (16, 10, 3) and label.shape == (16, 10)
    np.testing.assert_array_equal(training, load_image(path))  # predict reads paths so
    np.testing.assert_array_equal(training, load_image(path.read_bytes()))  # serve reads bytes
    if suffix == ".png":  # lossless: the pixels are exactly the stored ones, turned upright
        np.testing.assert_array_equal(training, np.rot90(stored, k=-1))


def test_transparent_pixels_are_white_in_training_and_prediction(tmp_path):
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :4, 3] = 255  # opaque
    rgba[:, 4:8, 3] = 128  # half transparent
    rgba[:, 8:, 3] = 0  # transparent (their stored red is not what a viewer shows)
    _folder(tmp_path, Image.fromarray(rgba), "a.png", np.zeros((8, 12), np.uint8))
    path = tmp_path / "images" / "a.png"

    training, _ = FolderSegmentation(tmp_path)[0]
    np.testing.assert_array_equal(training, load_image(path))
    np.testing.assert_array_equal(training, load_image(path.read_bytes()))
    np.testing.assert_array_equal(training, to_rgb_uint8(rgba))  # arrays follow the same rule
    assert (training[:, :4] == (200, 10, 10)).all()
    assert (training[:, 8:] == ALPHA_BACKGROUND).all()
    np.testing.assert_allclose(training[0, 6], (228, 132, 132), atol=1)  # half-way to white


def test_mask_with_an_orientation_tag_is_read_upright(tmp_path):
    stored = np.zeros((10, 16), np.uint8)
    stored[:, :4] = 1  # left band, stored
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text("classes: [bg, fg]\n")
    Image.fromarray(_oriented(10, 16)).save(tmp_path / "images" / "a.png", exif=_exif(6))
    Image.fromarray(stored).save(tmp_path / "masks" / "a.png", exif=_exif(6))

    _, label = FolderSegmentation(tmp_path)[0]
    np.testing.assert_array_equal(label, np.rot90(stored, k=-1))


def test_mask_drawn_on_the_stored_pixels_of_a_rotated_photo_is_reported(tmp_path, capsys):
    # The mask has the stored size (16×10), the photo is 10×16 upright: training would be
    # misaligned, so both the dataset and check-data name the orientation tag.
    _folder(tmp_path, Image.fromarray(_oriented(10, 16)), "a.jpg", np.zeros((10, 16), np.uint8),
            exif=_exif(6))
    with pytest.raises(DataError, match=r"EXIF orientation tag \(6\)"):
        FolderSegmentation(tmp_path)[0]

    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'masks' / 'a.png'}: mask is 16×10 but its image a.jpg is 10×16" in out
    assert "EXIF orientation tag (6) turns the stored 16×10 pixels by 90°" in out


def test_a_postscript_file_named_jpg_is_refused_by_every_reader_before_ghostscript(
        tmp_path, fake_ghostscript, postscript_bytes):
    from fcnseg.data.images import file_orientation, open_upright, upright_size
    from fcnseg.data.io import read_image, read_label

    path = tmp_path / "x.jpg"
    path.write_bytes(postscript_bytes)
    for read in (load_image, open_upright, lambda p: load_image(p.read_bytes(), name=str(p))):
        with pytest.raises(ValueError) as e:
            read(path)
        assert str(e.value).startswith(str(path)) and "PostScript" in str(e.value)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"x\.jpg: unreadable image: a PostScript/EPS file"):
        read_image(path)
    with pytest.raises(DataError, match=r"x\.jpg: unreadable mask"):
        read_label(path)
    with pytest.raises(OSError):
        upright_size(path)
    assert file_orientation(path) == 1
    assert not fake_ghostscript.exists(), "Ghostscript was run on an untrusted file"


def test_check_data_reports_a_postscript_image_in_one_line_without_running_ghostscript(
        tmp_path, fake_ghostscript, postscript_bytes, capsys):
    _folder(tmp_path, Image.fromarray(_oriented()), "a.png", np.zeros((10, 16), np.uint8))
    (tmp_path / "images" / "b.jpg").write_bytes(postscript_bytes)
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(tmp_path / "masks" / "b.png")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "b.jpg" in x)
    assert "a PostScript/EPS file" in line and "accepted: PNG, JPEG" in line
    assert not fake_ghostscript.exists(), "Ghostscript was run on an untrusted file"


def test_an_empty_file_is_called_empty_not_an_unknown_format(tmp_path):
    from fcnseg.data.io import read_image

    path = tmp_path / "cut.tif"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cut\.tif: .*an empty file \(0 bytes\)"):
        load_image(path)
    with pytest.raises(DataError, match=r"cut\.tif: unreadable image: an empty file"):
        read_image(path)


def test_check_data_refuses_a_tiff_of_several_rgb_images_naming_how_many(tmp_path, capsys):
    import tifffile

    _folder(tmp_path, Image.fromarray(_oriented()), "a.png", np.zeros((10, 16), np.uint8))
    tifffile.imwrite(tmp_path / "images" / "b.tif", np.stack([_oriented()] * 3),
                     photometric="rgb")
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(tmp_path / "masks" / "b.png")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if "b.tif" in x)
    assert "holds 3 images" in line and "only files of one image are read" in line


def test_a_fiji_hyperstack_of_channels_to_a_colour_model_says_they_are_bands(tmp_path):
    import tifffile

    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, np.zeros((2, 10, 16), np.uint16), imagej=True,
                     metadata={"axes": "CYX"})
    with pytest.raises(ValueError) as err:
        load_image(path)
    assert str(err.value) == (
        f"{path}: holds 2 channels, one a page (TIFF axes CYX, shape 2×10×16): the bands of "
        f"one image, read by a model of declared bands (dataset.yaml `bands:`); a colour "
        f"model reads the RGB or grey samples of one page")


def test_a_tiff_with_reduced_resolution_pages_reads_as_its_one_image(tmp_path):
    import tifffile

    a = np.repeat(np.repeat(_oriented(), 4, axis=0), 4, axis=1)  # 40 × 64
    with tifffile.TiffWriter(tmp_path / "pyramid.tif") as tif:
        tif.write(a, photometric="rgb")
        tif.write(a[::2, ::2], photometric="rgb", subfiletype=1)  # an overview
    np.testing.assert_array_equal(load_image(tmp_path / "pyramid.tif"), a)


@pytest.mark.parametrize("dtype", [">u4", "<u4", ">i4", ">i2"])
def test_a_32_bit_grey_tiff_of_either_byte_order_reads_as_the_raster_path_reads_it(
        tmp_path, dtype):
    import tifffile

    from fcnseg.data.rasters import open_raster
    from fcnseg.inference.rasters import colour_pixels

    info = np.iinfo(np.dtype(dtype))
    extremes = [info.min, info.max, 0, 128, 129, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1]
    values = np.random.default_rng(6).integers(info.min, info.max, (12, 10), endpoint=True)
    values.flat[:len(extremes)] = np.clip(extremes, info.min, info.max)
    path = tmp_path / "grey.tif"
    tifffile.imwrite(path, values.astype(dtype))  # Pillow refuses big-endian uint32
    with open_raster(path) as reader:
        tiles_see = colour_pixels(reader.read_all(), reader.info)
    np.testing.assert_array_equal(load_image(path), tiles_see)


def _integers_to_rgb_in_float64(values, alpha=False, premultiplied=False):
    """integers_to_rgb as first written, in float64: the results the integer arithmetic keeps."""
    if alpha:
        opacity = values[..., -1:].astype(np.float64) / np.iinfo(values.dtype).max
        rgb = _integers_to_rgb_in_float64(values[..., :-1]).astype(np.float64)
        background = np.asarray(ALPHA_BACKGROUND, dtype=np.float64) * (1.0 - opacity)
        rgb = rgb + background if premultiplied else rgb * opacity + background
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    values = values if values.ndim > 2 else values[..., None]
    if values.dtype != np.uint8:
        values = np.clip(np.round(values.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(values, 3, axis=-1) if values.shape[-1] == 1 else values


def _random_with_extremes(dtype, shape, seed):
    info = np.iinfo(dtype)
    a = np.random.default_rng(seed).integers(info.min, info.max, shape, endpoint=True)
    edges = [info.min, info.max, 0, 1, 128, 129, 385, 386, 65406, 65407, 65535, 65536, -1,
             -128, -129, -9999, 2**31 - 1]  # and the nodata values of scenes (0, -9999, max)
    edges = [v for v in edges if info.min <= v <= info.max]
    a.flat[:len(edges)] = edges
    a.flat[len(edges):2 * len(edges)] = np.arange(len(edges)) * 257 + 128  # rounding edges
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", ">u2", "int16", "int32", "uint32"])
@pytest.mark.parametrize("bands", [None, 1, 3])
def test_integers_to_rgb_gives_the_float64_results_in_integers(dtype, bands):
    from fcnseg.data.images import integers_to_rgb

    shape = (2, 33, 40) + ((bands,) if bands else ())
    for seed in range(3):
        values = _random_with_extremes(dtype, shape, seed)
        np.testing.assert_array_equal(integers_to_rgb(values),
                                      _integers_to_rgb_in_float64(values))


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("bands", [2, 4])
@pytest.mark.parametrize("premultiplied", [False, True])
def test_integers_to_rgb_composites_alpha_as_in_float64(dtype, bands, premultiplied):
    from fcnseg.data.images import integers_to_rgb

    for seed in range(3):
        values = _random_with_extremes(dtype, (33, 40, bands), seed)
        values[:5, ..., -1] = np.iinfo(dtype).max  # opaque
        values[5:9, ..., -1] = 0  # transparent
        np.testing.assert_array_equal(
            integers_to_rgb(values, True, premultiplied=premultiplied),
            _integers_to_rgb_in_float64(values, True, premultiplied))


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_an_uncompressed_grey_tiff_turned_by_its_orientation_reads_upright(tmp_path,
                                                                          orientation):
    # Pillow decodes such a file into its swapped size, scrambling the pixels.
    import tifffile

    from fcnseg.data.images import open_upright, upright_array
    from fcnseg.data.rasters import open_raster

    stored = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    path = tmp_path / "turned.tif"
    tifffile.imwrite(path, stored, extratags=[(274, 3, 1, orientation, True)])
    upright = upright_array(stored, orientation)
    np.testing.assert_array_equal(load_image(path)[..., 0], upright)
    np.testing.assert_array_equal(np.asarray(open_upright(path.read_bytes())), upright)
    with open_raster(path) as reader:
        np.testing.assert_array_equal(reader.read_all()[..., 0], upright)


def _samples_16(n: int) -> np.ndarray:
    """16-bit samples of which Pillow's high bytes are not what dividing by 257 gives."""
    values = np.random.default_rng(n).integers(0, 65536, (6, 9, n)).astype(np.uint16)
    values[0, 0] = 255  # 0 as a high byte, 1 divided by 257
    return values


@pytest.mark.parametrize("interlaced", [False, True])
def test_a_png_of_16_bit_rgb_is_read_as_a_16_bit_rgb_tiff(tmp_path, interlaced) -> None:
    import tifffile
    from ondisk import save_png_16

    rgb = _samples_16(3)
    png = save_png_16(tmp_path / "rgb16.png", rgb, interlaced)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(load_image(png), load_image(tmp_path / "rgb16.tif"))
    np.testing.assert_array_equal(load_image(png), ((rgb.astype(np.uint32) + 128) // 257))


@pytest.mark.parametrize("bands", [2, 4])  # grey and alpha (Pillow: 8-bit), RGBA
def test_a_png_of_16_bit_samples_with_alpha_is_composited_at_16_bits(tmp_path, bands) -> None:
    from ondisk import save_png_16

    from fcnseg.data.images import integers_to_rgb

    samples = _samples_16(bands)
    png = save_png_16(tmp_path / "alpha16.png", samples)
    np.testing.assert_array_equal(load_image(png), integers_to_rgb(samples, alpha=True))


@pytest.mark.parametrize(("bands", "interlaced"),
                         [(2, False), (2, True), (3, False), (3, True), (4, False)])
def test_read_samples_gives_a_16_bit_colour_pngs_samples(tmp_path, bands, interlaced) -> None:
    from ondisk import save_png_16

    from fcnseg.data.images import read_samples

    samples = _samples_16(bands)
    png = save_png_16(tmp_path / "c16.png", samples, interlaced)
    for source in (png, str(png), png.read_bytes()):
        got = read_samples(source)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, samples)


def test_a_16_bit_colour_png_this_pillow_cannot_read_whole_is_one_line(tmp_path,
                                                                        monkeypatch) -> None:
    from ondisk import save_png_16

    import fcnseg.data.images as images

    png = save_png_16(tmp_path / "c16.png", _samples_16(3))
    monkeypatch.setattr(images, "_PNG_LOW_BYTES", {})
    with pytest.raises(images.ImageError) as e:
        images.read_samples(png)
    assert str(e.value) == (f"{png}: a PNG of 16 bits per colour sample, which this Pillow "
                            f"does not decode at full depth: save it as a 16-bit TIFF")


#: The first bytes of an iPhone photo (its ftyp box: brand heic, compatible mif1 and heic).
HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
avif_needed = pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")


@avif_needed
def test_an_avif_photo_reads_upright_in_training_and_prediction(tmp_path):
    stored = _oriented(10, 16)
    mask = np.zeros((16, 10), np.uint8)  # drawn on the upright photo
    _folder(tmp_path, Image.fromarray(stored), "a.avif", mask, exif=_exif(6), quality=100)
    path = tmp_path / "images" / "a.avif"

    training, label = FolderSegmentation(tmp_path)[0]
    assert training.shape == (16, 10, 3) and label.shape == (16, 10)
    np.testing.assert_array_equal(training, load_image(path))
    np.testing.assert_array_equal(training, load_image(path.read_bytes()))
    # Lossy: the corners' colours, turned as the orientation says (top-left red to top-right).
    assert np.abs(training[2, -2].astype(int) - (220, 30, 30)).max() < 40


def _avif_declaring(width: int, height: int) -> bytes:
    """A small AVIF whose header (its ispe box) declares ``width``×``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(buffer, "AVIF")
    data = bytearray(buffer.getvalue())
    at = data.find(b"ispe")
    data[at + 8:at + 16] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


@avif_needed
def test_an_avif_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.avif"
    path.write_bytes(_avif_declaring(12000, 12000))  # within libavif's limits
    with pytest.raises(ImageTooLargeError, match=r"12000×12000 = 144000000 pixels"):
        load_image(path, max_pixels=50_000_000)


@avif_needed
def test_an_avif_over_the_decoders_limits_is_named_as_avif(tmp_path):
    path = tmp_path / "huge.avif"
    path.write_bytes(_avif_declaring(100_000, 100_000))
    with pytest.raises(ValueError) as e:
        load_image(path)
    assert str(e.value).startswith(f"{path}: an AVIF image that cannot be opened: corrupt, "
                                   f"or larger than the AVIF decoder allows")


def test_a_heic_photo_is_refused_in_one_line_saying_heic_and_how_to_convert(tmp_path):
    from fcnseg.data.io import read_image

    path = tmp_path / "IMG_0071.heic"
    path.write_bytes(HEIC_HEAD + bytes(range(256)))
    with pytest.raises(ValueError) as e:
        load_image(path)
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "HEIC" in message and "convert it to JPEG" in message and "Most Compatible" in message
    with pytest.raises(DataError, match=r"IMG_0071\.heic: unreadable image: a HEIC/HEIF photo"):
        read_image(path)


def _dng(path, preview: bool = False) -> None:
    """A TIFF with the DNGVersion tag: 16-bit sensor values, or (as most DNGs begin) an 8-bit
    RGB preview as its first image."""
    import tifffile

    pixels = (np.zeros((8, 12, 3), np.uint8) if preview
              else np.arange(96, dtype=np.uint16).reshape(8, 12) * 600)
    tifffile.imwrite(path, pixels, extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])


@pytest.mark.parametrize("preview", [False, True])
def test_a_dng_is_refused_as_camera_raw_by_its_tag_whatever_its_name(tmp_path, preview):
    from fcnseg.data.io import read_image
    from fcnseg.data.rasters import open_raster

    path = tmp_path / "DJI_0001.tif"
    _dng(path, preview)
    for read in (load_image, open_raster, lambda p: load_image(p.read_bytes(), name=str(p))):
        with pytest.raises(ValueError) as e:
            read(path)
        message = str(e.value)
        assert message.startswith(f"{path}: a camera raw file (DNG)") and "\n" not in message
        assert "export it as JPEG or TIFF from the raw converter" in message
    with pytest.raises(DataError, match=r"DJI_0001\.tif: unreadable image: a camera raw file"):
        read_image(path)


@pytest.mark.parametrize("dng", [False, True])
def test_camera_raw_problem_leaves_a_callers_stream_where_it_was(tmp_path, dng):
    from fcnseg.data.images import camera_raw_problem

    path = tmp_path / "a.tif"
    _dng(path) if dng else Image.fromarray(_oriented()).save(path, format="TIFF")
    stream = io.BytesIO(path.read_bytes())
    stream.seek(3)
    assert (camera_raw_problem(stream) is not None) == dng
    assert stream.tell() == 3


def test_file_head_leaves_a_stream_where_it_was() -> None:
    from fcnseg.data.images import file_head

    stream = io.BytesIO(b"0123456789")
    stream.seek(3)
    assert file_head(stream, 4, offset=2) == b"2345"
    assert stream.tell() == 3


class _Unseekable(io.RawIOBase):
    """A stream read once from the start, as an HTTP response is."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


def test_load_image_reads_a_stream_that_cannot_seek():
    encoded = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(encoded, format="PNG")
    assert load_image(io.BufferedReader(_Unseekable(encoded.getvalue()))).shape == (4, 4, 3)


def test_a_raw_suffix_or_a_cr2_header_is_refused_as_camera_raw(tmp_path):
    named = tmp_path / "IMG_0001.NEF"
    Image.fromarray(_oriented()).save(named, format="TIFF")  # a Nikon raw is a TIFF inside
    cr2 = tmp_path / "IMG_0002.tif"
    cr2.write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(100))
    for path, kind in ((named, "NEF"), (cr2, "CR2")):
        with pytest.raises(ValueError) as e:
            load_image(path)
        assert str(e.value).startswith(f"{path}: a camera raw file ({kind}), which fcnseg")


@pytest.mark.parametrize("head", [b"II*\x00\x08\x00", b"II+\x00\x08\x00\x00\x00\x00\x00"],
                         ids=["classic", "BigTIFF"])
def test_a_tiff_cut_before_its_first_offset_is_one_line_naming_the_file(tmp_path, head):
    from fcnseg.data.rasters import open_raster

    path = tmp_path / "cut.tif"
    path.write_bytes(head)
    for read in (load_image, open_raster, lambda p: load_image(p.read_bytes(), name=str(p))):
        with pytest.raises(ImageError) as e:
            read(path)
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["16-bit RGBA", "uint16 grey", "turned grey", "stack"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_each_tiff_read_parses_its_header_once(tmp_path, monkeypatch, kind, as_bytes):
    # Its bands, samples, stack and pixels all come from one tifffile parse of the header.
    import tifffile

    rng = np.random.default_rng(0)
    path = tmp_path / "x.tif"
    if kind == "16-bit RGBA":
        a = rng.integers(0, 65536, (6, 8, 4), np.uint16)
        a[..., 3] = 65535  # opaque: the colour divided by 257
        tifffile.imwrite(path, a, photometric="rgb", extrasamples=[2])
        expected = np.round(a[..., :3] / 257).astype(np.uint8)
    elif kind == "uint16 grey":
        a = rng.integers(0, 65536, (6, 8), np.uint16)
        tifffile.imwrite(path, a, photometric="minisblack")
        expected = np.repeat(np.round(a / 257).astype(np.uint8)[..., None], 3, axis=-1)
    elif kind == "turned grey":  # orientation 6: turned 90° clockwise to be shown
        a = rng.integers(0, 256, (6, 8), np.uint8)
        tifffile.imwrite(path, a, photometric="minisblack", extratags=[(274, 3, 1, 6, True)])
        expected = np.repeat(np.rot90(a, -1)[..., None], 3, axis=-1)
    else:
        tifffile.imwrite(path, rng.integers(0, 256, (3, 6, 8, 3), np.uint8), photometric="rgb")
        expected = None
    parse, parses = tifffile.TiffFile.__init__, []

    def counted(self, *args, **kwargs):
        parses.append(args)
        parse(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counted)
    source = path.read_bytes() if as_bytes else path
    if expected is None:
        with pytest.raises(ImageError, match="holds 3 images"):
            load_image(source)
    else:
        np.testing.assert_array_equal(load_image(source), expected)
    assert len(parses) == 1


def test_read_label_declares_the_options_of_read_label_and_values() -> None:
    import inspect

    from fcnseg.data.io import read_label, read_label_and_values

    assert list(inspect.signature(read_label).parameters.values()) == list(
        inspect.signature(read_label_and_values).parameters.values())
