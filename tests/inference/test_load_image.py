"""load_image: EXIF orientation, grayscale / RGBA / palette / 16-bit, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcnseg.inference import ImageError, ImageTooLargeError, Segmenter, load_image


def _two_tone(h: int = 20, w: int = 40) -> np.ndarray:
    """Red left half, blue right half, a green top row: every orientation looks different."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2] = (220, 30, 30)
    a[:, w // 2 :] = (30, 30, 220)
    a[:4] = (30, 220, 30)
    return a


def test_exif_orientation_is_applied(tmp_path) -> None:
    stored = _two_tone()
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    loaded = load_image(path)
    upright = np.rot90(stored, k=-1)  # clockwise
    assert loaded.shape == upright.shape == (40, 20, 3)
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 6


def test_segmenter_output_follows_exif_orientation(segmenter: Segmenter, tmp_path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° counter-clockwise to display
    Image.fromarray(_two_tone(32, 48)).save(path, quality=95, exif=exif.tobytes())
    pred = segmenter.predict(path)
    assert pred.label.shape == (48, 32) and pred.image.shape == (48, 32, 3)


def test_grayscale_becomes_three_equal_channels(tmp_path) -> None:
    gray = np.arange(30 * 20, dtype=np.uint32).reshape(30, 20) % 256
    path = tmp_path / "gray.png"
    Image.fromarray(gray.astype(np.uint8)).save(path)
    rgb = load_image(path)
    assert rgb.shape == (30, 20, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


def test_rgba_is_composited_on_white(tmp_path) -> None:
    rgba = np.zeros((10, 12, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :6, 3] = 255  # left half opaque, right half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    rgb = load_image(path)
    assert rgb.shape == (10, 12, 3)
    assert (rgb[:, :6] == (200, 10, 10)).all()
    assert (rgb[:, 6:] == 255).all()


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    rgb = load_image(path)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 100, 255])


def test_palette_image_gives_its_colours(tmp_path) -> None:
    img = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8))
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    path = tmp_path / "pal.png"
    img.save(path)
    rgb = load_image(path)
    assert tuple(rgb[0, 0]) == (10, 20, 30) and tuple(rgb[0, 1]) == (200, 100, 50)


def test_truncated_file_is_an_image_error_naming_it(tmp_path) -> None:
    good = tmp_path / "good.png"
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated.png"):
        load_image(bad)


def test_any_decoder_failure_is_an_image_error_naming_the_file(tmp_path, monkeypatch) -> None:
    # Pillow's decoders also raise struct.error, IndexError, NotImplementedError, ... on bad
    # data; every one of them must say which file, not escape as an unrelated exception.
    import struct

    path = tmp_path / "odd.png"
    Image.new("RGB", (8, 8)).save(path)

    def broken_load(self):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", broken_load)
    with pytest.raises(ImageError, match=r"odd\.png: cannot be decoded.*unpack requires"):
        load_image(path)


def test_non_image_and_missing_files_are_image_errors(tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        load_image(text)
    with pytest.raises(ImageError, match=r"missing\.png: no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="upload"):
        load_image(b"\x89PNG garbage", name="upload")


def test_too_many_pixels_are_refused_before_decoding(tmp_path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 80)).save(path)
    with pytest.raises(ImageTooLargeError, match="8000 pixels"):
        load_image(path, max_pixels=7999)
    assert load_image(path, max_pixels=8000).shape == (80, 100, 3)


def test_segmenter_sees_the_pixels_training_sees(segmenter: Segmenter, tmp_path) -> None:
    # A rotated photo with transparent pixels: predict must read it exactly as the dataset does.
    from fcnseg.data import FolderSegmentation

    rgba = np.zeros((12, 20, 4), dtype=np.uint8)
    rgba[..., :3] = _two_tone(12, 20)
    rgba[:, 10:, 3] = 255
    exif = Image.Exif()
    exif[0x0112] = 8
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(rgba).save(tmp_path / "images" / "a.png", exif=exif.tobytes())
    Image.fromarray(np.zeros((20, 12), np.uint8)).save(tmp_path / "masks" / "a.png")
    training, _ = FolderSegmentation(tmp_path, classes=["bg", "fg"])[0]
    np.testing.assert_array_equal(segmenter.predict(tmp_path / "images" / "a.png").image, training)


def test_a_header_over_pillows_own_limit_is_refused_at_the_callers_limit():
    import io
    import zlib

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # IHDR's type and data, which its CRC covers
    ihdr[4:12] = (60000).to_bytes(4, "big") * 2
    data[12:29] = ihdr
    data[29:33] = zlib.crc32(bytes(ihdr)).to_bytes(4, "big")
    with pytest.raises(ImageTooLargeError, match="60000×60000 = 3600000000 pixels is more "
                                                 "than the limit of 4194304"):
        load_image(bytes(data), max_pixels=4194304)


def test_an_image_over_the_segmenters_limit_names_how_to_raise_it(tmp_path) -> None:
    from fcnseg.inference import to_rgb_uint8

    path = tmp_path / "mosaic.png"
    Image.new("RGB", (100, 80)).save(path)
    for image in (path, np.zeros((80, 100, 3), np.uint8)):
        with pytest.raises(ImageTooLargeError) as e:
            to_rgb_uint8(image, max_pixels=7999)  # what Segmenter.predict reads by
        message = str(e.value)
        assert "100×80 = 8000 pixels is more than the limit of 7999" in message
        assert "fcnseg predict --max-pixels PIXELS, or the Segmenter's max_pixels" in message
        assert "\n" not in message and "bomb?" not in message
