"""Finding the other inputs of a fusion model beside each colour image."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.inference.modalities import (
    CompanionNotFoundError,
    companion_candidates,
    find_companion,
    given_modality,
    is_companion_file,
)


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
