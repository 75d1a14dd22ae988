"""Segmenter with a multi-band model: rasters of its bands and H×W×N arrays of raw values give
the labels ``fcnseg predict`` writes; another band count is one line naming the input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from tiny_models import tiny_band_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.conventions import band_convention
from fcnseg.data.rasters import open_raster
from fcnseg.inference import ImageError, Segmenter
from fcnseg.inference.rasters import segmenter_tile_fn
from fcnseg.inference.visualize import read_label_png
from fcnseg.models import build_model

BANDS = ["red", "green", "blue", "nir", "swir1", "swir2"]
CLASSES = ["background", "water", "field"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tiny_band_model(BANDS, [900.0, 1000.0, 1100.0, 2000.0, 1500.0, 1200.0],
                            [300.0, 300.0, 250.0, 500.0, 400.0, 350.0])
    return save_checkpoint(tmp_path_factory.mktemp("bands") / "bands.pt", model,
                           class_names=CLASSES)


def _scene(height: int = 48, width: int = 60, bands: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    image = (rng.random((height, width, bands)) * 3000 + 200).astype(np.uint16)
    image[: height // 2, :, -1] += 2500  # a brighter half: more than one class
    return image


def _write(path: Path, image: np.ndarray, georeferenced: bool = False) -> Path:
    """``image`` as a TIFF; ``georeferenced``: on a map grid, a raster predict tiles."""
    from geotags import GEOTIFF_TAGS

    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig",
                     extratags=GEOTIFF_TAGS if georeferenced else ())
    return path


def _corner_without_data() -> np.ndarray:
    """:func:`_scene` with its top-left 10×12 corner 0 in every band: the value without data
    that the nodata models record."""
    image = _scene()
    image[:10, :12] = 0
    return image


def test_a_raster_and_its_array_give_the_labels_the_cli_writes(checkpoint: Path,
                                                                tmp_path: Path) -> None:
    image = _scene()
    raster = _write(tmp_path / "scene6.tif", image)  # one tile, no georeferencing: an image
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = read_label_png(tmp_path / "out" / "scene6_label.png")
    segmenter = Segmenter.from_checkpoint(checkpoint)
    by_path = segmenter.predict(raster)
    assert len(np.unique(by_path.label)) > 1
    np.testing.assert_array_equal(by_path.label, expected)
    np.testing.assert_array_equal(segmenter.predict(image).label, expected)
    batch = segmenter.predict_batch([str(raster), image.astype(np.float32)])
    for pred in batch:
        np.testing.assert_array_equal(pred.label, expected)
    assert by_path.image.shape == (48, 60, 3) and by_path.image.dtype == np.uint8


def test_a_raster_of_another_band_count_is_one_line_naming_it(checkpoint: Path,
                                                              tmp_path: Path) -> None:
    raster = _write(tmp_path / "five.tif", _scene(bands=5))
    with pytest.raises(ImageError) as e:
        Segmenter.from_checkpoint(checkpoint).predict(raster)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{raster}: 5 band(s)")
    assert "takes 6 (red, green, blue, nir, swir1, swir2)" in message


def test_an_array_of_another_band_count_is_one_line_naming_it(checkpoint: Path) -> None:
    with pytest.raises(ImageError) as e:
        Segmenter.from_checkpoint(checkpoint).predict(_scene(bands=3))
    message = str(e.value)
    assert "\n" not in message and message.startswith("<array>: 3 band(s)")
    assert "takes 6" in message


def test_pixels_without_data_are_labelled_as_the_cli_labels_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    convention = band_convention(BANDS, [1000.0] * 6, [300.0] * 6, nodata=0)
    model = build_model("fcn8s", num_classes=3, input_convention=convention, width=0.0625,
                        fc_channels=16, geometry="same")
    checkpoint = save_checkpoint(tmp_path / "nodata.pt", model, class_names=CLASSES)
    image = _corner_without_data()
    raster = _write(tmp_path / "corner.tif", image)
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = read_label_png(tmp_path / "out" / "corner_label.png")
    assert (expected[:10, :12] == 255).all()
    segmenter = Segmenter.from_checkpoint(checkpoint)
    for source in (raster, image):
        np.testing.assert_array_equal(segmenter.predict(source).label, expected)


def test_a_raster_larger_than_a_tile_gives_the_labels_the_cli_writes(
        checkpoint: Path, tmp_path: Path,
        predicted_label_raster: Callable[..., np.ndarray]) -> None:
    pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image = _scene(height=260, width=300)
    raster = _write(tmp_path / "wide.tif", image, georeferenced=True)
    expected = predicted_label_raster(checkpoint, raster, tmp_path / "out",
                                      "--tile", "128", "--overlap", "32")
    whole = Segmenter.from_checkpoint(checkpoint, tile=None).predict(raster).label
    assert (whole != expected).any()  # blended tiles differ from one pass at their edges
    segmenter = Segmenter.from_checkpoint(checkpoint, tile=128, overlap=32)
    np.testing.assert_array_equal(segmenter.predict(raster).label, expected)
    np.testing.assert_array_equal(segmenter.predict(image).label, expected)


@pytest.fixture(scope="module")
def nodata_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-band model whose training data had nodata 0; band means 1000, stds 300."""
    model = tiny_band_model(BANDS, [1000.0] * 6, [300.0] * 6, nodata=0)
    return save_checkpoint(tmp_path_factory.mktemp("nodata") / "nodata.pt", model,
                           class_names=CLASSES)


