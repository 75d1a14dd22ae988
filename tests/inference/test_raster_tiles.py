"""Huge rasters by tiles: georeferencing kept, equal to whole-image prediction, no seam,
nodata written as nodata, resumable."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from floats import assert_close_to_scale, assert_labels_match
from ondisk import record_reads
from torch import nn
from traced import peak_traced

from fcnseg.inference.rasters import (
    NODATA_LABEL,
    RasterJob,
    TileSettings,
    blend_profile,
    held_raster,
    predict_raster,
    segment_tiles,
    tile_count,
    tile_grid,
)

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

TRANSFORM = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5200000.0)
CLASSES = ("ground", "water", "trees")


def local_model(bands: int = 3) -> nn.Module:
    """Two 3×3 convolutions: each output pixel sees 2 pixels each way, so tiles whose blending
    weight is zero within 2 pixels of their inner edges give exactly the whole image's logits."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.Tanh(),
                         nn.Conv2d(8, len(CLASSES), 3, padding=1)).eval()


def tile_fn(model: nn.Module):
    @torch.inference_mode()
    def run(batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch.astype(np.float32) / 1000.0).permute(0, 3, 1, 2)
        return model(x)
    return run


def scene(h: int, w: int, bands: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = [np.sin(yy / 9.0 + b) * np.cos(xx / 13.0 - b) for b in range(bands)]
    return (np.stack(smooth, -1) * 20000 + 30000).astype(np.uint16)


def write_tif(path, array, nodata=None):
    h, w, n = array.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=n, dtype=array.dtype,
                       crs="EPSG:32632", transform=TRANSFORM, nodata=nodata) as ds:
        ds.write(np.moveaxis(array, -1, 0))


def stopped_at_call(n: int, run):
    """``run``, but Ctrl-C (a KeyboardInterrupt) at its ``n``-th call."""
    calls = []

    def interrupted(batch):
        calls.append(len(batch))
        if len(calls) == n:
            raise KeyboardInterrupt
        return run(batch)
    return interrupted


def whole_logits(model: nn.Module, array: np.ndarray) -> np.ndarray:
    return tile_fn(model)(array[None])[0].numpy()


SETTINGS = TileSettings(tile=48, overlap=16, batch_size=3, probs=True, block=16)


@pytest.fixture()
def predicted(tmp_path):
    array = scene(150, 170)
    write_tif(tmp_path / "in.tif", array)
    model = local_model()
    outcome = predict_raster(tile_fn(model), tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                             SETTINGS)
    return tmp_path, array, model, outcome


def test_output_keeps_the_input_crs_and_transform(predicted):
    tmp_path, _, _, outcome = predicted
    with rasterio.open(outcome.output) as ds:
        assert ds.crs.to_epsg() == 32632 and ds.transform == TRANSFORM
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata == NODATA_LABEL
        assert ds.compression is not None and ds.block_shapes[0] == (16, 16)
    assert outcome.tiles == tile_count(150, 170, SETTINGS)


def test_blended_tiles_equal_whole_image_prediction_away_from_the_borders(predicted):
    tmp_path, array, model, _ = predicted
    crop = array[20:130, 25:150]
    with rasterio.open(tmp_path / "out_probs.tif") as ds:
        probs = ds.read()[:, 20 + 2:130 - 2, 25 + 2:150 - 2]  # the crop's own border sees less
    expected = torch.softmax(torch.from_numpy(whole_logits(model, crop)), 0).numpy()
    assert_close_to_scale(probs, expected[:, 2:-2, 2:-2])
    with rasterio.open(tmp_path / "out.tif") as ds:
        labels = ds.read(1)
    full = whole_logits(model, array).argmax(0)
    assert (labels == full).mean() > 0.999


def test_tiles_held_in_memory_equal_the_rasters_written(predicted):
    tmp_path, array, model, _ = predicted
    held = segment_tiles(tile_fn(model), held_raster(array), CLASSES, SETTINGS)
    with rasterio.open(tmp_path / "out.tif") as labels, \
            rasterio.open(tmp_path / "out_probs.tif") as probs:
        np.testing.assert_array_equal(held["label"], labels.read(1))
        np.testing.assert_array_equal(held["probs"], probs.read())


def test_the_labels_are_the_same_with_or_without_the_probabilities(predicted):
    tmp_path, array, model, _ = predicted
    labels_only = segment_tiles(tile_fn(model), held_raster(array), CLASSES,
                                replace(SETTINGS, probs=False))
    assert set(labels_only) == {"label"}
    with rasterio.open(tmp_path / "out.tif") as labels:
        np.testing.assert_array_equal(labels_only["label"], labels.read(1))


@pytest.mark.parametrize("axis", [1, 2], ids=["rows", "columns"])
def test_no_seam_where_tiles_meet(predicted, axis):
    # The largest jump of a class probability across a tile's first or last pixel (down or
    # across) is no larger than the largest jump elsewhere.
    tmp_path, *_ = predicted
    with rasterio.open(tmp_path / "out_probs.tif") as ds:
        p = ds.read().astype(np.float64)
    starts, _, size, _ = tile_grid(p.shape[axis], p.shape[axis], SETTINGS.tile,
                                   SETTINGS.overlap)
    edges = sorted({e for s in starts for e in (s, s + size) if 0 < e < p.shape[axis]})
    assert len(edges) >= 6
    jumps = np.moveaxis(np.abs(np.diff(p, axis=axis)), axis, 0)  # jump between pixel e-1, e
    at_edges = jumps[[e - 1 for e in edges]].max()
    elsewhere = np.delete(jumps, [e - 1 for e in edges], axis=0).max()
    assert at_edges <= elsewhere


def test_blend_profile_is_zero_at_inner_edges_flat_at_borders():
    p = blend_profile(48, 16, at_start_border=False, at_end_border=True)
    assert p[:4].max() == 0 and p[-16:].min() == 1 and np.all(np.diff(p) >= 0)
    assert (blend_profile(48, 16, True, True) == 1).all()


def test_nodata_pixels_are_written_as_nodata(tmp_path):
    array = scene(60, 70)
    array[10:14, 20:30] = 0
    write_tif(tmp_path / "in.tif", array, nodata=0)
    predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                   TileSettings(tile=32, overlap=8, block=16))
    with rasterio.open(tmp_path / "out.tif") as ds:
        labels = ds.read(1)
    assert (labels[10:14, 20:30] == NODATA_LABEL).all()
    assert (labels != NODATA_LABEL).sum() == labels.size - 40


def test_probabilities_and_uncertainty_are_nan_nodata_where_the_input_has_no_data(tmp_path):
    array = scene(60, 70)
    array[10:14, 20:30] = 0
    write_tif(tmp_path / "in.tif", array, nodata=0)
    outcome = predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif",
                             CLASSES, TileSettings(tile=32, overlap=8, block=16, probs=True,
                                                   uncertainty=True))
    missing = np.zeros((60, 70), bool)
    missing[10:14, 20:30] = True
    for path in outcome.extra_outputs:  # NAME_probs.tif, NAME_uncertainty.tif
        with rasterio.open(path) as ds:
            values = ds.read()
            assert np.isnan(ds.nodata) and ds.dtypes[0] == "float32"
            assert ds.read_masks(1)[missing].max() == 0 and ds.read_masks(1)[~missing].min() == 255
        assert np.isnan(values[:, missing]).all() and np.isfinite(values[:, ~missing]).all()
    assert len(outcome.extra_outputs) == 2


