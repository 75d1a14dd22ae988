"""Images too large for one pass: segmented by the raster path's blended tiles, with the labels
of whole-image prediction and the outputs of any image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from floats import assert_close_to_scale, assert_labels_match
from PIL import Image
from torch import nn
from traced import peak_traced

from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.inference import segmenter as segmenter_module
from fcnseg.inference.rasters import TileSettings, held_raster, segment_tiles, segmenter_tile_fn
from fcnseg.inference.visualize import read_label_png
from fcnseg.models.geometry import CoordMap

TILE, OVERLAP = 48, 16  # blending weight zero within OVERLAP // 4 = 4 pixels of inner edges
LIMIT = 100 * 100  # WHOLE_IMAGE_MAX_PIXELS made small, so that a 150×170 image is tiled


@pytest.fixture()
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segmenter_module, "WHOLE_IMAGE_MAX_PIXELS", LIMIT)


def local_segmenter(tile: int | None) -> Segmenter:
    """Two 3×3 convolutions: each output pixel sees 2 pixels each way, less than the 4 pixels
    of every tile's inner edge that blending leaves out, so tiles see all a pixel depends on."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 3, padding=1))
    return Segmenter(model, class_names=["a", "b", "c", "d"], palette=voc_palette(),
                     input_convention="torchvision_rgb", precision="fp32", tile=tile,
                     overlap=OVERLAP)


def photo(height: int, width: int) -> np.ndarray:
    """Smooth colours, so that labels form regions and few pixels are near-ties."""
    yy, xx = np.mgrid[0:height, 0:width]
    bands = [np.sin(yy / 11.0 + b) * np.cos(xx / 7.0 - 2 * b) for b in range(3)]
    return (np.stack(bands, -1) * 120 + 128).astype(np.uint8)


def forward_sizes(segmenter: Segmenter) -> list[tuple[int, int]]:
    """The H×W of every batch the segmenter's model runs, as it runs them."""
    sizes: list[tuple[int, int]] = []
    segmenter.model.register_forward_pre_hook(
        lambda _m, args: sizes.append(tuple(args[0].shape[-2:])))
    return sizes


def test_an_image_over_the_limit_is_run_by_tiles_with_the_whole_images_labels(
        small_limit: None) -> None:
    image = photo(150, 170)
    tiled = local_segmenter(TILE)
    sizes = forward_sizes(tiled)
    pred = tiled.predict(image, return_probs=True)
    assert sizes and all(s == (TILE, TILE) for s in sizes)  # never the whole image at once
    whole = local_segmenter(None).predict(image, return_probs=True)
    assert pred.label.dtype == np.uint8 and pred.label.shape == (150, 170)
    assert_labels_match(pred.label, whole.label, whole.probs)  # equal but for rounding
    assert_close_to_scale(pred.probs, whole.probs)
    np.testing.assert_array_equal(pred.image, image)


def test_an_image_within_the_limit_is_still_run_whole(small_limit: None) -> None:
    segmenter = local_segmenter(TILE)
    sizes = forward_sizes(segmenter)
    segmenter.predict(photo(90, 110))  # 9,900 pixels: larger than a tile, within the limit
    assert sizes == [(90, 110)]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_fcnseg_predict_writes_a_large_photos_usual_outputs_from_tiles(
        small_limit: None, make_checkpoint: Callable[[str], Path], tmp_path: Path,
        suffix: str) -> None:
    path = tmp_path / f"big{suffix}"
    Image.fromarray(photo(150, 170)).save(path)
    checkpoint = make_checkpoint("same")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), str(path), "--out", str(out),
                 "--tile", str(TILE), "--overlap", str(OVERLAP), "--heatmaps", "cat",
                 "--probs", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "big_heatmap_cat.png", "big_label.png", "big_overlay.png", "big_probs.npz"]
    expected = Segmenter.from_checkpoint(checkpoint, tile=TILE, overlap=OVERLAP).predict(path)
    np.testing.assert_array_equal(read_label_png(out / "big_label.png"), expected.label)
    whole = Segmenter.from_checkpoint(checkpoint, tile=None).predict(path).label
    assert (whole != expected.label).any()  # this FCN sees past a tile: tiles differ at seams
    assert np.load(out / "big_probs.npz")["probs"].shape == (4, 150, 170)


