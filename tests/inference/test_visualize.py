"""Colour maps, overlays, heatmaps and index PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcnseg.data.palette import voc_palette
from fcnseg.inference.visualize import (
    colorize,
    colormap_lut,
    heatmap,
    overlay,
    read_label_png,
    save_label_png,
)


def _label() -> np.ndarray:
    label = np.zeros((6, 8), dtype=np.uint8)
    label[:, 2:4] = 1
    label[:, 4:6] = 3
    label[0] = 255
    return label


def test_label_png_round_trips_indices_and_carries_the_palette(tmp_path) -> None:
    path = tmp_path / "out" / "label.png"
    save_label_png(path, _label(), voc_palette())
    with Image.open(path) as img:
        assert img.mode == "P"
        pal = np.array(img.getpalette()[: 256 * 3]).reshape(-1, 3)
    np.testing.assert_array_equal(pal[[0, 1, 3, 255]], voc_palette()[[0, 1, 3, 255]])
    np.testing.assert_array_equal(read_label_png(path), _label())


def test_label_png_of_a_wide_model_is_16_bit_and_round_trips(tmp_path) -> None:
    label = np.array([[0, 300], [65535, 7]])
    save_label_png(tmp_path / "wide.png", label, voc_palette())
    np.testing.assert_array_equal(read_label_png(tmp_path / "wide.png"), label)


def test_label_png_refuses_negative_values_naming_the_file(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"x\.png: label values must be in 0\.\.65535"):
        save_label_png(tmp_path / "x.png", np.full((2, 2), -1), voc_palette())
    assert not (tmp_path / "x.png").exists()


def test_overlay_blends_image_and_label_colours() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    label, pal = _label(), voc_palette()
    np.testing.assert_array_equal(overlay(image, label, pal, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, label, pal, alpha=1.0), colorize(label, pal))
    half = overlay(image, label, pal, alpha=0.5)
    expected = (image.astype(float) + colorize(label, pal)) / 2
    assert half.shape == image.shape and half.dtype == np.uint8
    assert np.abs(half - expected).max() <= 0.5 + 1e-9
    kept = overlay(image, label, pal, alpha=1.0, exclude=[0])
    np.testing.assert_array_equal(kept[label == 0], image[label == 0])


def test_overlay_checks_sizes() -> None:
    with pytest.raises(ValueError, match="same size"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), voc_palette())


@pytest.mark.parametrize("name", ["viridis", "jet", "gray"])
def test_heatmap_maps_the_range_onto_the_colormap(name) -> None:
    lut = colormap_lut(name)
    scores = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    picture = heatmap(scores, name, vmin=0.0, vmax=1.0)
    assert picture.shape == (3, 4, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(picture[0, 0], lut[0])
    np.testing.assert_array_equal(picture[-1, -1], lut[255])
    # Without vmin/vmax the map's own range is used: scaling the scores changes nothing.
    np.testing.assert_array_equal(heatmap(scores * 7 + 3, name), picture)


def test_colormaps_run_from_dark_to_bright() -> None:
    assert tuple(colormap_lut("viridis")[0]) == (68, 1, 84)
    assert tuple(colormap_lut("viridis")[255]) == (253, 231, 37)
    assert tuple(colormap_lut("jet")[0]) == (0, 0, 128)
    assert tuple(colormap_lut("jet")[255]) == (128, 0, 0)
    gray = colormap_lut("gray")[:, 0].astype(int)
    assert (np.diff(gray) >= 0).all() and gray[0] == 0 and gray[-1] == 255


def test_heatmap_of_a_constant_map_and_bad_shapes() -> None:
    flat = heatmap(np.full((2, 3), 0.4))
    assert (flat == colormap_lut("viridis")[0]).all()
    with pytest.raises(ValueError, match="H×W"):
        heatmap(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="unknown colormap"):
        heatmap(np.zeros((2, 3)), "rainbow")