def _inputs_seen(segmenter: Segmenter) -> list[torch.Tensor]:
    """The normalised inputs the network gets from now on (its preprocessing's outputs)."""
    seen: list[torch.Tensor] = []
    segmenter.model.preprocess.register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().float().cpu()))
    return seen


@pytest.mark.parametrize("tile", [None, 32])
def test_pixels_without_data_enter_the_network_as_zero_after_normalising(
        nodata_checkpoint: Path, tmp_path: Path, tile: int | None) -> None:
    image = _corner_without_data()
    raster = _write(tmp_path / "corner.tif", image)
    segmenter = Segmenter.from_checkpoint(nodata_checkpoint, tile=tile, overlap=8)
    seen = _inputs_seen(segmenter)
    segmenter.predict(raster)
    assert seen
    raw_zero = (0.0 - 1000.0) / 300.0  # what a raw 0 would normalise to
    for x in seen:
        assert not bool((x == raw_zero).all(dim=1).any())
    if tile is None:  # one pass over the whole image: the corner is the band means
        assert bool((seen[0][0, :, :10, :12] == 0).all())


def test_the_tile_function_of_fcnseg_predict_fills_pixels_without_data(
        nodata_checkpoint: Path, tmp_path: Path) -> None:
    image = _corner_without_data()
    raster = _write(tmp_path / "corner.tif", image)
    segmenter = Segmenter.from_checkpoint(nodata_checkpoint)
    seen = _inputs_seen(segmenter)
    with open_raster(raster) as reader:
        segmenter_tile_fn(segmenter, reader.info)(reader.read_all()[None])
    assert bool((seen[0][0, :, :10, :12] == 0).all())
    assert bool((seen[0][0, :, 10:, 12:] != 0).any())


def test_pixels_without_data_leave_their_neighbours_labels_as_the_band_means_would(
        nodata_checkpoint: Path, tmp_path: Path,
        predicted_label_raster: Callable[..., np.ndarray]) -> None:
    rasterio = pytest.importorskip("rasterio")  # the CLI writes label GeoTIFFs with it
    image = _corner_without_data()
    with_mean = image.astype(np.float32)
    with_mean[:10, :12] = 1000.0  # the band means: what the model normalises to zero

    def labels(name: str, array: np.ndarray, **tags: Any) -> np.ndarray:
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", height=48, width=60, count=6,
                           dtype=array.dtype.name, crs="EPSG:32633",
                           transform=rasterio.transform.Affine(10, 0, 5e5, 0, -10, 4e6),
                           **tags) as ds:
            ds.write(np.moveaxis(array, -1, 0))
        return predicted_label_raster(nodata_checkpoint, path, tmp_path / "out")

    dark = image.copy()
    dark[:10, :12] = 1  # data, very dark
    filled = labels("filled", with_mean)
    nodata = labels("nodata", image)
    tagged = labels("tagged", image, nodata=65535)  # the file's own nodata, another value
    outside = np.ones((48, 60), bool)
    outside[:10, :12] = False
    assert (nodata[~outside] == 255).all()
    np.testing.assert_array_equal(nodata[outside], filled[outside])
    # The model takes its training data's nodata for the band means whatever the file says.
    np.testing.assert_array_equal(tagged[outside], filled[outside])
    assert (labels("dark", dark)[outside] != filled[outside]).any()  # the corner matters


