"""``fcnseg quantize --calib FOLDER``: which images calibrate, in which order."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.quantize import calibration_images


def _save(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 6, 3), value, np.uint8)).save(path)


def _values(folder, limit: int) -> list[int]:
    return [int(a[0, 0, 0]) for a in calibration_images(folder, limit, 64)()]


def test_images_are_spread_over_the_folder_in_name_order(tmp_path) -> None:
    for k in range(5):
        _save(tmp_path / f"im{k}.png", 10 * k)
    assert _values(tmp_path, 3) == [0, 20, 40]


def test_the_images_subfolder_is_read_only_when_the_folder_has_none(tmp_path) -> None:
    _save(tmp_path / "images" / "b.png", 7)
    assert _values(tmp_path, 8) == [7]
    _save(tmp_path / "a.png", 3)
    assert _values(tmp_path, 8) == [3]


def test_an_empty_folder_names_both_places_it_looked(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="the calibration set is empty") as e:
        calibration_images(tmp_path, 8, 64)
    assert f"in {tmp_path} or in {tmp_path / 'images'}" in str(e.value)


def test_a_corrupt_calibration_image_gets_advice_that_fits_quantize(tmp_path) -> None:
    _save(tmp_path / "a.png", 3)
    _save(tmp_path / "b.png", 5)
    whole = (tmp_path / "b.png").read_bytes()
    (tmp_path / "b.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError) as e:
        list(calibration_images(tmp_path, 8, 64)())
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'b.png'}: unreadable calibration image")
    assert "skip_bad" not in message and "train" not in message
    assert message.endswith(f"remove it from {tmp_path}, or give --calib another folder")


def test_calibration_images_are_read_as_training_reads_them(tmp_path) -> None:
    import tifffile

    from fcnseg.data.io import read_image

    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(grey).save(tmp_path / "a_grey.png")
    Image.fromarray(np.full((4, 6, 3), 9, np.uint8)).convert("P").save(tmp_path / "b_pal.png")
    rgb16 = np.random.default_rng(0).integers(0, 65536, (4, 6, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c_rgb16.tif", rgb16, photometric="rgb")
    got = list(calibration_images(tmp_path, 8, 64)())
    assert len(got) == 3
    for image, name in zip(got, ("a_grey.png", "b_pal.png", "c_rgb16.tif"), strict=True):
        np.testing.assert_array_equal(image, read_image(tmp_path / name))


class _Stop(Exception):
    """Raised by the stand-in for quantize_model once the calibration images are read."""


def test_a_band_models_calibration_folder_is_listed_once(tmp_path, monkeypatch) -> None:
    import tifffile
    from tiny_models import tiny_band_model

    import fcnseg.cli.quantize as quantize_cli
    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.cli.main import main

    model = tiny_band_model(["b1", "b2"], [100.0, 200.0], [10.0, 20.0])
    ckpt = save_checkpoint(tmp_path / "bands.pt", model, class_names=["a", "b", "c"])
    calib = tmp_path / "calib"
    calib.mkdir()
    for k in range(3):
        tifffile.imwrite(calib / f"s{k}.tif", np.full((8, 8, 2), 100 * k, np.uint16),
                         photometric="minisblack", planarconfig="contig")
    listed = []
    iterdir = type(calib).iterdir

    def counting_iterdir(self):
        if self == calib:
            listed.append(self)
        return iterdir(self)

    def read_calibration(model, out, *, calibration, **_):
        assert len(list(calibration())) == 3
        raise _Stop

    monkeypatch.setattr(type(calib), "iterdir", counting_iterdir)
    monkeypatch.setattr(quantize_cli, "quantize_model", read_calibration)
    with pytest.raises(_Stop):
        main(["quantize", str(ckpt), "--calib", str(calib), "--out", str(tmp_path / "m.onnx")])
    assert len(listed) == 1
