"""``fcnseg predict`` warns once, in one line, when a colour model reads 16-bit images as
nearly black 8-bit RGB; never for 8-bit photos, bright 16-bit images or a model of bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import tiny_band_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main

tifffile = pytest.importorskip("tifffile")


def _grey(low: int, high: int, h: int = 24, w: int = 28) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (low + (high - low) * ((yy * w + xx) / (h * w - 1))).astype(np.uint16)


def _warnings(checkpoint: Path, inputs: list[Path], out: Path, capsys) -> list[str]:
    rc = main(["predict", "--checkpoint", str(checkpoint), *map(str, inputs), "--out",
               str(out), "--no-progress", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return [line for line in err.splitlines() if "nearly black" in line]


def test_two_dim_16_bit_tiffs_are_warned_about_once_naming_the_first(
        make_checkpoint, tmp_path, capsys):
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(first, _grey(100, 4000))
    tifffile.imwrite(second, _grey(200, 3000))
    lines = _warnings(make_checkpoint("same"), [first, second], tmp_path / "out", capsys)
    assert len(lines) == 1
    assert str(first) in lines[0] and str(second) not in lines[0]
    assert "0-16 of 0-255" in lines[0]  # round(100 / 257) - round(4000 / 257)
    assert "`bands: [intensity]`" in lines[0]


def test_an_8_bit_png_is_not_warned_about_even_dark(make_checkpoint, tmp_path, capsys):
    path = tmp_path / "night.png"
    Image.fromarray(np.full((24, 28, 3), 10, np.uint8)).save(path)
    assert _warnings(make_checkpoint("same"), [path], tmp_path / "out", capsys) == []


def test_a_16_bit_image_spanning_the_range_is_not_warned_about(make_checkpoint, tmp_path,
                                                                 capsys):
    path = tmp_path / "bright.tif"
    tifffile.imwrite(path, _grey(0, 65535))
    assert _warnings(make_checkpoint("same"), [path], tmp_path / "out", capsys) == []


def test_a_model_of_the_intensity_band_is_not_warned_about(tmp_path, capsys):
    model = tiny_band_model(["intensity"], [2000.0], [1000.0])
    checkpoint = save_checkpoint(tmp_path / "band.pt", model,
                                 class_names=["background", "cell", "nucleus"])
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, _grey(100, 4000))
    assert _warnings(checkpoint, [path], tmp_path / "out", capsys) == []


def test_a_segmenter_warns_once_of_dim_16_bit_files(segmenter_factory, tmp_path):
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(first, _grey(100, 4000))
    tifffile.imwrite(second, _grey(200, 3000))
    seg = segmenter_factory()
    with pytest.warns(UserWarning, match="nearly black") as caught:
        seg.predict_batch([first, second])
        seg.predict(second)
    lines = [str(w.message) for w in caught if "nearly black" in str(w.message)]
    assert len(lines) == 1 and lines[0].startswith(f"{first}:")


def test_a_segmenter_is_silent_for_an_8_bit_file(segmenter_factory, tmp_path, recwarn):
    path = tmp_path / "night.png"
    Image.fromarray(np.full((24, 28, 3), 10, np.uint8)).save(path)
    segmenter_factory().predict(path)
    assert not [w for w in recwarn if "nearly black" in str(w.message)]


@pytest.fixture
def segmenter_factory(make_checkpoint):
    from fcnseg.inference import Segmenter

    return lambda: Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")
