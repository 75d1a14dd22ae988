"""``fcnseg predict``: outputs per input, bad inputs reported and skipped, unique names."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.inference.visualize import read_label_png


@pytest.fixture
def images(tmp_path, smooth_image):
    """A folder with a subfolder, a same-stem pair (x.png, x.jpg) and an unreadable file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image).save(root / "x.png")
    Image.fromarray(smooth_image[:40, :48]).save(root / "x.jpg", quality=95)
    Image.fromarray(np.ascontiguousarray(smooth_image[::-1])).save(root / "sub" / "x.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_writes_every_output_and_skips_the_unreadable_input(
    make_checkpoint, segmenter, images, tmp_path, capsys, class_names
) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images),
               "--out", str(out), "--heatmaps", "cat", "3", "--probs", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1, "a failed input must make the exit status non-zero"
    assert "broken.png" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = []
    for name in ("sub/x", "x_jpg", "x_png"):
        expected += [f"{name}_heatmap_cat.png", f"{name}_heatmap_potted_plant.png",
                     f"{name}_label.png", f"{name}_overlay.png", f"{name}_probs.npz"]
    assert written == sorted(expected)

    pred = segmenter.predict(images / "x.png", return_probs=True)
    np.testing.assert_array_equal(read_label_png(out / "x_png_label.png"), pred.label)
    with Image.open(out / "x_png_overlay.png") as overlay:
        assert overlay.mode == "RGB" and overlay.size == (64, 48)
    with Image.open(out / "x_jpg_label.png") as label:
        assert label.size == (48, 40)
    with np.load(out / "x_png_probs.npz") as npz:
        np.testing.assert_allclose(npz["probs"], pred.probs, atol=1e-6)
        assert list(npz["class_names"]) == class_names


def test_heatmaps_present_and_globs(make_checkpoint, segmenter, images, tmp_path,
                                    class_names) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "*.png"),
               "--out", str(out), "--heatmaps-present", "--no-progress"])
    assert rc == 1  # broken.png matches the glob too
    present = np.unique(segmenter.predict(images / "x.png").label)
    names = [class_names[c].replace(" ", "_") for c in present]
    heatmaps = sorted(p.name for p in out.glob("x_heatmap_*.png"))
    assert heatmaps == sorted(f"x_heatmap_{n}.png" for n in names)


def test_all_good_inputs_exit_zero_with_tta_and_sliding_window(
    make_checkpoint, images, tmp_path
) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               str(images / "sub"), "--out", str(out), "--sliding-window", "32",
               "--tta-flip", "--tta-scales", "1,0.75", "--batch-size", "2", "--no-progress"])
    assert rc == 0
    # Both inputs are called "x": the parent folder keeps their outputs apart.
    labels = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_label.png"))
    assert labels == ["in/x_png_label.png", "sub/x_png_label.png"]


def test_unknown_heatmap_class_is_a_clear_error(make_checkpoint, images, tmp_path,
                                                capsys) -> None:
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               "--out", str(tmp_path / "out"), "--heatmaps", "zebra", "--no-progress"])
    assert rc == 2
    assert "unknown class 'zebra'" in capsys.readouterr().err


def test_missing_input_is_reported_and_the_rest_written(make_checkpoint, images, tmp_path,
                                                        capsys) -> None:
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(images / "x.png"),
               str(tmp_path / "nope.png"), "--out", str(out), "--no-progress"])
    assert rc == 1
    assert "nope.png: no such file" in capsys.readouterr().err
    assert (out / "x_label.png").is_file()