def test_the_label_raster_carries_the_palette_as_colour_table_and_the_class_names(tmp_path):
    write_tif(tmp_path / "in.tif", scene(40, 50))
    palette = np.array([[10, 20, 30], [200, 0, 0], [0, 150, 40]], np.uint8)
    predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                   TileSettings(tile=32, overlap=8, block=16), RasterJob(palette=palette))
    with rasterio.open(tmp_path / "out.tif") as ds:
        colours = ds.colormap(1)
        assert [colours[i] for i in range(3)] == [(10, 20, 30, 255), (200, 0, 0, 255),
                                                  (0, 150, 40, 255)]
        assert colours[NODATA_LABEL][3] == 0  # nodata: transparent
        assert json.loads(ds.tags()["class_names"]) == list(CLASSES)
        assert [ds.tags(1)[f"class_{i}"] for i in range(3)] == list(CLASSES)


def test_rerun_after_an_interruption_writes_only_the_rest(tmp_path):
    array = scene(120, 90)
    write_tif(tmp_path / "in.tif", array)
    model = local_model()
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)  # 5 rows of 4 tiles
    predict_raster(tile_fn(model), tmp_path / "in.tif", tmp_path / "ref.tif", CLASSES, settings)
    interrupted = stopped_at_call(11, tile_fn(model))  # in the third tile row
    with pytest.raises(KeyboardInterrupt):
        predict_raster(interrupted, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    record = json.loads((tmp_path / "out.tif.partial.json").read_text())
    assert 0 < record["rows_done"] < 120 and not record["complete"]
    resumed = []

    def counted(batch):
        resumed.append(len(batch))
        return tile_fn(model)(batch)

    outcome = predict_raster(counted, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                             settings)
    assert outcome.resumed_from_row == record["rows_done"]
    assert sum(resumed) < tile_count(120, 90, settings)
    with rasterio.open(tmp_path / "out.tif") as a, rasterio.open(tmp_path / "ref.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    again = predict_raster(counted, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    assert again.skipped


def test_predict_command_tiles_a_geotiff_into_a_label_geotiff(make_checkpoint, segmenter,
                                                              smooth_image, tmp_path, capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    write_tif(tmp_path / "five.tif", scene(40, 40, bands=5))
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "scene.tif"),
               str(tmp_path / "five.tif"), "--out", str(out), "--no-progress",
               "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 1
    assert [line for line in err.splitlines() if "five.tif" in line] == [
        f"fcnseg predict: {tmp_path / 'five.tif'}: 5 band(s) of uint16, but the model takes "
        f"RGB or grey (1 or 3 bands of 8 or 16 bits): segment it with a model trained on "
        f"these bands"]
    with rasterio.open(out / "scene.tif") as ds:
        assert ds.crs.to_epsg() == 32632 and ds.transform == TRANSFORM
        assert ds.shape == smooth_image.shape[:2]
        labels = ds.read(1)
    # One tile covers this small scene: the label is the whole image's, read as predict reads.
    whole = segmenter.predict(smooth_image, return_probs=True)
    assert_labels_match(labels, whole.label, whole.probs)


def test_shares_of_the_tile_rows_joined_equal_one_run(tmp_path):
    from fcnseg.inference.rasters import merge_parts, part_path

    array = scene(130, 70)
    write_tif(tmp_path / "in.tif", array)
    run = tile_fn(local_model())
    # One tile a batch: every tile runs the same kernels in both, so the outputs are identical.
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16, probs=True)
    predict_raster(run, tmp_path / "in.tif", tmp_path / "one.tif", CLASSES, settings)
    for k in range(3):
        predict_raster(run, tmp_path / "in.tif", part_path(tmp_path / "out.tif", k), CLASSES,
                       settings, RasterJob(part=(k, 3)))
    merge_parts(tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings, 3)
    for name in ("", "_probs"):
        with rasterio.open(tmp_path / f"out{name}.tif") as a, \
                rasterio.open(tmp_path / f"one{name}.tif") as b:
            assert a.transform == b.transform
            np.testing.assert_array_equal(a.read(), b.read())
    assert sorted(p.name for p in tmp_path.glob("out*")) == [
        "out.tif", "out.tif.done.json", "out_probs.tif"]
    again = predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    assert again.skipped


def test_a_16_bit_rgb_raster_is_segmented_as_its_8_bit_scaling(segmenter, smooth_image,
                                                                tmp_path):
    from fcnseg.data.rasters import raster_info
    from fcnseg.inference.rasters import segmenter_tile_fn

    write_tif(tmp_path / "eight.tif", smooth_image)
    write_tif(tmp_path / "sixteen.tif", smooth_image.astype(np.uint16) * 257)
    outs = {}
    for name in ("eight", "sixteen"):
        path = tmp_path / f"{name}.tif"
        predict_raster(segmenter_tile_fn(segmenter, raster_info(path)), path,
                       tmp_path / f"{name}_out.tif", CLASSES_4, TileSettings(tile=32, overlap=8))
        with rasterio.open(tmp_path / f"{name}_out.tif") as ds:
            outs[name] = ds.read()
    np.testing.assert_array_equal(outs["sixteen"], outs["eight"])


CLASSES_4 = ("background", "cat", "dog", "potted plant")


def test_labels_are_the_argmax_of_the_blended_sums_first_class_on_ties():
    from fcnseg.inference.rasters import _argmax_classes

    sums = np.random.default_rng(0).normal(size=(5, 20, 40)).astype(np.float32)[:, :, 3:31]
    sums[:, 0, 0] = 1.0  # a tie between every class
    np.testing.assert_array_equal(_argmax_classes(sums), sums.argmax(0))


def test_a_plain_tiff_is_segmented_without_georeferencing_warnings(tmp_path):
    import warnings

    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", scene(60, 50, bands=5), photometric="minisblack",
                     planarconfig="contig")
    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)
        outcome = predict_raster(tile_fn(local_model(5)), tmp_path / "plain.tif",
                                 tmp_path / "out.tif", CLASSES, SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(outcome.output) as ds:
            assert ds.crs is None and (ds.height, ds.width) == (60, 50)


def test_the_preview_blends_the_labels_over_the_rgb_bands_at_a_bounded_size(tmp_path,
                                                                           monkeypatch):
    import tifffile
    from PIL import Image

    import fcnseg.inference.rasters as rasters
    from fcnseg.data.palette import voc_palette
    from fcnseg.inference.files import PictureStyle

    monkeypatch.setattr(rasters, "PREVIEW_SIDE", 40)
    array = scene(130, 70, bands=5)
    array[..., 2] = 1000  # green flat: the stretch leaves it at 0
    tifffile.imwrite(tmp_path / "in.tif", array, photometric="minisblack",
                     planarconfig="contig")
    label = np.zeros((130, 70), np.uint8)
    label[:, 35:] = 1
    label[:10] = NODATA_LABEL
    with rasterio.open(tmp_path / "label.tif", "w", driver="GTiff", height=130, width=70,
                       count=1, dtype="uint8") as ds:
        ds.write(label[None])
    bands = ["nir", "red", "green", "blue", "swir1"]
    path = rasters.write_raster_preview(tmp_path / "in.tif", tmp_path / "label.tif",
                                        tmp_path / "in_overlay.png", voc_palette(), bands=bands,
                                        style=PictureStyle(alpha=1.0, unblended=(0,),
                                                           legend=False))
    picture = np.asarray(Image.open(path))
    assert picture.shape == (33, 18, 3)  # every 4th pixel: at most 40 on the longest side
    assert (picture[3:, 9:] == voc_palette()[1]).all()  # class 1 in its colour
    left = picture[3:, :9].astype(int)  # class 0 excluded: the picture, red from band 1
    assert left[..., 0].max() == 255 and (left[..., 1] == 0).all()
    stretched = rasters.display_rgb(array[::4, ::4], bands, ("red", "green", "blue"))
    np.testing.assert_array_equal(picture[:3], stretched[:3])  # nodata: the picture


def test_the_preview_of_bands_shows_each_class_in_its_legend_colour(tmp_path):
    from PIL import Image

    from fcnseg.inference.files import PictureStyle
    from fcnseg.inference.rasters import write_raster_preview

    # 4-band uint16 (blue, green, red, nir): bright in blue, dark in red on the left half
    # (water as a stretched picture shows it, bright blue), the reverse on the right.
    array = np.zeros((40, 60, 4), np.uint16)
    array[:, :30] = (3000, 900, 300, 200)
    array[:, 30:] = (300, 900, 3000, 2000)
    with rasterio.open(tmp_path / "in.tif", "w", driver="GTiff", height=40, width=60, count=4,
                       dtype="uint16") as ds:
        ds.write(np.moveaxis(array, -1, 0))
        ds.descriptions = ("blue", "green", "red", "nir")
    label = np.full((40, 60), 2, np.uint8)  # water everywhere: green in the legend
    _write_label(tmp_path / "label.tif", label)
    palette = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]], np.uint8)
    path = write_raster_preview(tmp_path / "in.tif", tmp_path / "label.tif",
                                tmp_path / "in_overlay.png", palette,
                                style=PictureStyle(alpha=0.5, legend=False))
    picture = np.asarray(Image.open(path)).astype(int)
    for side in (picture[:, :30], picture[:, 30:]):
        # The class colour over the picture's lightness alone: the legend's hue, whatever
        # the bands' own (half the colour's differences between channels).
        np.testing.assert_allclose(side[..., 1] - side[..., 2], (180 - 75) / 2, atol=1)
        np.testing.assert_allclose(side[..., 1] - side[..., 0], (180 - 60) / 2, atol=1)


