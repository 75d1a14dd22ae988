"""Segmenter: built from a checkpoint, the same labels from every input form, batches."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from floats import assert_labels_match
from PIL import Image

from fcnseg.checkpoint import build_model_from_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.inference import ImageError, Segmenter, SlidingWindow


def test_from_checkpoint_takes_everything_from_the_file(segmenter: Segmenter,
                                                         class_names) -> None:
    assert segmenter.class_names == class_names
    assert segmenter.num_classes == 4
    assert segmenter.arch == "fcn8s"
    assert segmenter.geometry == "same"
    assert segmenter.input_convention.name == "caffe_bgr"
    assert segmenter.ignore_index == 255
    assert segmenter.palette.shape == (256, 3) and segmenter.palette.dtype == np.uint8
    np.testing.assert_array_equal(segmenter.palette[:4], voc_palette()[:4])
    assert str(segmenter.device) == "cpu"
    assert not segmenter.model.training


def test_predict_applies_the_models_input_convention(segmenter, make_checkpoint,
                                                     smooth_image) -> None:
    model = build_model_from_checkpoint(make_checkpoint("same"))
    x = torch.from_numpy(smooth_image).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model(x)[0]
    pred = segmenter.predict(smooth_image)
    assert pred.label.shape == smooth_image.shape[:2]
    assert pred.label.dtype == np.uint8
    assert_labels_match(pred.label, logits.argmax(0).numpy(), logits)
    assert len(np.unique(pred.label)) > 1, "the fixture model should not predict one class"


def test_every_input_form_gives_the_same_labels(segmenter, smooth_image, tmp_path) -> None:
    path = tmp_path / "image.png"
    Image.fromarray(smooth_image).save(path)
    chw = torch.from_numpy(smooth_image).permute(2, 0, 1)
    forms = {
        "path": path,
        "str path": str(path),
        "bytes": path.read_bytes(),
        "file object": io.BytesIO(path.read_bytes()),
        "PIL": Image.fromarray(smooth_image),
        "tensor uint8": chw,
        "tensor float 0-1": chw.float() / 255.0,
        "array float 0-1": smooth_image.astype(np.float32) / 255.0,
    }
    reference = segmenter.predict(smooth_image, return_probs=True)
    for what, image in forms.items():
        pred = segmenter.predict(image)
        # Float inputs reach the network through other arithmetic: equal up to rounding.
        assert_labels_match(pred.label, reference.label, reference.probs, err_msg=what)
        np.testing.assert_array_equal(pred.image, smooth_image, err_msg=what)


def test_float_input_outside_0_1_is_refused_not_guessed(segmenter, smooth_image) -> None:
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        segmenter.predict(torch.from_numpy(smooth_image).permute(2, 0, 1).float())


def test_probabilities_agree_with_the_label(segmenter, smooth_image) -> None:
    pred = segmenter.predict(smooth_image, return_probs=True)
    assert pred.probs is not None
    assert pred.probs.shape == (4, *smooth_image.shape[:2]) and pred.probs.dtype == np.float32
    np.testing.assert_allclose(pred.probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pred.probs.argmax(0), pred.label)
    assert segmenter.predict(smooth_image).probs is None


def test_class_pixel_counts_name_every_class(segmenter, smooth_image, class_names) -> None:
    pred = segmenter.predict(smooth_image)
    counts = pred.class_pixel_counts()
    assert list(counts) == class_names
    assert sum(counts.values()) == pred.label.size
    for index, name in enumerate(class_names):
        assert counts[name] == int((pred.label == index).sum())


def test_an_ignore_mask_labels_the_pixels_it_leaves_out_no_data(segmenter, make_checkpoint,
                                                                 smooth_image) -> None:
    hood = np.ones(smooth_image.shape[:2], np.uint8)
    hood[-10:] = 0  # a dashcam's bonnet: the bottom rows
    masked = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32",
                                       ignore_mask=hood).predict(smooth_image)
    whole = segmenter.predict(smooth_image)
    assert (masked.label[-10:] == 255).all()
    np.testing.assert_array_equal(masked.label[:-10], whole.label[:-10])
    assert sum(masked.class_pixel_counts().values()) == hood.sum()


def test_an_ignore_mask_of_another_size_is_refused_naming_both_sizes(make_checkpoint,
                                                                     smooth_image,
                                                                     tmp_path) -> None:
    mask = tmp_path / "hood.png"
    Image.fromarray(np.full((72, 128), 255, np.uint8)).save(mask)
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), ignore_mask=mask)
    with pytest.raises(ValueError, match=f"^ignore mask {mask} is 128×72 pixels, the image "
                                         f"64×48: give a mask of the images' size$"):
        seg.predict(smooth_image)


def test_a_missing_ignore_mask_is_refused_naming_the_option(make_checkpoint, tmp_path) -> None:
    mask = tmp_path / "nosuch.png"
    with pytest.raises(ValueError) as caught:
        Segmenter.from_checkpoint(make_checkpoint("same"), ignore_mask=mask)
    assert str(caught.value) == f"ignore_mask {mask}: no such file"


def test_predict_batch_keeps_order_across_sizes(segmenter, smooth_image) -> None:
    images = [smooth_image, smooth_image[:40, :56], np.ascontiguousarray(smooth_image[::-1]),
              smooth_image[:40, :56].copy()]
    preds = segmenter.predict_batch(images, batch_size=2)
    assert len(preds) == len(images)
    for image, pred in zip(images, preds, strict=True):
        alone = segmenter.predict(image, return_probs=True)
        assert_labels_match(pred.label, alone.label, alone.probs)


def test_sliding_window_and_tta_options_from_checkpoint(make_checkpoint, smooth_image) -> None:
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), sliding_window=40,
                                    tta={"scales": [1.0, 0.75], "flip": True})
    assert seg.sliding_window == SlidingWindow(window=40)
    assert seg.tta is not None and seg.tta.flip and seg.tta.scales == (1.0, 0.75)
    pred = seg.predict(smooth_image, return_probs=True)
    assert pred.label.shape == smooth_image.shape[:2]
    np.testing.assert_allclose(pred.probs.sum(0), 1.0, atol=1e-5)
    assert seg.describe()["tta"] == {"scales": [1.0, 0.75], "flip": True, "average": "logits"}


def test_class_names_must_match_the_model(make_checkpoint) -> None:
    model = build_model_from_checkpoint(make_checkpoint("same"))
    with pytest.raises(ValueError, match="3 class names for a model with 4 classes"):
        Segmenter(model, class_names=["a", "b", "c"], palette=voc_palette())


@pytest.mark.parametrize("convention", ["caffe_bgr", "torchvision_rgb"])
def test_preprocess_follows_the_checkpoints_convention_by_hand(make_checkpoint,
                                                               convention) -> None:
    # Hand-computed network input of one pixel (R, G, B) = (255, 0, 51), independent of
    # InputConvention.normalize: Caffe is BGR 0-255 minus the mean, torchvision RGB 0-1 / std.
    from fcnseg.checkpoint import load_checkpoint
    from fcnseg.conventions import get_convention

    ckpt = load_checkpoint(make_checkpoint("same"))
    ckpt["model"]["input_convention"] = get_convention(convention).to_dict()
    model = build_model_from_checkpoint(ckpt)
    seg = Segmenter(model, class_names=ckpt["classes"]["names"],
                    palette=ckpt["classes"]["palette"])
    assert seg.input_convention.name == convention
    x = seg.model.preprocess(seg.preprocess(np.array([[[255, 0, 51]]], dtype=np.uint8)))
    if convention == "caffe_bgr":
        expected = [51 - 104.00698793, 0 - 116.66876762, 255 - 122.67891434]
    else:
        expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
    assert x.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), expected, rtol=1e-5)


def test_a_model_answering_a_dict_is_read_through_its_out_entry() -> None:
    # torchvision-style FCNs (fcn_resnet50(output="dict")) return {"out": ..., "aux": ...};
    # evaluation reads "out", and prediction, sliding windows and TTA must too.
    from fcnseg.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn_resnet50", num_classes=3, output="dict", aux_loss=True,
                        base_channels=8).eval()
    image = np.random.default_rng(0).integers(0, 256, (33, 40, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model(x)["out"][0]
    for options in ({}, {"sliding_window": 24, "tta": {"flip": True}}):
        seg = Segmenter(model, class_names=["a", "b", "c"], palette=voc_palette()[:3],
                        precision="fp32", **options)
        pred = seg.predict(image, return_probs=True)
        assert pred.label.shape == (33, 40) and pred.probs.shape == (3, 33, 40)
        if not options:
            assert_labels_match(pred.label, logits.argmax(0).numpy(), logits)


def test_a_model_without_an_input_convention_is_refused_not_guessed() -> None:
    from torch import nn

    model = nn.Conv2d(3, 2, 1)
    with pytest.raises(ValueError, match="Conv2d has no input_convention"):
        Segmenter(model, class_names=["a", "b"], palette=voc_palette())
    seg = Segmenter(model, class_names=["a", "b"], palette=voc_palette(),
                    input_convention="torchvision_rgb")
    assert seg.input_convention.name == "torchvision_rgb"


def _georeferenced_rgb(path: Path, height: int, width: int) -> Path:
    """An 8-bit RGB GeoTIFF of random pixels whose top-left 6×7 corner is its nodata (0)."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    image = np.random.default_rng(3).integers(1, 256, (height, width, 3)).astype(np.uint8)
    image[:6, :7] = 0  # a corner without data, as the file's nodata tag says
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=3,
                       dtype="uint8", crs="EPSG:32632",
                       transform=Affine(0.5, 0, 6e5, 0, -0.5, 52e5), nodata=0) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    return path