def test_the_cli_label_raster_has_the_models_colours_and_class_names(checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    raster = _write(tmp_path / "scene6.tif", _scene(), georeferenced=True)
    # georeferenced: a label raster (a plain TIFF would get an image's label PNG)
    assert main(["predict", "--checkpoint", str(checkpoint), str(raster), "--tile", "32",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    palette = Segmenter.from_checkpoint(checkpoint).palette
    with rasterio.open(tmp_path / "out" / "scene6.tif") as ds:
        colours = ds.colormap(1)
        assert [colours[i][:3] for i in range(3)] == [tuple(int(v) for v in palette[i])
                                                      for i in range(3)]
        assert [ds.tags(1)[f"class_{i}"] for i in range(3)] == CLASSES


def test_without_an_overlap_the_segmenter_and_the_cli_take_a_quarter_of_the_tile(
        checkpoint: Path, tmp_path: Path,
        predicted_label_raster: Callable[..., np.ndarray]) -> None:
    pytest.importorskip("rasterio")
    raster = _write(tmp_path / "wide.tif", _scene(height=260, width=300), georeferenced=True)
    expected = predicted_label_raster(checkpoint, raster, tmp_path / "out", "--tile", "128")
    quarter = Segmenter.from_checkpoint(checkpoint, tile=128, overlap=32).predict(raster).label
    np.testing.assert_array_equal(quarter, expected)  # the CLI's default overlap: 32
    default = Segmenter.from_checkpoint(checkpoint, tile=128).predict(raster).label
    np.testing.assert_array_equal(default, expected)


def _grey_model(tmp_path: Path, sample_types: list[str] | None,
                mean: float = 250.0, std: float = 330.0) -> Path:
    """A 1-band model of microscopy intensities (mean and std as a 12-bit camera's give),
    trained on images of ``sample_types`` (None: not recorded, as earlier checkpoints)."""
    model = tiny_band_model(["intensity"], [mean], [std], sample_types=sample_types)
    return save_checkpoint(tmp_path / "grey.pt", model, class_names=CLASSES)


def _cells(dtype: Any = np.uint16) -> np.ndarray:
    rng = np.random.default_rng(2)
    a = rng.normal(180, 40, (40, 48)).clip(0, None)
    a[10:25, 12:30] += 1500
    return (a if dtype == np.uint16 else a / 16).astype(dtype)


def test_a_sample_type_recorded_once_a_band_is_named_once_in_the_refusal() -> None:
    from dataclasses import replace

    from fcnseg.inference.rasters import sample_type_problem

    conv = replace(band_convention(list("bgrn"), [400.0] * 4, [100.0] * 4),
                   sample_types=("uint16",) * 4)
    problem = sample_type_problem(np.uint8, conv)
    assert problem is not None and problem.count("16-bit (uint16)") == 1


def test_an_8_bit_image_to_a_model_of_16_bit_images_is_refused_in_one_line(
        tmp_path: Path) -> None:
    from PIL import Image

    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, ["uint16"]))
    png = tmp_path / "png8.png"
    Image.fromarray(_cells(np.uint8)).save(png)
    for source, where in ((png, str(png)), (_cells(np.uint8), "<array>")):
        with pytest.raises(ImageError) as e:
            segmenter.predict(source)
        assert str(e.value) == (
            f"{where}: 8-bit samples (uint8), but the model was trained on 16-bit (uint16) "
            f"images: their values lie on another scale and would be segmented wrongly; "
            f"convert it to the training images' sample type on their scale, or segment it "
            f"with a model trained on 8-bit images")


def test_a_16_bit_image_to_a_model_of_8_bit_images_is_refused(tmp_path: Path) -> None:
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, ["uint8"], 20.0, 10.0))
    with pytest.raises(ImageError, match=r"^<array>: 16-bit samples \(uint16\), but the model "
                                         r"was trained on 8-bit \(uint8\) images"):
        segmenter.predict(_cells())


def test_the_tile_function_of_fcnseg_predict_refuses_another_depth(tmp_path: Path) -> None:
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, ["uint16"]))
    raster = _write(tmp_path / "eight.tif", _cells(np.uint8))
    with open_raster(raster) as reader, pytest.raises(ImageError, match="8-bit samples"):
        segmenter_tile_fn(segmenter, reader.info)


