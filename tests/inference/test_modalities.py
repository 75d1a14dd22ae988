"""Finding the other inputs of a fusion model beside each colour image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import tiny_task_model

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter
from fcnseg.inference.modalities import (
    CompanionNotFoundError,
    companion_candidates,
    find_companion,
    given_modality,
    is_companion_file,
    segment_modalities,
)
from fcnseg.pretrained.reference import NYUD_CLASSES


@pytest.fixture(scope="module")
def fusion_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny NYUDv2 late-fusion FCN-32s taking ``color`` and ``hha``."""
    return save_checkpoint(tmp_path_factory.mktemp("nyud") / "rgbhha.pt",
                           tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())


def _colour_folder(root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{stem}.png")
    return folder


def test_candidates_are_the_suffixed_names_then_the_sibling_folder() -> None:
    image = Path("data/images/x.jpg")
    assert companion_candidates(image, "hha") == [
        Path("data/images/x_hha.jpg"), Path("data/images/x_hha.png"),
        Path("data/images/x.hha.jpg"), Path("data/images/x.hha.png"),
        Path("data/hha/x.jpg"), Path("data/hha/x.png")]


def test_the_first_existing_candidate_is_chosen(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "depth").mkdir()
    image = tmp_path / "images" / "x.png"
    (tmp_path / "depth" / "x.png").touch()
    assert find_companion(image, "depth") == tmp_path / "depth" / "x.png"
    (tmp_path / "images" / "x.depth.png").touch()
    assert find_companion(image, "depth") == tmp_path / "images" / "x.depth.png"


def test_a_missing_companion_names_the_image_and_every_path_tried(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    with pytest.raises(CompanionNotFoundError) as e:
        find_companion(image, "hha")
    assert str(e.value).startswith(f"{image}: no hha input found")
    assert all(str(p) in str(e.value) for p in companion_candidates(image, "hha"))


@pytest.mark.parametrize(("path", "expected"), [
    ("a/x_hha.png", True), ("a/x.hha.png", True), ("hha/x.png", True), ("a/x.png", False),
    ("a/xhha.png", False),
])
def test_companion_files_are_recognised_by_name_or_folder(path, expected) -> None:
    assert is_companion_file(Path(path), ["hha"]) is expected


def test_the_input_files_are_colour_unless_colour_has_a_folder() -> None:
    assert given_modality(("color", "hha"), {}) == "color"
    assert given_modality(("color", "hha"), {"color": Path("c")}) == "hha"
    with pytest.raises(ValueError, match="every input"):
        given_modality(("color", "hha"), {"color": Path("c"), "hha": Path("h")})


def test_predict_refuses_an_input_dir_that_is_the_colour_folder_itself(
        fusion_checkpoint, tmp_path, capsys) -> None:
    images = _colour_folder(tmp_path)
    out = tmp_path / "out"
    rc = main(["predict", "--checkpoint", str(fusion_checkpoint), str(images),
               "--input-dir", f"hha={images}", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"--input-dir hha={images}: the same folder as the color images" in err
    assert not out.exists() or not list(out.glob("*_label.png"))


def test_one_file_read_as_two_modalities_is_an_error_for_that_image(fusion_checkpoint,
                                                                    tmp_path) -> None:
    images = _colour_folder(tmp_path)
    seg = Segmenter.from_checkpoint(fusion_checkpoint)
    inputs = [(images / "a.png", "a")]
    [(path, _, result)] = segment_modalities(seg, inputs, {"hha": images})
    assert isinstance(result, ValueError) and path == images / "a.png"
    assert "would be both its color and its hha input" in str(result)


def test_an_ignore_mask_leaves_its_pixels_out_of_a_fusion_models_labels(
        fusion_checkpoint, tmp_path) -> None:
    from fcnseg.inference.visualize import read_label_png
    images = _colour_folder(tmp_path)
    (tmp_path / "hha").mkdir()
    for stem in ("a", "b"):
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "hha" / f"{stem}.png")
    hood = np.full((32, 32), 255, np.uint8)
    hood[16:] = 0
    Image.fromarray(hood).save(tmp_path / "hood.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(fusion_checkpoint), str(images), "--out",
                 str(out), "--no-progress", "--ignore-mask", str(tmp_path / "hood.png")]) == 0
    for stem in ("a", "b"):
        label = read_label_png(out / f"{stem}_label.png")
        assert (label[16:] == 255).all() and (label[:16] != 255).all()
