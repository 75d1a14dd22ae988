"""Colour maps, overlays, heatmaps and index PNGs."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from PIL import Image

from fcnseg.data.palette import voc_palette
from fcnseg.inference.visualize import (
    HeatmapStyle,
    add_legend,
    background_classes,
    blend,
    class_outlines,
    colorize,
    colormap_lut,
    heatmap,
    heatmap_picture,
    legend_entries,
    overlay,
    read_label_png,
    save_label_png,
    save_png,
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


# -- annotated pictures ----------------------------------------------------------------------

#: Saturated colours that anti-aliased dark text on white never produces.
_BRIGHT = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 0], [0, 0, 255], [255, 0, 255]], np.uint8)


def _colours(picture: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in picture.reshape(-1, 3)}


def test_background_is_the_class_named_or_declared_so_never_class_0_by_position() -> None:
    assert background_classes(["background", "cat"]) == [0]
    assert background_classes(["road", "car", "Void"]) == [2]
    assert background_classes(["_background_", "Unlabeled", "car"]) == [0, 1]
    assert background_classes(["Sky", "Building", "Car"]) == []  # sky is a class to show
    assert background_classes(["Sky", "Building", "Car"], declared="Sky") == [0]


def test_class_outlines_are_one_pixel_thin_on_the_object_side() -> None:
    label = np.zeros((6, 6), np.uint8)
    label[2:5, 1:4] = 1
    edge = class_outlines(label, exclude=[0])
    expected = np.zeros((6, 6), bool)
    expected[2:5, 1:4] = True
    expected[3, 2] = False  # the one interior pixel of the 3×3 square
    np.testing.assert_array_equal(edge, expected)


def test_overlay_outlines_draw_borders_in_full_colour() -> None:
    image = np.full((6, 8, 3), 100, np.uint8)
    label = _label()
    label[0] = 0
    out = overlay(image, label, _BRIGHT, alpha=0.5, exclude=[0], outlines=True)
    edge = class_outlines(label, exclude=[0])
    np.testing.assert_array_equal(out[edge], _BRIGHT[label[edge]])
    inside = (label != 0) & ~edge
    np.testing.assert_array_equal(out[inside], (100 + _BRIGHT[label[inside]].astype(int) + 1) // 2)
    np.testing.assert_array_equal(out[label == 0], image[label == 0])


def test_legend_lists_only_the_classes_present_with_their_colours() -> None:
    label = np.zeros((40, 40), np.uint8)
    label[5:20, 5:20] = 1
    label[25:35, 25:35] = 3
    names = ["background", "red thing", "green thing", "blue thing", "magenta thing"]
    entries = legend_entries(label, _BRIGHT, names, exclude=[0])
    assert [name for name, _ in entries] == ["red thing", "blue thing"]
    picture = np.full((40, 40, 3), 128, np.uint8)
    annotated = add_legend(picture, entries)
    assert annotated.shape[0] >= 40 and annotated.shape[1] > 40
    np.testing.assert_array_equal(annotated[:40, :40], picture)
    legend = _colours(annotated[:, 40:])
    assert (255, 0, 0) in legend and (0, 0, 255) in legend
    assert (0, 200, 0) not in legend and (255, 0, 255) not in legend


def test_legend_names_the_ignore_value_and_says_when_nothing_is_listed() -> None:
    label = np.array([[0, 255]], np.uint8)
    assert [n for n, _ in legend_entries(label, voc_palette(), ["bg"], ignore_index=255)] == \
        ["bg", "ignored"]
    empty = add_legend(np.zeros((30, 30, 3), np.uint8), [], empty_text="background only")
    assert empty.shape[1] > 30 and (empty[:, 30:] < 200).any(), "the note is written"


def test_heatmap_picture_has_a_title_and_a_colour_bar_from_vmax_to_vmin() -> None:
    scores = np.linspace(0.0, 1.0, 60 * 80).reshape(60, 80)
    plain = heatmap(scores, vmin=0.0, vmax=1.0)
    picture = heatmap_picture(scores, title="P(cat)")
    top = picture.shape[0] - 60  # the title row
    assert top > 0 and (picture[:top] < 100).any(), "the title is drawn above the map"
    np.testing.assert_array_equal(picture[top:, :80], plain)
    bar = picture[top:, 80:]
    lut = colormap_lut("viridis")
    rows = [r for r in range(60) if (bar[r] == lut[255]).all(axis=-1).any()]
    low = [r for r in range(60) if (bar[r] == lut[0]).all(axis=-1).any()]
    assert rows and low and max(rows) < min(low), "vmax at the top of the bar, vmin below"
    untitled = heatmap_picture(scores)
    assert untitled.shape[0] == 60


def test_heatmap_picture_over_the_photo_blends_at_alpha() -> None:
    scores = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    photo = np.full((3, 4, 3), 200, np.uint8)
    picture = heatmap_picture(scores, image=photo, style=HeatmapStyle(alpha=0.25, font_size=12))
    expected = np.round(0.75 * 200 + 0.25 * heatmap(scores, vmin=0, vmax=1).astype(float))
    np.testing.assert_array_equal(picture[:3, :4], expected.astype(np.uint8))
    with pytest.raises(ValueError, match="size"):
        heatmap_picture(scores, image=np.zeros((4, 4, 3), np.uint8))


def test_reliability_diagram_draws_bars_and_shades_the_gap() -> None:
    from fcnseg.inference.visualize import reliability_diagram

    def calibration(accuracy: float) -> dict:
        bins = [{"lower": b / 10, "upper": (b + 1) / 10, "count": 0, "confidence": math.nan,
                 "accuracy": math.nan} for b in range(10)]
        bins[8] = {"lower": 0.8, "upper": 0.9, "count": 50, "confidence": 0.85,
                   "accuracy": accuracy}
        return {"ece": abs(0.85 - accuracy), "pixels": 50, "bins": bins}

    def reddish(picture: np.ndarray) -> int:
        r, g, b = (picture[..., k].astype(int) for k in range(3))
        return int(((r > g + 40) & (r > b + 40)).sum())

    bar = (76, 120, 168)
    picture = reliability_diagram(calibration(0.5))
    exact = reliability_diagram(calibration(0.85))
    assert bar in _colours(picture) and bar in _colours(exact)
    # Both draw the key and a confidence mark; only the over-confident one shades a gap.
    assert reddish(picture) > reddish(exact) + 500
    empty = reliability_diagram({"ece": math.nan, "pixels": 0, "bins": []})
    assert empty.shape == picture.shape


def test_reliability_gap_has_its_keys_colour_whichever_side_accuracy_lies() -> None:
    from fcnseg.inference.visualize import reliability_diagram

    left, top, plot, key_x = 58, 56, 400, 58 + 400 + 16  # as drawn
    # Under-confident (the gap inside the accuracy bar), then over-confident (above it).
    for lower, confidence, accuracy in ((0.1, 0.15, 0.9), (0.8, 0.85, 0.1)):
        bins = [{"lower": lower, "upper": lower + 0.1, "count": 50, "confidence": confidence,
                 "accuracy": accuracy}]
        picture = reliability_diagram({"ece": abs(confidence - accuracy), "pixels": 50,
                                       "bins": bins})
        key = tuple(int(v) for v in picture[top + 2 * 20 + 6, key_x + 7])  # the gap's swatch
        # Heights 0.3 to 0.7 of the bin lie in the gap, clear of the diagonal.
        inside = picture[round(top + 0.3 * plot):round(top + 0.7 * plot),
                         round(left + lower * plot) + 3:round(left + (lower + 0.1) * plot) - 3]
        assert (inside == key).all(), (confidence, accuracy)


def test_reliability_diagrams_key_lies_outside_the_plot_where_bars_can_reach() -> None:
    from fcnseg.inference.visualize import reliability_diagram

    # Every bin full to 1.0: no part of the plot is free for a key.
    bins = [{"lower": b / 10, "upper": (b + 1) / 10, "count": 10, "confidence": 1.0,
             "accuracy": 1.0} for b in range(10)]
    picture = reliability_diagram({"ece": 0.0, "pixels": 100, "bins": bins})
    left, top, plot = 58, 56, 400  # the plot's corner and side, as drawn
    # Where a key inside the axes was (its upper left) holds only bars, their outlines and
    # the white gaps between them: no text, no swatch.
    inside = picture[top + 8:top + 100, left + 8:left + 250].reshape(-1, 3)
    allowed = {(76, 120, 168), (40, 70, 110), (255, 255, 255), (232, 232, 232)}
    assert {tuple(int(v) for v in c) for c in np.unique(inside, axis=0)} <= allowed
    # The key is beside the plot: its text (dark ink) is there.
    beside = picture[top:top + 100, left + plot + 2:]
    assert (beside.max(axis=-1) < 80).sum() > 100


def _every_pair_of_values() -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(256, dtype=np.uint8)
    image = np.repeat(values, 256).reshape(256, 256, 1).repeat(3, axis=2)
    picture = np.tile(values, 256).reshape(256, 256, 1).repeat(3, axis=2)
    return image, picture


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.0275591, 1 / 3, 1.0, 0.0])
def test_blend_gives_the_rounded_float32_mix_for_every_pair_of_values(alpha) -> None:
    image, picture = _every_pair_of_values()
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * picture.astype(np.float32)
    expected = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(blend(image, picture, alpha), expected)


def test_blend_with_a_numpy_float64_alpha_mixes_in_float64_as_numpy_does() -> None:
    image, picture = _every_pair_of_values()
    alpha = np.float64(0.0275591)
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * picture.astype(np.float32)
    assert mixed.dtype == np.float64
    expected = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(blend(image, picture, alpha), expected)
    # The same value as a Python float mixes in float32 (not the table of the float64 one).
    single = (1 - 0.0275591) * image.astype(np.float32) + 0.0275591 * picture.astype(np.float32)
    np.testing.assert_array_equal(blend(image, picture, 0.0275591),
                                  np.clip(np.round(single), 0, 255).astype(np.uint8))


def test_colorize_takes_palette_rows_and_clips_out_of_range_labels() -> None:
    pal = voc_palette()
    small = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(colorize(small, pal), pal[small.astype(np.int64)])
    wide = np.array([[-1, 3], [300, 7]])
    np.testing.assert_array_equal(colorize(wide, pal), pal[[[0, 3], [255, 7]]])


def _photo_like(height: int = 60, width: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), float)
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def test_pictures_are_png_with_run_length_compression_and_exact_pixels(tmp_path) -> None:
    label = np.zeros((60, 80), dtype=np.uint8)
    label[10:50, 20:60] = 15
    picture = add_legend(overlay(_photo_like(), label, voc_palette(), exclude=[0]),
                         [("person", (192, 128, 128))])
    save_png(tmp_path / "overlay.png", picture)
    with Image.open(tmp_path / "overlay.png") as img:
        assert img.format == "PNG"
        np.testing.assert_array_equal(np.asarray(img), picture)
    # Run-length matches only: several times faster to compress than Pillow's default.
    reference = tmp_path / "reference.png"
    Image.fromarray(picture).save(reference, format="PNG", compress_type=zlib.Z_RLE)
    assert (tmp_path / "overlay.png").read_bytes() == reference.read_bytes()


def test_legend_drawn_again_for_the_same_classes_is_the_same_and_writable() -> None:
    picture = _photo_like()
    entries = [("cat", (64, 0, 0)), ("person", (192, 128, 128))]
    first = add_legend(picture, entries)
    again = add_legend(picture.copy(), [("cat", [64, 0, 0]), ("person", np.array([192, 128, 128]))])
    np.testing.assert_array_equal(again, first)
    assert again.flags.writeable
    other = add_legend(picture, entries[:1])
    assert other.shape[0] == first.shape[0] and not np.array_equal(other, first)


def test_the_legend_of_a_large_photo_scales_with_it() -> None:
    """A 4000×3000 photo shown at screen size shows its legend as a 640×480 one does."""
    entries = [("product", (128, 0, 0)), ("scratch", (0, 128, 0)), ("dent", (128, 128, 0))]
    small = np.zeros((480, 640, 3), np.uint8)
    large = np.zeros((3000, 4000, 3), np.uint8)
    legend_small = add_legend(small, entries).shape[1] - 640
    legend_large = add_legend(large, entries).shape[1] - 4000
    assert 0.8 * 6.25 < legend_large / legend_small < 1.2 * 6.25
    # text, swatches and padding alike: the legend's ink spans a like share of its height
    ink_small = np.flatnonzero((add_legend(small, entries)[:, 640:] < 250).any(axis=(1, 2)))
    ink_large = np.flatnonzero((add_legend(large, entries)[:, 4000:] < 250).any(axis=(1, 2)))
    assert ink_large.max() / 3000 == pytest.approx(ink_small.max() / 480, rel=0.1)


def test_text_of_a_tall_narrow_picture_is_bounded_by_its_width() -> None:
    from fcnseg.inference.visualize import text_size_for

    assert text_size_for(480) == 22 and text_size_for(3000, 4000) == 136
    assert text_size_for(8000, 1000) == 83 and text_size_for(100, 50) == 12


_NAMES = ("Pétale rose", "Straße", "Ωmega")


def _legend_text(name: str) -> np.ndarray:
    return add_legend(np.zeros((120, 40, 3), np.uint8), [(name, (255, 0, 0))], font_size=20)


def test_legend_draws_accented_and_greek_names_with_their_own_glyphs() -> None:
    from fcnseg.inference import visualize

    font, drawn = visualize.fitted_text(_NAMES, 20)
    assert drawn == _NAMES
    missing = visualize._glyph(font, "\U000f0000")
    for ch in "éßΩ":
        assert font.getmask(ch).getbbox() is not None
        assert visualize._glyph(font, ch) != missing, ch
    # Drawn as the font draws them: the name differs in the picture where one letter differs.
    for name in _NAMES:
        boxed = name.replace(name[1] if name != "Ωmega" else "Ω", "\U000f0000")
        assert not np.array_equal(_legend_text(name), _legend_text(boxed)), name


def test_a_name_no_font_has_drops_its_accents_and_marks_other_characters(monkeypatch) -> None:
    from fcnseg.inference import visualize

    monkeypatch.setattr(visualize, "_font_files", lambda: ())  # Pillow's bundled font only
    visualize._fonts.cache_clear()
    visualize.fitted_text.cache_clear()
    try:
        _, drawn = visualize.fitted_text(("Pétale rose", "日本"), 20)
        assert drawn == ("Petale rose", "??")
    finally:
        visualize._fonts.cache_clear()
        visualize.fitted_text.cache_clear()