@pytest.mark.parametrize("blocks", [None, 64], ids=["strips", "tiles"])
def test_the_preview_holds_a_strip_of_the_raster_not_the_whole_raster(tmp_path, monkeypatch,
                                                                      blocks):

    import tifffile  # noqa: F401 - imported before tracing: the peak is the preview's alone

    import fcnseg.inference.rasters as rasters
    from fcnseg.data.palette import voc_palette
    from fcnseg.inference.files import PictureStyle

    monkeypatch.setattr(rasters, "PREVIEW_SIDE", 96)
    h, w = 4800, 1000  # every 50th pixel, read 300 rows at a time (tiles: across blocks)
    array = np.random.default_rng(0).integers(0, 9000, (h, w, 3), dtype=np.uint16)
    tiling = {} if blocks is None else {"tiled": True, "blockxsize": blocks,
                                        "blockysize": blocks}
    for name, a in (("in.tif", array), ("label.tif", np.ones((h, w, 1), np.uint8))):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", height=h, width=w,
                           count=a.shape[2], dtype=a.dtype, crs="EPSG:32632",
                           transform=TRANSFORM, **tiling) as ds:
            ds.write(np.moveaxis(a, -1, 0))
    _, peak = peak_traced(lambda: rasters.write_raster_preview(
        tmp_path / "in.tif", tmp_path / "label.tif", tmp_path / "in_overlay.png", voc_palette(),
        style=PictureStyle(legend=False)))
    assert peak < array.nbytes / 4  # a few strips of the 29 MB raster, not all of it
    pixels, _, step = rasters._picture_pixels(tmp_path / "in.tif", None, None)
    assert step == 50
    np.testing.assert_array_equal(pixels, array[::50, ::50])


def test_the_preview_reads_windows_of_a_few_blocks_however_wide_the_raster(tmp_path,
                                                                          monkeypatch):
    import fcnseg.inference.rasters as rasters
    from fcnseg.data.rasters import open_raster

    monkeypatch.setattr(rasters, "PREVIEW_SIDE", 900)
    h, w = 700, 6000  # every 7th pixel: steps across the 64-pixel blocks
    array = np.random.default_rng(0).integers(0, 9000, (h, w, 4), dtype=np.uint16)
    with rasterio.open(tmp_path / "in.tif", "w", driver="GTiff", height=h, width=w, count=4,
                       dtype="uint16", crs="EPSG:32632", transform=TRANSFORM, tiled=True,
                       blockxsize=64, blockysize=64) as ds:
        ds.write(np.moveaxis(array, -1, 0))
    windows = []

    def recording(*args, **kwargs):
        reader = open_raster(*args, **kwargs)
        read = reader.read

        def read_window(row, col, height, width):
            windows.append((row, col, height, width))
            return read(row, col, height, width)
        reader.read = read_window
        return reader

    monkeypatch.setattr(rasters, "open_raster", recording)
    pixels, _, step = rasters._picture_pixels(tmp_path / "in.tif", None, None)
    assert step == 7
    np.testing.assert_array_equal(pixels, array[::7, ::7])
    # Memory set by the window, not the raster's width: whole blocks, each read once.
    assert max(hh * ww for _, _, hh, ww in windows) <= 512 * 512
    assert all(r % 64 == 0 and c % 64 == 0 for r, c, _, _ in windows)
    assert sum(hh * ww for _, _, hh, ww in windows) == h * w


def _write_label(path, label: np.ndarray) -> None:
    with rasterio.open(path, "w", driver="GTiff", height=label.shape[0], width=label.shape[1],
                       count=1, dtype="uint8") as ds:
        ds.write(label[None])