def test_inputs_of_the_training_depth_and_floats_are_taken(tmp_path: Path) -> None:
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, ["uint16"]))
    expected = segmenter.predict(_cells()[..., None]).label
    np.testing.assert_array_equal(segmenter.predict(_cells().astype(np.float32)).label,
                                  expected)


def test_an_earlier_checkpoint_refuses_8_bits_where_its_statistics_prove_more(
        tmp_path: Path) -> None:
    # No sample types recorded: a std of 330 about a mean of 250 is beyond what 0-255 allow.
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, None))
    with pytest.raises(ImageError, match=r"^<array>: 8-bit samples \(uint8\), but the model "
                                         r"was trained on values beyond 8 bits \(band "
                                         r"intensity: mean 250, std 330\)"):
        segmenter.predict(_cells(np.uint8))


def test_an_earlier_checkpoint_whose_statistics_fit_8_bits_takes_8_bits(tmp_path: Path) -> None:
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, None, 120.0, 60.0))
    assert segmenter.predict(_cells(np.uint8)).label.shape == (40, 48)


def test_an_earlier_checkpoint_with_a_band_without_variance_takes_8_bits(
        tmp_path: Path) -> None:
    # Bands without variance are recorded with std 1: an opaque alpha (255) or an empty band
    # (0) of 8-bit training images proves nothing beyond 8 bits.
    for mean in (255.0, 0.0):
        model = tiny_band_model(["intensity", "alpha"], [120.0, mean], [60.0, 0.0])
        segmenter = Segmenter.from_checkpoint(
            save_checkpoint(tmp_path / "rgba.pt", model, class_names=CLASSES))
        image = np.dstack([_cells(np.uint8), np.full((40, 48), mean, np.uint8)])
        assert segmenter.predict(image).label.shape == (40, 48)


def test_a_one_band_model_takes_an_h_by_w_array_as_tifffile_reads_it(tmp_path: Path) -> None:
    segmenter = Segmenter.from_checkpoint(_grey_model(tmp_path, ["uint16"]))
    tif = tmp_path / "cells.tif"
    tifffile.imwrite(tif, _cells())
    plain = tifffile.imread(tif)
    assert plain.shape == (40, 48)
    np.testing.assert_array_equal(segmenter.predict(plain).label,
                                  segmenter.predict(plain[..., None]).label)
    np.testing.assert_array_equal(segmenter.predict(plain).label, segmenter.predict(tif).label)


def test_an_h_by_w_array_to_a_model_of_several_bands_is_still_refused(checkpoint: Path) -> None:
    with pytest.raises(ImageError, match=r"^<array>: expected an H×W×6 array"):
        Segmenter.from_checkpoint(checkpoint).predict(_scene()[..., 0])


def test_fcnseg_predict_skips_an_8_bit_image_for_a_16_bit_model_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    model = _grey_model(tmp_path, ["uint16"])
    folder = tmp_path / "new"
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", _cells())
    Image.fromarray(_cells(np.uint8)).save(folder / "png8.png")
    assert main(["predict", "--checkpoint", str(model), str(folder), "--out",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if " in " in line and "images/s" in line][0] \
        .startswith("predict: 1 image in ")  # the skipped one is not counted as predicted
    assert err.splitlines()[-1].endswith("; 1 failed")
    assert [line for line in err.splitlines() if "png8.png" in line] == [
        f"fcnseg predict: skipped {folder / 'png8.png'}: 8-bit samples (uint8), but the model "
        f"was trained on 16-bit (uint16) images: their values lie on another scale and would "
        f"be segmented wrongly; convert it to the training images' sample type on their "
        f"scale, or segment it with a model trained on 8-bit images"]
    assert (tmp_path / "out" / "cells_label.png").is_file()


def test_the_overlay_of_bands_blends_the_class_colours_over_the_pictures_lightness(
        checkpoint: Path) -> None:
    from fcnseg.inference.files import PictureStyle, overlay_picture
    from fcnseg.inference.visualize import blend, colorize, grey_picture

    pred = Segmenter.from_checkpoint(checkpoint, precision="fp32").predict(_scene())
    assert pred.stretched_picture
    palette = np.array([[0, 0, 0], [60, 180, 75], [0, 130, 200]], np.uint8)
    drawn = overlay_picture(pred, palette, PictureStyle(alpha=0.5, legend=False))
    # Each class in its legend colour's hue, the stretched bands' own hues left out.
    want = blend(grey_picture(pred.image), colorize(pred.label, palette), 0.5)
    np.testing.assert_array_equal(drawn, want)
