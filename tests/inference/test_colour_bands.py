"""TIFFs of other band counts than a colour model takes: ``fcnseg predict``, ``Segmenter``
and the image reader decide alike (one rule, one line), a band the file marks as alpha
(ExtraSamples) counting as transparency, not as a band of data."""

from __future__ import annotations

import numpy as np
import pytest

from fcnseg.cli.main import main
from fcnseg.data.images import ImageError, load_image

tifffile = pytest.importorskip("tifffile")


def write_bands(path, bands: int, *, alpha: bool = False, planar: bool = False) -> str:
    """A 24×32 uint8 TIFF of ``bands`` samples, the last one marked alpha where ``alpha``."""
    rng = np.random.default_rng(bands)
    pixels = rng.integers(0, 256, (24, 32, bands), dtype=np.uint8)
    if alpha:
        pixels[..., -1] = 255
    extra = {"extrasamples": [2]} if alpha else {}
    data = pixels.transpose(2, 0, 1) if planar else pixels
    tifffile.imwrite(path, data, photometric="minisblack",
                     planarconfig="separate" if planar else "contig", **extra)
    return str(path)


def predict_problem(checkpoint, path, out, capsys) -> str:
    rc = main(["predict", "--checkpoint", str(checkpoint), path, "--out", str(out),
               "--no-progress", "--precision", "fp32"])
    assert rc == 1
    line = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("fcnseg predict: ")
    return line.removeprefix("skipped ")  # a TIFF of one tile is read as an image


@pytest.mark.parametrize("bands, planar", [(5, False), (4, True), (2, False)])
def test_segmenter_refuses_other_bands_with_predicts_line(
        segmenter, make_checkpoint, tmp_path, capsys, bands, planar):
    path = write_bands(tmp_path / "bands.tif", bands, planar=planar)
    with pytest.raises(ImageError) as refused:
        segmenter.predict(path)
    assert str(refused.value) == predict_problem(make_checkpoint("same"), path,
                                                 tmp_path / "out", capsys)
    assert str(refused.value).startswith(f"{path}: {bands} band(s) of uint8")


def test_the_image_reader_names_the_band_count_of_a_five_band_tiff(tmp_path):
    path = write_bands(tmp_path / "five.tif", 5)
    with pytest.raises(ImageError, match=r"five\.tif: 5 band\(s\) of uint8, but the model "
                                         r"takes RGB or grey"):
        load_image(path)


def test_a_two_band_tiff_without_alpha_says_no_band_is_marked_alpha(tmp_path):
    with pytest.raises(ImageError, match=r"2 band\(s\) of uint8 \(none marked alpha\)"):
        load_image(write_bands(tmp_path / "two.tif", 2))


def test_grey_with_a_marked_alpha_band_is_read_as_grey_everywhere(
        segmenter, make_checkpoint, tmp_path, capsys):
    path = write_bands(tmp_path / "grey_alpha.tif", 2, alpha=True)
    grey = tifffile.imread(path)[..., 0]
    np.testing.assert_array_equal(load_image(path), np.repeat(grey[..., None], 3, axis=-1))
    assert segmenter.predict(path).label.shape == (24, 32)
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), path,
               "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32"])
    assert rc == 0, capsys.readouterr().err