def test_a_georeferenced_rgb_raster_gives_the_labels_the_cli_writes(
        make_checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    path = _georeferenced_rgb(tmp_path / "geo.tif", 200, 230)
    checkpoint = make_checkpoint("same")
    assert main(["predict", "--checkpoint", str(checkpoint), str(path), "--tile", "96",
                 "--overlap", "16", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    expected = tifffile.imread(tmp_path / "out" / "geo.tif")  # tiled: georeferenced
    assert (expected[:6, :7] == 255).all()
    whole = Segmenter.from_checkpoint(checkpoint, tile=None).predict(path).label
    assert (whole != expected).any()  # blended tiles differ from one pass at their edges
    segmenter = Segmenter.from_checkpoint(checkpoint, tile=96, overlap=16)
    np.testing.assert_array_equal(segmenter.predict(path).label, expected)


def test_a_georeferenced_rgb_rasters_header_is_read_once_by_predict(
        make_checkpoint: Callable[[str], Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.data import rasters

    path = _georeferenced_rgb(tmp_path / "geo.tif", 120, 130)
    segmenter = Segmenter.from_checkpoint(make_checkpoint("same"), tile=96, overlap=16)
    opened: list[Path] = []
    open_raster = rasters._open_raster
    monkeypatch.setattr(rasters, "_open_raster",
                        lambda where, *more: opened.append(where) or open_raster(where, *more))
    assert segmenter.predict(path).label.shape == (120, 130)
    assert opened == [path]


@pytest.mark.parametrize("tile", [None, 96])
def test_a_colour_models_pixels_without_data_enter_it_as_its_mean_pixel(
        make_checkpoint: Callable[[str], Path], tmp_path: Path, tile: int | None) -> None:
    path = _georeferenced_rgb(tmp_path / "geo.tif", 120, 130)
    segmenter = Segmenter.from_checkpoint(make_checkpoint("same"), tile=tile, overlap=16)
    seen: list[torch.Tensor] = []
    segmenter.model.preprocess.register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().float()))
    assert (segmenter.predict(path).label[:6, :7] == 255).all()
    first = seen[0][0]  # the whole image, or the top-left tile
    assert float(first[:, :6, :7].abs().max()) < 1e-4  # the mean pixel, normalised
    assert float(first[:, 6:, 7:].abs().max()) > 1.0  # the data, as it is


def test_the_segmenter_shows_a_geometry_only_where_the_model_has_one(make_checkpoint) -> None:
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")
    assert "geometry='same'" in repr(seg)
    seg.geometry = None  # a ResNet or GoogLeNet trunk: no geometry to choose
    assert "geometry" not in repr(seg) and "None" not in repr(seg)


@pytest.mark.parametrize("image, words", [(None, "unsupported input type NoneType"),
                                          (3.5, "unsupported input type float")])
def test_an_input_of_another_type_is_named_by_its_type(segmenter, image, words) -> None:
    with pytest.raises(ImageError, match=words) as e:
        segmenter.predict(image)
    assert "corrupt" not in str(e.value)


@pytest.mark.parametrize("several", [list, tuple])
def test_several_images_to_predict_point_to_predict_batch(segmenter, smooth_image,
                                                          several) -> None:
    with pytest.raises(ImageError, match=f"unsupported input type {several.__name__}.*"
                                         f"predict_batch"):
        segmenter.predict(several([smooth_image, smooth_image]))