def test_the_preview_has_a_legend_of_the_classes_present_as_photos_do(tmp_path):
    from PIL import Image

    from fcnseg.data.palette import voc_palette
    from fcnseg.inference.files import PictureStyle
    from fcnseg.inference.rasters import write_raster_preview
    from fcnseg.inference.visualize import add_legend, legend_entries, overlay

    grey = np.full((60, 80, 3), 128, np.uint8)
    write_tif(tmp_path / "in.tif", grey)
    label = np.zeros((60, 80), np.uint8)
    label[10:30, 10:30] = 2
    label[:5] = NODATA_LABEL
    _write_label(tmp_path / "label.tif", label)
    names = ["background", "road", "tree", "water"]
    style = PictureStyle(alpha=0.5, unblended=(0,))
    path = write_raster_preview(tmp_path / "in.tif", tmp_path / "label.tif",
                                tmp_path / "in_overlay.png", voc_palette(), names, style=style)
    picture = np.asarray(Image.open(path))
    # The photos' rule: the classes present but the background (and no nodata), named.
    entries = legend_entries(label, voc_palette(), names, exclude=(0, NODATA_LABEL))
    assert [n for n, _ in entries] == ["tree"]
    drawn = overlay(grey, label, voc_palette(), 0.5, exclude=(0, NODATA_LABEL))
    np.testing.assert_array_equal(picture, add_legend(drawn, entries,
                                                      empty_text="background only"))
    assert picture.shape[1] > 80  # the legend is beside the picture, not over it
    bare = write_raster_preview(tmp_path / "in.tif", tmp_path / "label.tif",
                                tmp_path / "bare.png", voc_palette(), names,
                                style=PictureStyle(unblended=(0,), legend=False))
    assert np.asarray(Image.open(bare)).shape == (60, 80, 3)


def test_the_preview_shows_an_8_bit_rgb_raster_as_it_is(tmp_path):
    from PIL import Image

    from fcnseg.data.palette import voc_palette
    from fcnseg.inference.files import PictureStyle
    from fcnseg.inference.rasters import write_raster_preview

    # Grey ground of slightly different spread per band: a per-band stretch tints it.
    rng = np.random.default_rng(0)
    ground = rng.integers(100, 156, (50, 60, 1))
    rgb = np.concatenate([ground, ground + rng.integers(0, 3, (50, 60, 1)), ground + 20],
                         axis=-1).clip(0, 255).astype(np.uint8)
    with rasterio.open(tmp_path / "in.tif", "w", driver="GTiff", height=50, width=60, count=3,
                       dtype="uint8", photometric="RGB") as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
        ds.descriptions = ("red", "green", "blue")
    _write_label(tmp_path / "label.tif", np.zeros((50, 60), np.uint8))
    path = write_raster_preview(tmp_path / "in.tif", tmp_path / "label.tif",
                                tmp_path / "in_overlay.png", voc_palette(), ["background"],
                                style=PictureStyle(unblended=(0,), legend=False))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)


def test_predict_command_writes_a_picture_beside_the_label_raster(make_checkpoint,
                                                                 smooth_image, tmp_path):
    from PIL import Image

    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    sizes = {}
    for legend in ("--legend", "--no-legend"):
        out = tmp_path / legend
        assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                     str(tmp_path / "scene.tif"), "--out", str(out), "--no-progress",
                     "--precision", "fp32", legend]) == 0
        with Image.open(out / "scene_overlay.png") as picture:
            assert picture.mode == "RGB"
            sizes[legend] = picture.size
    assert sizes["--no-legend"] == smooth_image.shape[1::-1]  # the raster's own size
    assert sizes["--legend"][0] > smooth_image.shape[1]  # a legend beside it


def test_image_only_options_given_with_a_raster_are_said_to_skip_it(make_checkpoint,
                                                                      smooth_image, tmp_path,
                                                                      capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--heatmaps", "cat", "--format", "labelme"]) == 0
    [line] = [x for x in capsys.readouterr().err.splitlines() if "apply to images" in x]
    assert "--heatmaps and --format apply to images, not to the 1 raster(s)" in line
    # the rule that made it a raster, and where its class probabilities go
    assert "georeferenced" in line and "larger than one --tile" in line
    assert "NAME_probs.tif with --probs" in line
    assert not list((tmp_path / "out").glob("*heatmap*"))


def test_a_raster_complete_from_an_earlier_run_is_counted_as_skipped(make_checkpoint,
                                                                     smooth_image, tmp_path,
                                                                     capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    args = ["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "scene.tif"),
            "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    assert "wrote outputs for 1 of 1 input(s)" in capsys.readouterr().out
    assert main(args) == 0
    assert ("wrote outputs for 0 of 1 input(s) to " in (out := capsys.readouterr().out)
            and "; 1 complete already, skipped" in out)


def test_a_raster_run_stopped_by_sigterm_says_so_in_one_line_and_resumes(
        make_checkpoint, smooth_image, tmp_path, capsys, monkeypatch):
    import os
    import signal

    import fcnseg.inference.rasters as rasters_module
    from fcnseg.cli.main import main

    made = rasters_module.segmenter_tile_fn

    def stopped_at_the_first_tile(*args):  # as `timeout` or Kubernetes stop a run
        run = made(*args)

        def tiles(batch):
            os.kill(os.getpid(), signal.SIGTERM)
            return run(batch)
        return tiles

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM not handled: the process would end silently")

    write_tif(tmp_path / "scene.tif", smooth_image)
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "scene.tif"),
            "--out", str(out), "--no-progress"]
    monkeypatch.setattr(rasters_module, "segmenter_tile_fn", stopped_at_the_first_tile)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        assert main(args) == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"fcnseg predict: stopped by signal 15; wrote the outputs of 0 image(s) to {out}; run "
        f"the same command to write the rest")
    monkeypatch.undo()
    assert main(args) == 0
    assert "wrote outputs for 1 of 1 input(s)" in capsys.readouterr().out


def other_model() -> nn.Module:
    """Another model of the same classes (other weights): other labels on the scene."""
    model = local_model()
    with torch.no_grad():
        model[2].weight.neg_()
    return model


def read_labels(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_a_finished_raster_of_another_model_is_predicted_again(tmp_path):
    write_tif(tmp_path / "in.tif", scene(70, 60))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)
    predict_raster(tile_fn(other_model()), tmp_path / "in.tif", tmp_path / "ref.tif", CLASSES,
                   settings)
    predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                   settings, RasterJob(model_id="first"))
    assert not np.array_equal(read_labels(tmp_path / "out.tif"), read_labels(tmp_path / "ref.tif"))
    again = predict_raster(tile_fn(other_model()), tmp_path / "in.tif", tmp_path / "out.tif",
                           CLASSES, settings, RasterJob(model_id="second"))
    assert not again.skipped and again.replaced and again.tiles == tile_count(70, 60, settings)
    np.testing.assert_array_equal(read_labels(tmp_path / "out.tif"),
                                  read_labels(tmp_path / "ref.tif"))