class CoarseCells(nn.Module):
    """Scores constant over 32×32 cells counted from the input's corner (mean of a 1×1
    convolution over each cell, the last ones cut by the border), as an FCN's coarsest scores
    are laid out: a window gives the whole input's scores only where it starts on that grid."""

    coord_maps = {32: CoordMap(32.0, 15.5)}

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.score = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = F.avg_pool2d(self.score(x), 32, ceil_mode=True)
        return F.interpolate(cells, scale_factor=32.0, mode="nearest")[..., :x.shape[-2],
                                                                        :x.shape[-1]]


def coarse_segmenter(**options: object) -> Segmenter:
    return Segmenter(CoarseCells(), class_names=["a", "b", "c", "d"], palette=voc_palette(),
                     input_convention="torchvision_rgb", precision="fp32", **options)


def test_a_large_photos_default_tiles_start_on_the_output_stride_and_give_one_pass_labels(
        small_limit: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiles of 320 sharing 128 pixels: blending leaves out 32 pixels of each inner edge, the
    # reach of a 32-pixel cell.
    monkeypatch.setattr(segmenter_module, "PHOTO_TILE", 320)
    monkeypatch.setattr(segmenter_module, "PHOTO_OVERLAP", 128)
    image = photo(400, 900)
    tiled = coarse_segmenter()
    assert tiled.output_stride == 32 and tiled.tiles.tile == 512  # rasters as before
    sizes = forward_sizes(tiled)
    pred = tiled.predict(image, return_probs=True)
    assert sizes and all(s == (304, 292) for s in sizes)  # cut so that the last one aligns
    whole = coarse_segmenter(tile=None).predict(image, return_probs=True)
    assert_labels_match(pred.label, whole.label, whole.probs)
    assert_close_to_scale(pred.probs, whole.probs)


def test_tiles_off_the_output_stride_change_a_coarse_models_labels() -> None:
    # What the test above guards against: the same tiles, cut as rasters are (unaligned).
    image = photo(400, 900)
    seg = coarse_segmenter()
    run = segmenter_tile_fn(seg, held_raster(image).info)
    settings = TileSettings(320, 128)
    unaligned = segment_tiles(run, held_raster(image), seg.class_names, settings)["label"]
    aligned = segment_tiles(run, held_raster(image), seg.class_names, settings, align=32)
    whole = coarse_segmenter(tile=None).predict(image).label
    assert (unaligned != whole).mean() > 0.01
    assert (aligned["label"] == whole).mean() > 0.999


def test_a_given_tile_is_obeyed_for_photos_and_rasters_alike() -> None:
    seg = coarse_segmenter(tile=300, overlap=40)
    assert (seg.tiles.tile, seg.tiles.overlap) == (300, 40)
    assert (seg.photo_tiles.tile, seg.photo_tiles.overlap) == (300, 40)
    default = coarse_segmenter()
    assert (default.photo_tiles.tile, default.photo_tiles.overlap) == (2048, 512)
    assert (default.tiles.tile, default.tiles.overlap) == (512, 128)


def test_a_large_photo_asked_for_some_classes_keeps_only_their_probabilities(
        small_limit: None) -> None:
    image = photo(150, 170)
    full = local_segmenter(TILE).predict(image, return_probs=True)
    some = local_segmenter(TILE).predict(image, return_probs=(2, 0))
    assert some.probs is not None and some.probs.shape == (2, 150, 170)  # not C×H×W
    np.testing.assert_array_equal(some.class_probs(2), full.probs[2])
    np.testing.assert_array_equal(some.class_probs(0), full.probs[0])
    np.testing.assert_array_equal(some.label, full.label)


def test_predict_asks_for_the_heatmaps_classes_alone_and_writes_the_same_heatmap(
        small_limit: None, make_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    from fcnseg.inference.files import OutputOptions

    assert OutputOptions(heatmap_classes=(1,)).probs_wanted == (1,)
    assert OutputOptions(heatmap_classes=(1,), probs=True).probs_wanted is True
    path = tmp_path / "big.png"
    Image.fromarray(photo(150, 170)).save(path)
    checkpoint = make_checkpoint("same")
    for out, more in (("alone", []), ("with_probs", ["--probs"])):
        assert main(["predict", "--checkpoint", str(checkpoint), str(path), "--out",
                     str(tmp_path / out), "--tile", str(TILE), "--overlap", str(OVERLAP),
                     "--heatmaps", "cat", *more, "--no-progress"]) == 0
    assert (tmp_path / "alone" / "big_heatmap_cat.png").read_bytes() == \
        (tmp_path / "with_probs" / "big_heatmap_cat.png").read_bytes()


@pytest.mark.parametrize("limit", [None, LIMIT])  # whole, by tiles
def test_probabilities_asked_for_a_class_the_model_lacks_are_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch, limit: int | None) -> None:
    if limit is not None:
        monkeypatch.setattr(segmenter_module, "WHOLE_IMAGE_MAX_PIXELS", limit)
    with pytest.raises(ValueError, match=r"return_probs: class index 4 is not one of the "
                                         r"model's 4 classes \(0-3\)"):
        local_segmenter(TILE).predict(photo(150, 170), return_probs=(1, 4))


def test_a_large_photos_probabilities_are_written_to_a_file_not_held_in_memory() -> None:

    classes = [f"c{i}" for i in range(8)]

    def run(batch: np.ndarray) -> torch.Tensor:
        return torch.ones((len(batch), len(classes), *batch.shape[1:3]))

    reader = held_raster(np.zeros((1024, 1024, 3), np.uint8))
    settings = TileSettings(tile=256, batch_size=2, probs=True)
    probs, peak = peak_traced(lambda: segment_tiles(run, reader, classes, settings)["probs"])
    assert probs.shape == (8, 1024, 1024) and np.allclose(probs[:, ::97, ::89], 1 / 8)
    assert peak < probs.nbytes / 2  # 32 MiB of probabilities


def test_probabilities_without_room_for_their_file_are_one_error_not_a_crash(
        monkeypatch) -> None:
    import errno
    import os

    def full(fd: int, offset: int, length: int) -> None:  # the system's answer on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    # Writing into the mapped file there ended the process (SIGBUS), with no line.
    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    reader = held_raster(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(OSError, match=r"no room in the temporary folder .* set TMPDIR"):
        segment_tiles(lambda batch: torch.ones((len(batch), 2, *batch.shape[1:3])), reader,
                      ["a", "b"], TileSettings(tile=32, batch_size=2, probs=True))


def test_a_large_photos_uncertainty_maps_take_a_few_tiles_of_memory() -> None:

    from fcnseg.inference.calibration import uncertainty_maps

    classes, tile = [f"c{i}" for i in range(8)], 512

    def run(batch: np.ndarray) -> torch.Tensor:
        ramp = torch.linspace(0, 3, len(classes)).view(1, -1, 1, 1)
        return ramp.expand(len(batch), -1, *batch.shape[1:3]).contiguous()

    reader = held_raster(np.zeros((2048, 2048, 3), np.uint8))
    probs = segment_tiles(run, reader, classes, TileSettings(tile=tile, batch_size=2,
                                                             probs=True))["probs"]
    maps, peak = peak_traced(lambda: uncertainty_maps(probs))
    written = sum(values.nbytes for values, _, _ in maps.values())  # two H×W float32 maps
    assert peak < written + 4 * len(classes) * tile * tile * 4  # and a few tiles' floats
