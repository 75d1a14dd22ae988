"""``fcnseg predict`` pictures: background left as the photo, legends, outlines, heatmaps."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.inference.visualize import class_outlines, heatmap


def _predict(make_checkpoint, image_path, out, *options: str) -> int:
    return main(["predict", "--checkpoint", str(make_checkpoint("same")), str(image_path),
                 "--out", str(out), "--no-progress", "--precision", "fp32", *options])


def _read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def test_overlay_keeps_the_photo_where_background_is_predicted(
    tiny_checkpoint, segmenter, smooth_image, tmp_path
) -> None:
    label = segmenter.predict(smooth_image).label
    present = np.unique(label)
    assert len(present) > 1, "the fixture predicts several classes"
    # The same seeded weights, with one of the predicted classes named as the background.
    background = int(present[0])
    names = ["cat", "dog", "potted plant", "car"]
    names[background] = "background"
    checkpoint = tiny_checkpoint(names, "same")
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    assert main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "out"), "--no-progress", "--no-legend",
                 "--precision", "fp32"]) == 0
    picture = _read(tmp_path / "out" / "x_overlay.png")
    assert picture.shape == smooth_image.shape
    is_background = label == background
    np.testing.assert_array_equal(picture[is_background], smooth_image[is_background])
    assert (picture[~is_background] != smooth_image[~is_background]).any()


def test_blend_background_and_outlines_options(make_checkpoint, segmenter, smooth_image,
                                               tmp_path) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "out", "--no-legend",
                  "--blend-background", "--outlines", "--alpha", "0.3")
    assert rc == 0
    label = segmenter.predict(smooth_image).label
    picture = _read(tmp_path / "out" / "x_overlay.png")
    colours = segmenter.palette[label]
    edge = class_outlines(label)
    np.testing.assert_array_equal(picture[edge], colours[edge])
    inside = ~edge
    expected = 0.7 * smooth_image[inside] + 0.3 * colours[inside].astype(float)
    assert np.abs(picture[inside] - expected).max() <= 0.5 + 1e-3  # uint8 rounding only


def test_legend_is_beside_the_overlay_and_heatmaps_get_title_and_bar(
    make_checkpoint, segmenter, smooth_image, tmp_path
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "out", "--heatmaps", "cat")
    assert rc == 0
    overlay = _read(tmp_path / "out" / "x_overlay.png")
    h, w = smooth_image.shape[:2]
    assert overlay.shape[0] >= h and overlay.shape[1] > w
    heat = _read(tmp_path / "out" / "x_heatmap_cat.png")
    assert heat.shape[0] > h and heat.shape[1] > w, "title above, colour bar beside"

    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "plain", "--heatmaps", "cat",
                  "--no-legend")
    assert rc == 0
    probs = segmenter.predict(smooth_image, return_probs=True).probs
    plain = _read(tmp_path / "plain" / "x_heatmap_cat.png")
    np.testing.assert_array_equal(plain, heatmap(probs[1], vmin=0.0, vmax=1.0))


def test_heatmap_over_the_photo(make_checkpoint, segmenter, smooth_image, tmp_path) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "out", "--heatmaps", "cat",
                  "--no-legend", "--heatmap-over-photo", "--alpha", "0.5")
    assert rc == 0
    probs = segmenter.predict(smooth_image, return_probs=True).probs
    picture = _read(tmp_path / "out" / "x_heatmap_cat.png")
    expected = (smooth_image.astype(float) + heatmap(probs[1], vmin=0.0, vmax=1.0)) / 2
    assert np.abs(picture - expected).max() <= 1.0  # rounding, and probabilities near a step


def _checkpoint_trained_on(tmp_path, dataset: str | None):
    import torch

    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.palette import voc_palette
    from fcnseg.models import fcn8s

    torch.manual_seed(0)
    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16)
    recipe = {"data": {"train": {"name": dataset}}} if dataset else {}
    path = tmp_path / f"{dataset}.pt"
    save_checkpoint(path, model, class_names=["background", "a", "b"], palette=voc_palette(),
                    recipe=recipe)
    return path


def test_predict_says_when_the_checkpoint_knows_only_synthetic_shapes(
    smooth_image, tmp_path, capsys
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    for dataset, noted in (("synthetic", True), ("voc", False), (None, False)):
        checkpoint = _checkpoint_trained_on(tmp_path, dataset)
        rc = main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "x.png"),
                   "--out", str(tmp_path / f"out_{dataset}"), "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 0
        assert ("synthetic shapes only" in err and "Pretrained models" in err) == noted, err


def test_uncertainty_before_the_inputs_writes_the_entropy_map_only(
    make_checkpoint, smooth_image, tmp_path
) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), "--uncertainty",
               str(tmp_path / "x.png"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*uncertainty*")) == \
        ["x_uncertainty_entropy.png"]


def test_picture_max_side_shrinks_the_pictures_not_the_label_png(make_checkpoint, smooth_image,
                                                                  tmp_path) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")  # 64×48
    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "out", "--no-legend",
                  "--heatmaps", "cat", "--uncertainty", "--picture-max-side", "32")
    assert rc == 0
    out = tmp_path / "out"
    for picture in ("x_overlay.png", "x_heatmap_cat.png", "x_uncertainty_entropy.png"):
        with Image.open(out / picture) as img:
            assert img.size == (32, 24), picture
    with Image.open(out / "x_label.png") as img:
        assert img.size == (64, 48)


def test_picture_max_side_too_small_is_refused_in_one_line(make_checkpoint, smooth_image,
                                                           tmp_path, capsys) -> None:
    Image.fromarray(smooth_image).save(tmp_path / "x.png")
    rc = _predict(make_checkpoint, tmp_path / "x.png", tmp_path / "out", "--picture-max-side", "0")
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--picture-max-side" in err[0]
    assert not (tmp_path / "out" / "x_label.png").exists()