def test_a_finished_raster_is_predicted_again_with_other_settings(tmp_path):
    from fcnseg.inference.rasters import output_complete

    write_tif(tmp_path / "in.tif", scene(70, 60))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)
    run = tile_fn(local_model())
    predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    args = (tmp_path / "out.tif", tmp_path / "in.tif", CLASSES)
    assert output_complete(*args, settings, "")
    assert not output_complete(*args, settings, "another model")
    probs = TileSettings(tile=32, overlap=8, batch_size=1, block=16, probs=True)
    assert not output_complete(*args, probs, "")
    again = predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, probs)
    assert again.replaced and (tmp_path / "out_probs.tif").is_file()
    assert output_complete(*args, probs, "")


def test_a_half_finished_run_of_another_model_is_not_resumed(tmp_path):
    write_tif(tmp_path / "in.tif", scene(120, 90))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)  # 5 rows of 4 tiles
    predict_raster(tile_fn(other_model()), tmp_path / "in.tif", tmp_path / "ref.tif", CLASSES,
                   settings)
    interrupted = stopped_at_call(11, tile_fn(local_model()))  # in the third tile row
    with pytest.raises(KeyboardInterrupt):
        predict_raster(interrupted, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                       settings, RasterJob(model_id="first"))
    outcome = predict_raster(tile_fn(other_model()), tmp_path / "in.tif", tmp_path / "out.tif",
                             CLASSES, settings, RasterJob(model_id="second"))
    assert outcome.resumed_from_row == 0 and not outcome.replaced
    assert outcome.tiles == tile_count(120, 90, settings)
    np.testing.assert_array_equal(read_labels(tmp_path / "out.tif"),
                                  read_labels(tmp_path / "ref.tif"))


def test_the_model_is_identified_by_its_weights_not_its_path(tiny_checkpoint, class_names,
                                                             tmp_path):
    import shutil

    from fcnseg.inference import Segmenter
    from fcnseg.inference.rasters import model_identity

    first = tiny_checkpoint(class_names)
    shutil.copy(first, tmp_path / "copy.pt")
    identity = model_identity(Segmenter.from_checkpoint(first, precision="fp32"))
    assert model_identity(Segmenter.from_checkpoint(tmp_path / "copy.pt",
                                                    precision="fp32")) == identity
    other = tiny_checkpoint(class_names, score_std=0.5)
    assert model_identity(Segmenter.from_checkpoint(other, precision="fp32")) != identity
    assert model_identity(Segmenter.from_checkpoint(first, precision="fp32",
                                                    temperature=2.0)) != identity


def test_predict_identifies_the_model_by_its_checkpoint_file_as_read(tiny_checkpoint,
                                                                    class_names, tmp_path):
    import shutil

    from fcnseg.inference import Segmenter
    from fcnseg.inference.rasters import model_identity

    def as_loaded(path, **options):
        return model_identity(Segmenter.from_checkpoint(path, precision="fp32", **options),
                              as_loaded=True)

    first = tiny_checkpoint(class_names)
    shutil.copy(first, tmp_path / "copy.pt")
    identity = as_loaded(first)
    assert as_loaded(tmp_path / "copy.pt") == identity  # the file's content, not its path
    assert as_loaded(tiny_checkpoint(class_names, score_std=0.5)) != identity
    assert as_loaded(first, temperature=2.0) != identity


def test_a_checkpoint_written_after_it_was_loaded_is_identified_by_the_weights_loaded(
        tiny_checkpoint, class_names, tmp_path):
    import shutil

    from fcnseg.inference import Segmenter
    from fcnseg.inference.rasters import model_identity

    path = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint(class_names), path)
    segmenter = Segmenter.from_checkpoint(path, precision="fp32")
    shutil.copy(tiny_checkpoint(class_names, score_std=0.5), path)  # retrained meanwhile
    assert model_identity(segmenter, as_loaded=True) == model_identity(segmenter)


def test_the_model_identity_hashes_channels_last_weights_in_row_major_order_piecewise():
    import torch

    from fcnseg.inference.rasters import _row_major_bytes

    weight = torch.arange(6 * 5 * 3 * 3, dtype=torch.float32).reshape(6, 5, 3, 3)
    weight = weight.to(memory_format=torch.channels_last)
    pieces = list(_row_major_bytes(weight, chunk=2 * 5 * 3 * 3 * 4))  # two rows at a time
    assert len(pieces) == 3
    assert b"".join(p.tobytes() for p in pieces) == weight.contiguous().numpy().tobytes()


def test_a_retrained_checkpoint_at_the_same_path_predicts_the_raster_again(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys):
    import shutil

    from fcnseg.cli.main import main
    from fcnseg.inference import Segmenter

    write_tif(tmp_path / "scene.tif", smooth_image)
    shutil.copy(tiny_checkpoint(class_names), tmp_path / "m.pt")
    args = ["predict", "--checkpoint", str(tmp_path / "m.pt"), str(tmp_path / "scene.tif"),
            "--out", str(tmp_path / "out"), "--no-progress", "--precision", "fp32"]
    assert main(args) == 0
    retrained = tiny_checkpoint(class_names, score_std=0.5)
    shutil.copy(retrained, tmp_path / "m.pt")
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "wrote outputs for 1 of 1 input(s)" in captured.out
    assert "skipped" not in captured.out
    assert (f"fcnseg predict: {tmp_path / 'out' / 'scene.tif'}: written by another model or "
            f"with other settings; predicted again") in captured.err.splitlines()
    record = json.loads((tmp_path / "out" / "scene.tif.done.json").read_text())
    assert record["job"]["model"].startswith("sha256=")  # compared: the weights, not the path
    assert record["model_name"] == str(tmp_path / "m.pt")  # shown by fcnseg info
    whole = Segmenter.from_checkpoint(retrained, precision="fp32").predict(smooth_image,
                                                                           return_probs=True)
    assert_labels_match(read_labels(tmp_path / "out" / "scene.tif")[0], whole.label, whole.probs)


def test_an_exported_model_is_identified_by_its_file(tmp_path):
    from types import SimpleNamespace

    from fcnseg.inference.rasters import model_identity

    def exported(data: bytes):  # an exported model's weights are in its runtime, not torch
        (tmp_path / "model.onnx").write_bytes(data)
        return SimpleNamespace(model=nn.Identity(), runtime="onnxruntime",
                               checkpoint_path=str(tmp_path / "model.onnx"),
                               describe=lambda: {"arch": "fcn8s"})

    first = model_identity(exported(b"first weights"))
    assert model_identity(exported(b"first weights")) == first
    assert model_identity(exported(b"other weights")) != first


def test_a_finished_run_leaves_its_outputs_and_the_finished_record_alone(tmp_path):
    write_tif(tmp_path / "in.tif", scene(70, 60))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16, probs=True)
    predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                   settings)
    assert sorted(p.name for p in tmp_path.glob("out*")) == [
        "out.tif", "out.tif.done.json", "out_probs.tif"]
    assert json.loads((tmp_path / "out.tif.done.json").read_text())["complete"]


def test_an_interrupted_run_keeps_its_partial_record_and_no_finished_one(tmp_path):
    write_tif(tmp_path / "in.tif", scene(120, 90))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)
    interrupted = stopped_at_call(11, tile_fn(local_model()))  # in the third tile row
    with pytest.raises(KeyboardInterrupt):
        predict_raster(interrupted, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.tif", "out.tif.partial.json"]
    outcome = predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif",
                             CLASSES, settings)
    assert outcome.resumed_from_row > 0
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.tif", "out.tif.done.json"]


def test_a_finished_record_of_an_earlier_version_is_kept_under_its_finished_name(tmp_path):
    write_tif(tmp_path / "in.tif", scene(70, 60))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)
    run = tile_fn(local_model())
    predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    # Earlier versions left the finished record as OUT.partial.json.
    (tmp_path / "out.tif.done.json").rename(tmp_path / "out.tif.partial.json")
    again = predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    assert again.skipped
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out.tif", "out.tif.done.json"]


def test_rasters_of_one_name_in_two_folders_are_both_written(make_checkpoint, smooth_image,
                                                             tmp_path):
    from fcnseg.cli.main import main

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_tif(tmp_path / folder / "scene.tif", smooth_image)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "a" / "scene.tif"), str(tmp_path / "b" / "scene.tif"),
                 "--out", str(out), "--no-progress", "--precision", "fp32"]) == 0
    for folder in ("a", "b"):  # named apart by their folders, as images are
        with rasterio.open(out / folder / "scene_tif.tif") as ds:
            assert ds.crs.to_epsg() == 32632


def _done_settings(out) -> dict:
    return json.loads(out.with_name(out.name + ".done.json").read_text())["job"]["settings"]


def test_predict_overlap_defaults_to_a_quarter_of_the_tile(make_checkpoint, smooth_image,
                                                           tmp_path, capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    base = ["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "scene.tif"),
            "--no-progress", "--precision", "fp32"]
    # --tile 32 alone: the old fixed default (128) was refused as more than half the tile
    assert main([*base, "--out", str(tmp_path / "small"), "--tile", "32"]) == 0, \
        capsys.readouterr().err
    assert _done_settings(tmp_path / "small" / "scene.tif")["overlap"] == 8
    assert main([*base, "--out", str(tmp_path / "default")]) == 0
    assert _done_settings(tmp_path / "default" / "scene.tif")["overlap"] == 128  # as before
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "odd"), "--tile", "32", "--overlap", "16"]) == 2
    assert "--overlap must be less than half of --tile (32), got 16" in capsys.readouterr().err


def test_predict_in_a_log_file_says_its_progress_in_lines(make_checkpoint, smooth_image,
                                                          tmp_path, capsys, monkeypatch):
    from fcnseg.cli import progress
    from fcnseg.cli.main import main

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)  # a line at every tile
    write_tif(tmp_path / "scene.tif", smooth_image)  # 48×64: 2×3 tiles of 32, overlap 8
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--tile", "32",
                 "--batch-size", "1", "--precision", "fp32"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("predict scene.tif: ")]
    assert lines[0].startswith("predict scene.tif: 1/6 tiles (17%), ") and "ETA" in lines[0]
    assert lines[-1].startswith("predict scene.tif: 6 tiles in ")  # the last batch counted too
    assert len(lines) == 6


def test_a_rerun_with_other_settings_removes_the_rasters_the_earlier_run_wrote_and_it_does_not(
        tmp_path):
    write_tif(tmp_path / "in.tif", scene(50, 40))
    run = tile_fn(local_model())
    both = TileSettings(tile=32, overlap=8, block=16, probs=True, uncertainty=True)
    predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, both)
    again = predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                           replace(both, uncertainty=False))
    assert again.replaced and again.removed == (tmp_path / "out_uncertainty.tif",)
    assert sorted(p.name for p in tmp_path.glob("out*")) == [
        "out.tif", "out.tif.done.json", "out_probs.tif"]


def test_a_file_named_like_an_output_that_no_run_recorded_writing_is_kept(tmp_path):
    write_tif(tmp_path / "in.tif", scene(50, 40))
    run = tile_fn(local_model())
    settings = TileSettings(tile=32, overlap=8, block=16)
    predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES, settings)
    (tmp_path / "out_probs.tif").write_bytes(b"the user's own file")
    again = predict_raster(run, tmp_path / "in.tif", tmp_path / "out.tif", CLASSES,
                           replace(settings, overlap=4))
    assert again.replaced and again.removed == ()
    assert (tmp_path / "out_probs.tif").read_bytes() == b"the user's own file"


def test_predict_says_which_stale_rasters_it_removed(tiny_checkpoint, class_names,
                                                     smooth_image, tmp_path, capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    args = ["predict", "--checkpoint", str(tiny_checkpoint(class_names)),
            str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--probs", "--uncertainty"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = tmp_path / "out"
    assert (f"fcnseg predict: {out / 'scene.tif'}: removed the earlier run's scene_probs.tif "
            f"and scene_uncertainty.tif (not written with these settings)"
            ) in capsys.readouterr().err.splitlines()
    assert not (out / "scene_probs.tif").exists() and not (out / "scene_uncertainty.tif").exists()


def test_ctrl_c_says_how_many_rows_are_kept_and_that_the_same_command_continues(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys, monkeypatch):
    import fcnseg.inference.rasters as rasters_module
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", np.concatenate([smooth_image, smooth_image]))  # 96 rows
    args = ["predict", "--checkpoint", str(tiny_checkpoint(class_names)),
            str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
            "--tile", "32", "--overlap", "8", "--batch-size", "1"]
    real = rasters_module.segmenter_tile_fn

    def stopped_in_the_second_tile_row(seg, info):
        return stopped_at_call(4, real(seg, info))  # three tiles across: the second row's first

    monkeypatch.setattr(rasters_module, "segmenter_tile_fn", stopped_in_the_second_tile_row)
    assert main(args) == 130
    err = capsys.readouterr().err.splitlines()
    scene_out = tmp_path / "out" / "scene.tif"
    assert err == [f"fcnseg predict: {scene_out}: stopped with 24 of 96 rows written, which "
                   f"are kept; run the same command again to continue from there",
                   "interrupted"]
    monkeypatch.setattr(rasters_module, "segmenter_tile_fn", real)
    assert main(args) == 0
    assert f"fcnseg predict: {scene_out}: resuming at row 24 (" in capsys.readouterr().err


def test_a_resumed_run_says_so_first_and_counts_its_progress_over_the_tiles_left(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys, monkeypatch):
    import fcnseg.cli.progress as progress
    import fcnseg.inference.rasters as rasters_module
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", np.concatenate([smooth_image, smooth_image]))  # 96 rows
    args = ["predict", "--checkpoint", str(tiny_checkpoint(class_names)),
            str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"),
            "--tile", "32", "--overlap", "8", "--batch-size", "1"]
    real = rasters_module.segmenter_tile_fn
    with monkeypatch.context() as m:  # stopped in the third of four tile rows of three
        m.setattr(rasters_module, "segmenter_tile_fn",
                  lambda seg, info: stopped_at_call(7, real(seg, info)))
        assert main(args) == 130
    capsys.readouterr()
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)  # a progress line after every tile
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    scene_out = tmp_path / "out" / "scene.tif"
    # Row 48 written: the tile row from 24 runs again (its overlap), then the last two rows.
    assert err[0] == f"fcnseg predict: {scene_out}: resuming at row 48 (9 of 12 tiles left)"
    lines = [line for line in err if line.startswith("predict scene.tif: ")]
    assert lines[0].startswith("predict scene.tif: 1/9 tiles (11%)")
    assert lines[-1].startswith("predict scene.tif: 9 tiles in ")
    assert not any("resumed at row" in line for line in err)


def test_a_resumed_share_counts_the_tiles_left_of_its_own_share(tmp_path):
    # One process's share under torchrun: its tiles left are told against the tiles its
    # share runs from the start (the row before it too, for the overlap), not the whole grid's.
    write_tif(tmp_path / "in.tif", scene(120, 90))
    settings = TileSettings(tile=32, overlap=8, batch_size=1, block=16)  # 5 rows of 4 tiles
    told = []
    job = RasterJob(part=(1, 2), started=lambda *a: told.append(a))  # tile rows 1-4 run
    with pytest.raises(KeyboardInterrupt):  # in the share's last tile row
        predict_raster(stopped_at_call(14, tile_fn(local_model())), tmp_path / "in.tif",
                       tmp_path / "out.tif", CLASSES, settings, job)
    outcome = predict_raster(tile_fn(local_model()), tmp_path / "in.tif", tmp_path / "out.tif",
                             CLASSES, settings, job)
    assert told == [(16, 16, 0), (outcome.tiles, 16, outcome.resumed_from_row)]
    assert outcome.resumed_from_row > 0 and outcome.tiles < 16


@pytest.mark.parametrize(("tile", "overlap"), [(512, 128), (256, 64), (128, 32)])
def test_tile_settings_overlap_defaults_to_a_quarter_of_the_tile_as_predict(tile, overlap):
    assert TileSettings(tile=tile).overlap == overlap
    assert TileSettings(tile=tile, overlap=0).overlap == 0


def test_a_raster_with_a_geotransform_but_no_crs_is_tiled_onto_its_grid_without_a_crs(
        make_checkpoint, smooth_image, tmp_path, capsys):
    from fcnseg.cli.main import main
    from fcnseg.inference.rasters import needs_tiling

    path = tmp_path / "grid.tif"
    h, w, _ = smooth_image.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8",
                       transform=TRANSFORM) as ds:
        ds.write(np.moveaxis(smooth_image, -1, 0))
    assert needs_tiling(path, None, 512)  # georeferenced, as fcnseg info says: small RGB too
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")), str(path), "--out",
                 str(tmp_path / "out"), "--no-progress", "--precision", "fp32"]) == 0
    assert "NotGeoreferenced" not in capsys.readouterr().err
    with rasterio.open(tmp_path / "out" / "grid.tif") as ds:
        assert ds.crs is None and ds.transform == TRANSFORM and ds.shape == (h, w)


def test_predict_tiles_a_turned_tiff_upright_as_the_image_reader_shows_it(
        make_checkpoint, predicted_label_raster, tmp_path):
    import tifffile

    stored = np.random.default_rng(8).integers(0, 65536, (40, 56, 3)).astype(np.uint16)
    turned, upright = tmp_path / "a" / "turned.tif", tmp_path / "b" / "turned.tif"
    for path in (turned, upright):
        path.parent.mkdir()
    tifffile.imwrite(turned, stored, photometric="rgb", extratags=[(274, 3, 1, 8, True)])
    tifffile.imwrite(upright, np.rot90(stored), photometric="rgb")  # 8: turned 90° anticlockwise
    # more pixels than --max-pixels: a raster (a TIFF within it is an image)
    options = ("--tile", "16", "--overlap", "4", "--precision", "fp32", "--max-pixels", "2000")
    labels = predicted_label_raster(make_checkpoint(), turned, tmp_path / "out_a", *options)
    want = predicted_label_raster(make_checkpoint(), upright, tmp_path / "out_b", *options)
    assert labels.shape == (56, 40)
    np.testing.assert_array_equal(labels, want)


def test_a_raster_an_earlier_version_half_wrote_with_the_same_model_resumes(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys, monkeypatch):
    """Earlier versions recorded the model by its weights' digest, not its file's."""
    import fcnseg.cli.predict as predict_cli
    import fcnseg.inference.rasters as rasters_module
    from fcnseg.cli.main import main
    from fcnseg.inference.rasters import model_identity

    write_tif(tmp_path / "scene.tif", np.concatenate([smooth_image, smooth_image]))  # 96 rows
    args = ["predict", "--checkpoint", str(tiny_checkpoint(class_names)),
            str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
            "--tile", "32", "--overlap", "8", "--batch-size", "1", "--skip-complete"]
    real = rasters_module.segmenter_tile_fn

    def stopped_in_the_second_tile_row(seg, info):
        return stopped_at_call(4, real(seg, info))  # three tiles across: the second row's first

    with monkeypatch.context() as m:
        m.setattr(rasters_module, "segmenter_tile_fn", stopped_in_the_second_tile_row)
        m.setattr(predict_cli, "model_identity", lambda seg, as_loaded=False: model_identity(seg))
        assert main(args) == 130
    capsys.readouterr()
    assert main(args) == 0
    scene_out = tmp_path / "out" / "scene.tif"
    assert f"fcnseg predict: {scene_out}: resuming at row 24 (" in capsys.readouterr().err
    assert main(args) == 0  # and then complete
    assert "; 1 complete already, skipped" in capsys.readouterr().out


def test_a_raster_an_earlier_version_wrote_with_another_model_is_predicted_again(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys, monkeypatch):
    import fcnseg.cli.predict as predict_cli
    from fcnseg.cli.main import main
    from fcnseg.inference.rasters import model_identity

    write_tif(tmp_path / "scene.tif", smooth_image)
    args = [str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
            "--skip-complete"]
    with monkeypatch.context() as m:
        m.setattr(predict_cli, "model_identity", lambda seg, as_loaded=False: model_identity(seg))
        assert main(["predict", "--checkpoint", str(tiny_checkpoint(class_names, score_std=0.5)),
                     *args]) == 0
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tiny_checkpoint(class_names)), *args]) == 0
    captured = capsys.readouterr()
    assert "wrote outputs for 1 of 1 input(s)" in captured.out
    assert "written by another model or with other settings; predicted again" in captured.err


def test_a_stopped_raster_of_other_settings_is_said_to_start_again(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    args = ["predict", "--checkpoint", str(tiny_checkpoint(class_names)),
            str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
            "--tile", "32", "--skip-complete"]
    assert main([*args, "--overlap", "8"]) == 0
    done = tmp_path / "out" / "scene.tif.done.json"
    record = {**json.loads(done.read_text()), "rows_done": 16, "complete": False}
    done.unlink()  # as a run stopped in its first rows leaves it
    (tmp_path / "out" / "scene.tif.partial.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*args, "--overlap", "4"]) == 0
    assert (f"{tmp_path / 'out' / 'scene.tif'}: begun by another model or with other settings, "
            f"so not resumed; predicted again from the start") in capsys.readouterr().err


@pytest.mark.parametrize("complete", [True, False], ids=["finished", "stopped"])
def test_a_raster_whose_record_names_the_checkpoint_path_is_predicted_again_and_said_so(
        tiny_checkpoint, class_names, smooth_image, tmp_path, capsys, complete):
    """fcnseg before digests of the weights recorded the model as the checkpoint's path."""
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    checkpoint = str(tiny_checkpoint(class_names))
    args = ["predict", "--checkpoint", checkpoint, str(tmp_path / "scene.tif"), "--out",
            str(tmp_path / "out"), "--no-progress", "--tile", "32", "--overlap", "8",
            "--skip-complete"]
    assert main(args) == 0
    out = tmp_path / "out" / "scene.tif"
    first = read_labels(out)
    done = tmp_path / "out" / "scene.tif.done.json"
    record = json.loads(done.read_text())
    done.unlink()
    record["job"]["model"] = checkpoint  # as that fcnseg wrote it, without model_name
    older = {"job": record["job"], "rows_done": record["rows_done"] if complete else 16,
             "complete": complete}
    (tmp_path / "out" / f"scene.tif.{'done' if complete else 'partial'}.json").write_text(
        json.dumps(older))
    capsys.readouterr()
    assert main(args) == 0
    assert (f"{out}: begun or written by an earlier fcnseg, whose record names the "
            f"checkpoint's path, not its weights; predicted again from the start"
            ) in capsys.readouterr().err
    np.testing.assert_array_equal(read_labels(out), first)


def test_tiles_of_a_wide_raster_decode_each_block_once(tmp_path):
    # 4 bands of 16 bits 9,000 px wide: one row of 256-pixel tiles is 18 MB of blocks.
    h, w, bands = 300, 9000, 4
    a = np.broadcast_to(np.arange(w, dtype=np.uint16)[None, :, None], (h, w, bands))
    with rasterio.open(tmp_path / "wide.tif", "w", driver="GTiff", height=h, width=w,
                       count=bands, dtype="uint16", crs="EPSG:32632", transform=TRANSFORM,
                       tiled=True, blockxsize=64, blockysize=64) as ds:
        ds.write(np.ascontiguousarray(np.moveaxis(a, -1, 0)))
    from fcnseg.data.rasters import open_raster

    def run(batch: np.ndarray) -> torch.Tensor:
        return torch.zeros(len(batch), len(CLASSES), *batch.shape[1:3])

    with open_raster(tmp_path / "wide.tif") as reader:
        decoded = record_reads(reader)
        segment_tiles(run, reader, CLASSES, TileSettings(tile=256, overlap=64, batch_size=8))
    assert len(decoded) == len(set(decoded)) == -(-h // 64) * -(-w // 64)


@pytest.mark.parametrize("size", [4000, 6000, 5473, 2049])
def test_aligned_tiles_start_on_the_stride_and_cover_the_axis_with_the_overlap(size: int) -> None:
    starts, _, side, _ = tile_grid(size, size, 2048, 512, align=32)
    assert all(s % 32 == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] + side == size and 2048 - 32 < side <= 2048
    assert all(b - a <= side - 512 for a, b in zip(starts, starts[1:], strict=False))  # overlap


def test_unaligned_tiles_are_cut_as_rasters_always_were() -> None:
    assert tile_grid(4000, 6000, 512, 128) == tile_grid(4000, 6000, 512, 128, align=1)
    assert tile_grid(4000, 6000, 512, 128)[0][-1] == 4000 - 512  # the last one ends at the border


@pytest.mark.parametrize(("given", "raster", "photo"), [
    ((), (512, 128), (2048, 512)),
    (("--tile", "32"), (32, 8), (32, 8)),
    (("--tile", "32", "--overlap", "4"), (32, 4), (32, 4)),
    (("--overlap", "64"), (512, 64), (2048, 64)),
])
def test_one_tile_setting_tiles_both_the_rasters_and_the_large_photos_of_a_run(
        given, raster, photo, make_checkpoint, smooth_image, tmp_path, monkeypatch):
    # --tile and --overlap are read once; rasters' tiles and large photos' follow from them.
    import fcnseg.inference.rasters as rasters_module
    from fcnseg.cli.main import main
    from fcnseg.inference import Segmenter

    write_tif(tmp_path / "scene.tif", smooth_image)
    seen = {}
    real_raster, real_segmenter = rasters_module.predict_raster, Segmenter.from_checkpoint

    def raster_tiles(tile_fn, path, out, class_names, tiles, job):
        seen["raster"] = tiles
        return real_raster(tile_fn, path, out, class_names, tiles, job)

    def segmenter(*args, **kwargs):
        seen["segmenter"] = real_segmenter(*args, **kwargs)
        return seen["segmenter"]

    monkeypatch.setattr(rasters_module, "predict_raster", raster_tiles)
    monkeypatch.setattr(Segmenter, "from_checkpoint", segmenter)
    assert main(["predict", "--checkpoint", str(make_checkpoint()), str(tmp_path / "scene.tif"),
                 "--out", str(tmp_path / "out"), "--no-progress", "--batch-size", "2",
                 *given]) == 0
    assert seen["raster"] == TileSettings(*raster, batch_size=2)
    photo_tiles = seen["segmenter"].photo_tiles
    assert (photo_tiles.tile, photo_tiles.overlap) == photo


def test_label_ids_given_with_a_raster_are_said_to_skip_it(tiny_checkpoint, smooth_image,
                                                           tmp_path, capsys):
    from fcnseg.cli.main import main
    from fcnseg.data.cityscapes import CITYSCAPES_CLASSES

    write_tif(tmp_path / "scene.tif", smooth_image)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint(list(CITYSCAPES_CLASSES))),
                 str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--label-ids", "cityscapes"]) == 0
    [line] = [x for x in capsys.readouterr().err.splitlines() if "apply to images" in x]
    assert "--label-ids apply to images, not to the 1 raster(s)" in line
    assert not (tmp_path / "out" / "label_ids").exists()


def test_a_label_geotiff_name_taken_by_a_file_predict_did_not_write_is_refused_and_kept(
        make_checkpoint, smooth_image, tmp_path, capsys):
    from fcnseg.cli.main import main

    write_tif(tmp_path / "scene.tif", smooth_image)
    (tmp_path / "out").mkdir()
    write_tif(tmp_path / "out" / "scene.tif", smooth_image[::-1].copy())  # the user's own
    before = (tmp_path / "out" / "scene.tif").read_bytes()
    assert main(["predict", "--checkpoint", str(make_checkpoint("same")),
                 str(tmp_path / "scene.tif"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    assert f"the first {tmp_path / 'out' / 'scene.tif'}, were not written by fcnseg predict" \
        in capsys.readouterr().err
    assert (tmp_path / "out" / "scene.tif").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene.tif"]
